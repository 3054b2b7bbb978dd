package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/internal/ehkeys"
	"hearth/vmm/guest"
	"hearth/vmm/network"
	"hearth/vmm/qemu"
)

// A full VM (guest.Spec.Type vm, issue 14) is a runc container whose init
// is QEMU, as KubeVirt's virt-launcher runs it in a pod: unprivileged in the
// guest's user namespace like any guest, inside a root Hearth makes of the
// host's own /usr (QEMU, its firmware and libraries from Debian's
// qemu-system-x86), limited by the same cgroups. QEMU opens the drives as the
// loop devices Hearth attaches (nodes owned by guest root, read-only ones
// read-only), its NICs as taps the network bridges with the guest's veths in
// its namespace (through a /dev/net/tun node of guest root's), its serial
// port is the container's terminal (the console stream), and its QMP and VNC
// sockets are in DATA/run/ID/qemu, bind-mounted at vmRunDir.
const (
	vmRootDirName = "vmroot" // DATA/run/ID/vmroot: the container's root, mount points only
	vmRunDirName  = "qemu"   // DATA/run/ID/qemu: QEMU's sockets and throwaway layers
	vmRunDir      = "/run/qemu"
	kvmDevice     = "/dev/kvm"
)

// qemuRunDir is where a VM guest's QMP and VNC sockets are on the host
// (qemu.QMPSocket, qemu.VNCSocket inside it).
func (h *Host) qemuRunDir(id string) string { return filepath.Join(h.runDir, id, vmRunDirName) }

// vmHostDirs are bind-mounted read-only from the host into a VM's root:
// /usr holds QEMU, the firmware it loads (/usr/share/qemu, seabios,
// /usr/lib/ipxe/qemu) and the libraries; the others exist only where the
// host's /usr is not merged (on Debian 12 they are symlinks into /usr,
// made as such).
var vmHostDirs = []string{"/usr", "/lib", "/lib64", "/bin", "/sbin"}

// vmHostFiles are host files QEMU's dynamic loader and libraries read.
var vmHostFiles = []string{"/etc/ld.so.cache"}

// vmMemoryOverheadMiB is what QEMU needs beyond the guest's RAM: its own
// code and heap, a few MiB per vCPU (thread stacks, per-CPU state), the
// display's video memory (std VGA: 16 MiB), the translation cache under
// TCG, and page tables and block caches that grow with RAM (1/64). The
// container's memory limit is mem plus this, so a guest using all of its
// RAM never gets QEMU killed.
func vmMemoryOverheadMiB(mem int64, smp int, kvm bool) int64 {
	overhead := 128 + 16 + 8*int64(smp) + mem/64
	if !kvm {
		overhead += qemu.TCGCacheMiB
	}
	return overhead
}

// vmCPUOverhead is the CFS quota a VM's container gets beyond what cpu
// gives its vCPUs: QEMU's main loop (device emulation, the VNC display)
// and I/O threads run beside the vCPU threads, and with only the vCPUs'
// quota they throttle the guest. Measured under TCG (BenchmarkVMBootBanner,
// smp 1): throttled 0.6–1.1 s of a 13 s boot without a margin, 0.12–0.17 s
// of 7 s with a quarter core, never with half a core.
const vmCPUOverhead = cfsPeriod / 2 // half a core

// vmCPUResources is cpuResources for a VM's container: the vCPUs' quota
// plus vmCPUOverhead; shares (the guest's weight against others) unchanged.
func vmCPUResources(cpu, smp int, coreMHz float64) *specs.LinuxCPU {
	r := cpuResources(cpu, smp, coreMHz)
	if r.Quota != nil {
		*r.Quota += vmCPUOverhead
	}
	return r
}

// kvmUsable reports whether the host's /dev/kvm opens for reading and
// writing (present, and the kernel module loaded); where not, VMs run
// under TCG.
func kvmUsable() bool {
	f, err := os.OpenFile(kvmDevice, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// qemuPath is where Debian's qemu-system-x86 puts QEMU: a VM's root binds
// the host's /usr, whose QEMU runs (a variable for the test of a host
// without it).
var qemuPath = filepath.Join("/usr/bin", qemu.Binary)

// vmDriver is the runtime of every VM guest, whatever runs containers:
// QEMU is the VM, so it runs unprivileged on the host's kernel (under Kata
// it would run nested in Kata's VM).
var vmDriver Driver = runcDriver{}

// driverFor is the runtime spec's guest runs under: vmDriver for a VM,
// the Host's (--runtime) for a container.
func (h *Host) driverFor(spec guest.Spec) Driver {
	if spec.VM() {
		return vmDriver
	}
	return h.driver
}

// canRunVMs reports why VM guests cannot run here: they need the runc
// runtime (also where containers run under Kata) and the host's QEMU,
// named by its Debian package where missing.
func (h *Host) canRunVMs() error {
	if err := ProbeDrivers()[vmDriver.Name()]; err != nil {
		return fmt.Errorf("VM guests run under %s, which cannot run here: %w", vmDriver.Name(), err)
	}
	if _, err := os.Stat(qemuPath); err != nil {
		return fmt.Errorf("VM guests need QEMU: %s is not installed (Debian package %s)", qemu.Binary, qemu.Package)
	}
	return nil
}

// startVM is Start's part for a VM guest g (reserved, with its user
// namespace): drives on loop devices, their nodes (and /dev/kvm's where
// usable) owned by guest root, the root of host directories, QEMU's run
// directory, network namespace, container, task, console. What it makes
// goes on rollback; holds are the loop devices' until the nodes hold them.
func (h *Host) startVM(ctx context.Context, g *instance, rollback *undo, holds *[]*os.File) error {
	spec := g.spec
	log := h.log.With("server", spec.ID)

	rollback.push(func() {
		if err := h.removeRunDir(spec.ID); err != nil {
			log.Error("removing a failed start's run directory", "err", err)
		}
	})
	vm := qemu.VM{Name: spec.ID, SMP: spec.SMP, Mem: spec.Mem, KVM: h.accel == guest.AccelKVM, RunDir: vmRunDir, Boot: spec.BootOrder}
	if !vm.KVM {
		log.Info("no usable /dev/kvm: the VM runs under software emulation (TCG)")
	}
	var devices []guestDevice
	for _, d := range append([]guest.Disk{spec.Boot}, spec.Disks...) {
		path, err := vmDrivePath(d.Key)
		if err != nil {
			return err
		}
		dev, err := h.attachDrive(g, d.Image, path, d.ReadOnly || d.CDROM, holds, rollback)
		if err != nil {
			return fmt.Errorf("drive %s: %w", d.Key, err)
		}
		devices = append(devices, dev)
		vm.Drives = append(vm.Drives, qemu.Drive{Key: d.Key, Image: path, CDROM: d.CDROM, ReadOnly: d.ReadOnly})
	}
	if vm.KVM {
		devices = append(devices, guestDevice{Path: kvmDevice, Type: "c", Major: 10, Minor: 232})
	}
	nics := vmNICs(spec.NICs)
	for _, n := range nics {
		vm.NICs = append(vm.NICs, qemu.NIC{Index: n.Index, Model: n.Model, MAC: n.MAC, Tap: network.TapName(n.Index)})
	}
	if len(nics) > 0 {
		devices = append(devices, tunDevice)
	}
	argv, err := qemu.Command(vm)
	if err != nil {
		return err
	}
	if err := makeNodes(filepath.Join(h.runDir, spec.ID, "dev"), devices, spec.IDMap.HostID); err != nil {
		return fmt.Errorf("guest %s: %w", spec.ID, err)
	}
	root := filepath.Join(h.runDir, spec.ID, vmRootDirName)
	if err := makeVMRoot(root, spec.IDMap.HostID); err != nil {
		return fmt.Errorf("guest %s: %w", spec.ID, err)
	}
	runDir := h.qemuRunDir(spec.ID)
	if err := mkdirOwned(runDir, 0o700, spec.IDMap.HostID); err != nil {
		return fmt.Errorf("guest %s: %w", spec.ID, err)
	}

	c, err := h.newContainer(ctx, g, vmSpecOpts(spec, vmDriver, argv, qemu.Env(vm), root, runDir, devices, vm.KVM, h.coreMHz), rollback)
	if err != nil {
		return err
	}
	task, err := h.newTask(ctx, g, c, nil, rollback)
	if err != nil {
		return err
	}
	if len(nics) > 0 {
		if err := h.network.Attach(ctx, spec.ID, task.Pid(), nics); err != nil {
			return fmt.Errorf("guest %s network: %w", spec.ID, err)
		}
		rollback.push(func() { h.network.Detach(context.WithoutCancel(ctx), spec.ID) })
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start guest %s: %w", spec.ID, h.unavailable(err))
	}
	if _, err := h.connectQMP(ctx, g); err != nil {
		return fmt.Errorf("start guest %s: %w", spec.ID, err)
	}
	log.Info("VM started", "kvm", vm.KVM, "smp", vm.SMP, "mem", vm.Mem)
	return nil
}

// defaultNICModel is the card of a VM NIC recorded without nic:N:model
// (a VLAN NIC an older Hearth took without one): ElasticHosts' usual one.
const defaultNICModel = "e1000"

// vmNICs are a VM's NICs as the network attaches them: each bridged to its
// tap device in the guest's namespace (QEMU's card carries the NIC's MAC,
// the host filters and DHCP-answers it as a container's), with a model.
func vmNICs(nics []guest.NIC) []guest.NIC {
	vmNICs := slices.Clone(nics)
	for i := range vmNICs {
		vmNICs[i].Tap = true
		if vmNICs[i].Model == "" {
			vmNICs[i].Model = defaultNICModel
		}
	}
	return vmNICs
}

// vmDrivePath is where QEMU finds the drive at an EH device key: its node
// under /dev/hearth, named by the key (ide:0:1 → /dev/hearth/ide-0-1).
func vmDrivePath(key string) (string, error) {
	if _, err := ehkeys.DeviceAddress(key); err != nil {
		return "", fmt.Errorf("drive on %q: %v: %w", key, err, guest.ErrInvalid)
	}
	return "/dev/hearth/" + qemu.DriveID(key), nil
}

// mkdirOwned makes dir (a leftover is reused) with mode, owned by owner.
func mkdirOwned(dir string, mode os.FileMode, owner uint32) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	return os.Lchown(dir, int(owner), int(owner))
}

// makeVMRoot makes the VM container's root directory: owned by guest root
// (runc, in the user namespace, creates the mount points in it before it
// makes it read-only), holding the host's non-directory top-level entries
// of vmHostDirs (merged /usr's symlinks) as the same symlinks.
func makeVMRoot(root string, owner uint32) error {
	if err := mkdirOwned(root, 0o755, owner); err != nil {
		return err
	}
	for _, d := range vmHostDirs {
		target, err := os.Readlink(d)
		if err != nil {
			continue // a directory (bind-mounted), or absent
		}
		link := filepath.Join(root, d)
		os.Remove(link) // an earlier start's
		if err := os.Symlink(target, link); err != nil {
			return err
		}
		if err := os.Lchown(link, int(owner), int(owner)); err != nil {
			return err
		}
	}
	return nil
}

// vmHostMounts binds vmHostDirs that are directories on the host, and
// vmHostFiles, read-only into the VM's root.
func vmHostMounts() []specs.Mount {
	var mounts []specs.Mount
	for _, p := range append(slices.Clone(vmHostDirs), vmHostFiles...) {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			continue
		}
		mounts = append(mounts, specs.Mount{Destination: p, Type: "bind", Source: p,
			Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	return mounts
}

// vmSpecOpts builds the OCI spec of a VM guest: QEMU's argv and
// environment with the console terminal as its serial port, the read-only
// root of host directories, QEMU's run directory read-write at vmRunDir, a
// private /tmp, no capabilities and no new privileges (QEMU needs neither:
// its nodes are guest root's; its own seccomp filter needs
// no_new_privs), the guest's cpu limits and memory plus QEMU's overhead,
// its drives' and /dev/kvm's nodes, a network namespace, and the runtime's
// user namespace and confinement.
func vmSpecOpts(g guest.Spec, rt Driver, argv, env []string, root, runDir string, devices []guestDevice, kvm bool, coreMHz float64) []oci.SpecOpts {
	hostname := g.Hostname
	if hostname == "" {
		hostname = g.ID
	}
	mounts := append(vmHostMounts(),
		specs.Mount{Destination: vmRunDir, Type: "bind", Source: runDir, Options: []string{"rbind", "rw", "nosuid", "nodev", "noexec"}},
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", "size=16m"}},
	)
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(argv...),
		oci.WithEnv(append([]string{"PATH=/usr/bin"}, env...)),
		oci.WithProcessCwd("/"),
		oci.WithTTY,
		oci.WithTTYSize(TerminalColumns, TerminalRows),
		oci.WithHostname(hostname),
		oci.WithNoNewPrivileges,
		oci.WithCapabilities(nil),
		oci.WithRootFSPath(root),
		oci.WithRootFSReadonly(),
		oci.WithMounts(mounts),
		withLimits(vmCPUResources(g.CPU, g.SMP, coreMHz), g.Mem+vmMemoryOverheadMiB(g.Mem, g.SMP, kvm)),
		withDevices(devices),
		withNetworkNamespace(),
	}
	return append(opts, rt.SpecOpts(g)...)
}

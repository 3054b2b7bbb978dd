package containerd

import (
	"bufio"
	"context"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"hearth/vmm/guest"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// HostCoreMHz is the host core's clock from /proc/cpuinfo, 2000 where it
// says nothing (some virtual machines and ARM hosts).
func HostCoreMHz() float64 {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 2000
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(key) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && mhz > 0 {
				return mhz
			}
		}
	}
	return 2000
}

// resolveSMP is smp, or where it is 0 the cores cpu MHz need (at least one).
func resolveSMP(cpu, smp int, coreMHz float64) int {
	if smp > 0 {
		return smp
	}
	return max(1, int(math.Ceil(float64(cpu)/coreMHz)))
}

// cfsPeriod is the CFS period quotas are computed against (the kernel default).
const cfsPeriod = 100000 // µs

// cpuResources turns cpu MHz into a CFS quota against the host core's clock,
// capped at smp whole cores, and into shares so that contended guests split
// the host in proportion to their cpu. cpu 0 means no limit.
func cpuResources(cpu, smp int, coreMHz float64) *specs.LinuxCPU {
	if cpu <= 0 {
		return &specs.LinuxCPU{}
	}
	cores := float64(cpu) / coreMHz
	if smp > 0 {
		cores = min(cores, float64(smp))
	}
	period := uint64(cfsPeriod)
	quota := max(int64(cores*cfsPeriod), 1000) // the kernel refuses quotas below 1 ms
	shares := max(uint64(cores*1024), 2)
	return &specs.LinuxCPU{Period: &period, Quota: &quota, Shares: &shares}
}

// guestSpecOpts builds the OCI spec of a guest: the container interface a
// distribution's init expects (systemd's: container=hearth, a cgroup
// namespace with its own writable cgroup, tmpfs on /run and /run/lock),
// init with a terminal, hostname, capabilities, limits, devices and network
// namespace, then the runtime's own additions (runc: the user namespace and
// the seccomp filter, computed last from the final capabilities). root is
// the directory the guest's root is mounted at ("": the runtime mounts the
// task's root itself).
func guestSpecOpts(g guest.Spec, rt Driver, init, root, netns string, devices []guestDevice, coreMHz float64) []oci.SpecOpts {
	hostname := g.Hostname
	if hostname == "" {
		hostname = g.ID
	}
	nofile := min(guestNofile, ownNofileLimit())
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(init),
		oci.WithTTY,
		oci.WithTTYSize(TerminalColumns, TerminalRows),
		oci.WithHostname(hostname),
		oci.WithEnv(guestEnv),
		// setuid programs (su, sudo, passwd, ping) must work in a system container.
		oci.WithNewPrivileges,
		oci.WithCapabilities(guestCapabilities()),
		// Guest root cannot raise a hard limit, and runc cannot set one above its own.
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: min(1024, nofile), Hard: nofile}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}),
		oci.WithoutMounts("/run", "/sys/fs/cgroup"),
		oci.WithMounts(systemMounts),
		withLimits(cpuResources(g.CPU, g.SMP, coreMHz), g.Mem),
		withDevices(devices),
	}
	if root != "" {
		opts = append(opts, oci.WithRootFSPath(root))
	}
	if netns != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns}))
	}
	return append(opts, rt.SpecOpts(g)...)
}

// guestEnv is init's environment. container= tells systemd (and
// systemd-detect-virt) it runs in a container; PATH is there for processes
// started into the guest from outside.
var guestEnv = []string{
	"container=hearth",
	"TERM=xterm",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

// systemMounts replace containerd's /run and add what systemd mounts itself
// on a host: tmpfs /run and /run/lock (systemd does not mount them in a
// container), and the guest's own cgroup tree read-write (from inside the
// cgroup namespace it shows only the guest's subtree).
var systemMounts = []specs.Mount{
	{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755", "size=20%"}},
	{Destination: "/run/lock", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", "size=5m"}},
	{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "rw"}},
}

// droppedCapabilities are those unprivileged Incus and LXC containers drop
// (lxc.cap.drop): loading modules, setting the host clock, configuring MAC
// policy and raw I/O reach past any namespace.
var droppedCapabilities = map[string]bool{
	"CAP_SYS_MODULE": true, "CAP_SYS_TIME": true, "CAP_MAC_ADMIN": true, "CAP_MAC_OVERRIDE": true, "CAP_SYS_RAWIO": true,
}

// allCapabilities are the capabilities runc knows (Linux's 0 to 40).
var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// guestCapabilities is the full set less droppedCapabilities. Under runc
// they hold inside the guest's user namespace only.
func guestCapabilities() []string {
	var caps []string
	for _, c := range allCapabilities {
		if !droppedCapabilities[c] {
			caps = append(caps, c)
		}
	}
	return caps
}

// guestNofile is the open-files hard limit systemd hands its services.
const guestNofile = 524288

// ownNofileLimit is Hearth's own hard limit of open files, which the
// runtime (started below it) cannot exceed either.
func ownNofileLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Max
}

// The guest's terminal size: the console's grid (80 × 24; its 25th row is
// Hearth's status line). runc's default is 0 × 0, which full-screen programs
// refuse.
const (
	TerminalColumns = 80
	TerminalRows    = 24
)

// guestPidsLimit caps a guest's tasks, so a fork bomb in one guest cannot
// take every PID of the host (a system with services has a few hundred).
const guestPidsLimit = 4096

func withLimits(cpu *specs.LinuxCPU, memMiB int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.CPU = cpu
		pids := int64(guestPidsLimit)
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
		if memMiB > 0 {
			limit := memMiB << 20
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		}
		return nil
	}
}

// withDevices gives the guest its devices and allows them in the devices
// cgroup (read-only drives for reading only): nodes Hearth made are
// bind-mounted (read-only for a read-only drive), others the runtime
// creates.
func withDevices(devices []guestDevice) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		for _, d := range devices {
			major, minor := d.Major, d.Minor
			if d.Node != "" {
				options := []string{"bind", "nosuid", "noexec"}
				if d.ReadOnly {
					options = append(options, "ro")
				}
				s.Mounts = append(s.Mounts, specs.Mount{Destination: d.Path, Type: "bind", Source: d.Node, Options: options})
			} else {
				mode := os.FileMode(d.mode())
				zero := uint32(0)
				s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
					Path: d.Path, Type: d.Type, Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero,
				})
			}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: d.access(),
			})
		}
		return nil
	}
}

// deviceInit is /sbin/init when the ext4 root on dev has one, else
// /bin/sh: for a root Hearth does not mount (Kata's), read with debugfs in
// a few milliseconds. Other filesystems, or no debugfs: /sbin/init.
func deviceInit(dev, fs string) string {
	if fs != "ext4" {
		return "/sbin/init"
	}
	out, err := exec.Command("debugfs", "-R", "stat /sbin/init", dev).CombinedOutput()
	if err == nil && strings.Contains(string(out), "File not found") {
		return "/bin/sh"
	}
	return "/sbin/init"
}

package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm/guest"
	"hearth/vmm/qemu"
)

func buildVMSpec(t *testing.T, g guest.Spec, devices []guestDevice, kvm bool) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "hearth")
	argv := []string{qemu.Binary, "-m", "512"}
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: g.ID},
		vmSpecOpts(g, runcDriver{}, argv, []string{"TMPDIR=" + vmRunDir}, "/data/run/v1/vmroot", "/data/run/v1/qemu", devices, kvm, 2000)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVMSpec(t *testing.T) {
	g := guest.Spec{ID: "v1", Type: guest.TypeVM, CPU: 2000, SMP: 2, Mem: 512, Boot: guest.Disk{Image: "x"},
		IDSlot: 1, IDMap: guest.IDMap{HostID: 1065536, Size: guest.IDRange}}
	devices := []guestDevice{
		{Path: "/dev/hearth/ide-0-0", Type: "b", Major: 7, Minor: 1, Node: "/data/run/v1/dev/hearth-ide-0-0"},
		{Path: "/dev/hearth/ide-0-1", Type: "b", Major: 7, Minor: 2, ReadOnly: true, Node: "/data/run/v1/dev/hearth-ide-0-1"},
	}
	s := buildVMSpec(t, g, devices, false)

	if !slices.Equal(s.Process.Args, []string{qemu.Binary, "-m", "512"}) || !s.Process.Terminal {
		t.Errorf("process %v, terminal %v: want QEMU's argv on the console terminal", s.Process.Args, s.Process.Terminal)
	}
	if !slices.Contains(s.Process.Env, "TMPDIR="+vmRunDir) {
		t.Errorf("env %v lacks QEMU's TMPDIR", s.Process.Env)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("QEMU may gain privileges")
	}
	if c := s.Process.Capabilities; len(c.Bounding)+len(c.Effective)+len(c.Permitted) != 0 {
		t.Errorf("capabilities %+v, want none", c)
	}
	if !hasNamespace(s, specs.UserNamespace) || !hasNamespace(s, specs.NetworkNamespace) {
		t.Errorf("namespaces %+v: want a user and a network namespace", s.Linux.Namespaces)
	}
	if want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1065536, Size: 65536}}; !slices.Equal(s.Linux.UIDMappings, want) {
		t.Errorf("uid mappings %+v", s.Linux.UIDMappings)
	}
	if s.Linux.Seccomp == nil {
		t.Error("no seccomp filter")
	}
	if s.Root.Path != "/data/run/v1/vmroot" || !s.Root.Readonly {
		t.Errorf("root %+v, want Hearth's, read-only", s.Root)
	}
	usr, ok := mountAt(s, "/usr")
	if !ok || usr.Source != "/usr" || !slices.Contains(usr.Options, "ro") {
		t.Errorf("/usr mounted as %+v, want the host's read-only", usr)
	}
	for _, m := range vmHostMounts() {
		if !slices.Contains(m.Options, "ro") {
			t.Errorf("host %s bound writable", m.Source)
		}
		if fi, err := os.Lstat(m.Source); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("host %s bound but it is no file or directory (%v)", m.Source, err)
		}
	}
	run, ok := mountAt(s, vmRunDir)
	if !ok || run.Source != "/data/run/v1/qemu" || slices.Contains(run.Options, "ro") {
		t.Errorf("QEMU's run directory mounted as %+v", run)
	}
	for _, d := range devices {
		m, ok := mountAt(s, d.Path)
		if !ok || m.Source != d.Node || slices.Contains(m.Options, "ro") != d.ReadOnly {
			t.Errorf("drive %s mounted as %+v", d.Path, m)
		}
	}
	r := s.Linux.Resources
	if r.CPU == nil || r.CPU.Quota == nil || *r.CPU.Quota != cfsPeriod+vmCPUOverhead || *r.CPU.Shares != 1024 {
		t.Errorf("cpu %+v, want one core's quota for 2000 MHz and QEMU's margin, one core's shares", r.CPU)
	}
	want := (512 + vmMemoryOverheadMiB(512, 2, false)) << 20
	if r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != want {
		t.Errorf("memory %+v, want %d (mem and QEMU's overhead)", r.Memory, want)
	}
}

func TestVMSpecKVM(t *testing.T) {
	g := guest.Spec{ID: "v1", Type: guest.TypeVM, SMP: 1, Mem: 1024, Boot: guest.Disk{Image: "x"}, IDMap: guest.IDMap{HostID: 1065536, Size: guest.IDRange}}
	kvm := guestDevice{Path: kvmDevice, Type: "c", Major: 10, Minor: 232, Node: "/data/run/v1/dev/kvm"}
	s := buildVMSpec(t, g, []guestDevice{kvm}, true)
	if m, ok := mountAt(s, kvmDevice); !ok || m.Source != kvm.Node {
		t.Errorf("/dev/kvm mounted as %+v, want Hearth's node", m)
	}
	if !slices.ContainsFunc(s.Linux.Resources.Devices, func(r specs.LinuxDeviceCgroup) bool {
		return r.Allow && r.Type == "c" && r.Major != nil && *r.Major == 10 && *r.Minor == 232
	}) {
		t.Errorf("device rules %+v do not allow /dev/kvm", s.Linux.Resources.Devices)
	}
	if got, tcg := vmMemoryOverheadMiB(1024, 1, true), vmMemoryOverheadMiB(1024, 1, false); got >= tcg || got < 128 {
		t.Errorf("overhead %d MiB under KVM, %d under TCG: want KVM's smaller, at least 128", got, tcg)
	}
}

func TestVMDrivePath(t *testing.T) {
	if p, err := vmDrivePath("scsi:0:3"); err != nil || p != "/dev/hearth/scsi-0-3" {
		t.Errorf("scsi:0:3: %q %v", p, err)
	}
	if _, err := vmDrivePath("ide:9:9"); err == nil {
		t.Error("ide:9:9 accepted")
	}
}

func TestMakeVMRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vmroot")
	if err := makeVMRoot(root, uint32(os.Getuid())); err != nil {
		t.Fatal(err)
	}
	for _, d := range vmHostDirs {
		host, err := os.Readlink(d)
		if err != nil {
			continue
		}
		if got, err := os.Readlink(filepath.Join(root, d)); err != nil || got != host {
			t.Errorf("%s in the VM's root: %q %v, want the host's symlink to %q", d, got, err, host)
		}
	}
	// A second start reuses the directory.
	if err := makeVMRoot(root, uint32(os.Getuid())); err != nil {
		t.Errorf("again: %v", err)
	}
}

// TestVMBlankDisk starts a VM guest through the Host with a blank disk and
// a blank CD: QEMU runs unprivileged in its container, its QMP socket
// answers running, and the firmware reads both drives looking for
// something to boot. Deleting it leaves no process, mount, loop device or
// cgroup behind.
func TestVMBlankDisk(t *testing.T) {
	h, data := openTestHost(t)
	if err := h.canRunVMs(); err != nil {
		t.Skip(err)
	}
	disk, cd := filepath.Join(data, "disk.img"), filepath.Join(data, "cd.iso")
	for _, f := range []string{disk, cd} {
		if err := os.WriteFile(f, make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id := guestID(t, 0)
	spec := guest.Spec{ID: id, Type: guest.TypeVM, CPU: 1000, Mem: 64, IDSlot: 1,
		Boot:      guest.Disk{Device: "ide:0:0", Key: "ide:0:0", Image: disk},
		Disks:     []guest.Disk{{Device: "hdc", Key: "ide:1:0", Image: cd, ReadOnly: true, CDROM: true}},
		BootOrder: []string{"ide:1:0", "ide:0:0"},
	}
	if err := h.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if uid := initUID(t, h, id); uid < h.idBase {
		t.Errorf("QEMU runs as host uid %d, below the guests' ids (%d)", uid, h.idBase)
	}
	g, _ := h.lookup(id)
	pid := g.task.Pid()
	// The container's limit leaves QEMU room beyond the guest's RAM.
	mem, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", h.namespace, id, "memory.limit_in_bytes"))
	if want := fmt.Sprint((64 + vmMemoryOverheadMiB(64, 1, false)) << 20); strings.TrimSpace(string(mem)) != want {
		t.Errorf("memory limit %q, want %s", mem, want)
	}
	// The CD's loop device is read-only, the disk's is not.
	for i, want := range []string{"0", "1"} {
		ro, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(g.loops[i].Device), "ro"))
		if strings.TrimSpace(string(ro)) != want {
			t.Errorf("%s (%s) ro %q, want %s", g.loops[i].Device, g.loops[i].File, ro, want)
		}
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !bytes.HasPrefix(cmdline, []byte(qemu.Binary)) {
		t.Errorf("the container's init is %q, want QEMU", cmdline)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	qmp := connectQMP(ctx, t, h, id)
	if st, err := qmp.Status(ctx); err != nil || !st.Running {
		t.Errorf("query-status: %+v %v, want running", st, err)
	}
	// The firmware tries the CD first, then the disk: both are read.
	for {
		stats, err := qmp.BlockStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats["ide:1:0"].ReadBytes > 0 && stats["ide:0:0"].ReadBytes > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the firmware never read both drives: %+v", stats)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU (pid %d) still there after delete: %v", pid, err)
	}
}

// TestManagerVM: a server of type vm with only a blank CD goes through the
// Manager and the Host (the CD is its boot drive, QEMU's firmware finds
// nothing to boot and the server stays active, as a PC would); stop ends
// QEMU and leaves the drive unclaimed.
func TestManagerVM(t *testing.T) {
	f := newManagerFixture(t)
	if err := f.host.canRunVMs(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	cd := f.drive(true, nil)
	id := f.Server(map[string]string{"type": "vm", "ide:0:1": cd, "ide:0:1:media": "cdrom", "mem": "64", "persistent": "true"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != storage.StatusActive {
		t.Fatalf("status %s after start", got)
	}
	g, err := f.host.lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	pid := g.task.Pid()
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !bytes.Contains(cmdline, []byte("ide-cd\x00")) && !bytes.Contains(cmdline, []byte("ide-cd,")) {
		t.Errorf("QEMU's command line has no CD drive: %q", cmdline)
	}
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != storage.StatusStopped {
		t.Errorf("status %s after stop", got)
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU (pid %d) still there after stop: %v", pid, err)
	}
	if d, _ := f.Store.Drive(ctx, cd); len(d.Claimed) != 0 {
		t.Errorf("the CD is still claimed by %v", d.Claimed)
	}
}

// connectQMP is the Host's connection to the QMP socket of VM guest id
// (QEMU serves one client at a time), made again if it broke.
func connectQMP(ctx context.Context, t *testing.T, h *Host, id string) *qemu.Client {
	t.Helper()
	g, err := h.lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.qmpOf(ctx, g)
	if err != nil {
		con, _ := h.Console(id)
		t.Fatalf("no QMP for %s: %v; console:\n%s", id, err, con.Backlog())
	}
	return c
}

// TestVMReadopted: a VM keeps running while Hearth is away; the next Host
// adopts it as a VM and its QMP socket answers from the same place.
func TestVMReadopted(t *testing.T) {
	h, data := openTestHost(t)
	if err := h.canRunVMs(); err != nil {
		t.Skip(err)
	}
	disk := filepath.Join(data, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	id := guestID(t, 0)
	spec := guest.Spec{ID: id, Type: guest.TypeVM, Mem: 64, IDSlot: 1, Boot: guest.Disk{Device: "block:0", Key: "block:0", Image: disk}}
	if err := h.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	g, _ := h.lookup(id)
	pid := g.task.Pid()
	h.Close()

	h, err := Open(context.Background(), data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithIDBase(h.idBase), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // on failure too: the VM must not outlive the test
		h.Delete(context.Background(), id)
		h.Close()
	}()
	st, err := h.Status(context.Background(), id)
	if err != nil || st.State != guest.Running || !st.Spec.VM() {
		t.Fatalf("adopted: %+v %v, want a running VM", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s, err := connectQMP(ctx, t, h, id).Status(ctx); err != nil || !s.Running {
		t.Errorf("query-status after adoption: %+v %v", s, err)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU (pid %d) still there after delete: %v", pid, err)
	}
}

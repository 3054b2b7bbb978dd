package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/storage/rootfs"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// initUID is the host uid the guest's init runs as (/proc/PID/status).
func initUID(t *testing.T, h *Host, id string) uint32 {
	t.Helper()
	g, err := h.lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no Uid in %s", status)
	}
	uid, _ := strconv.ParseUint(string(m[1]), 10, 32)
	return uint32(uid)
}

// TestUnprivilegedGuests: each server's guest root is its own unprivileged
// host id (from the server's id slot), two servers' ranges are disjoint, a
// file guest root creates is owned by uid 0 on the drive itself (idmapped,
// never chowned), and nothing of the guests is left after they stop.
func TestUnprivilegedGuests(t *testing.T) {
	f := newManagerFixture(t)
	ctx := context.Background()
	drives := [2]string{f.drive(false, nil), f.drive(false, nil)}
	var ids [2]string
	var maps [2]guest.IDMap
	for i := range ids {
		ids[i] = f.Server(map[string]string{"ide:0:0": drives[i]})
		if err := f.m.Start(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
		st, err := f.host.Status(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		maps[i] = st.Spec.IDMap
		if maps[i].HostID < f.host.idBase || maps[i].Size != guest.IDRange {
			t.Errorf("guest %d maps to %+v, want %d ids from %d on", i, maps[i], guest.IDRange, f.host.idBase)
		}
		if uid := initUID(t, f.host, ids[i]); uid != maps[i].HostID {
			t.Errorf("guest %d: init runs as host uid %d, want %d", i, uid, maps[i].HostID)
		}
	}
	if a, b := maps[0], maps[1]; a.HostID < b.HostID+b.Size && b.HostID < a.HostID+a.Size {
		t.Errorf("ranges overlap: %+v %+v", a, b)
	}

	c, _ := f.host.Console(ids[0])
	c.Write([]byte("touch /made-by-root && sync && echo made-$((40+2))\n"))
	waitConsole(t, c, "made-42")
	for _, id := range ids {
		if err := f.m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("debugfs", "-R", "stat /made-by-root", f.Store.DrivePath(drives[0])).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	if !regexp.MustCompile(`User:\s+0\s+Group:\s+0\b`).Match(out) {
		t.Errorf("the file guest root made is not uid 0 on the drive:\n%s", out)
	}

	// Nothing of the stopped guests is left: mounts, loop devices, cgroups.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), f.host.runDir) {
		t.Errorf("mounts left under DATA/run:\n%s", mounts)
	}
	for _, id := range ids {
		for _, dir := range []string{"systemd", "unified", "memory"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", dir, f.host.namespace, id)); err == nil {
				t.Errorf("cgroup of %s left in %s", id, dir)
			}
		}
		if _, err := os.Stat(filepath.Join(f.host.runDir, id)); err == nil {
			t.Errorf("DATA/run/%s left", id)
		}
	}
	for _, d := range drives {
		path, _ := filepath.EvalSymlinks(f.Store.DrivePath(d))
		for _, l := range testguest.LoopDevicesLeft(func(backing string) bool { return backing == path }) {
			t.Errorf("loop device %s still holds drive %s", l, d)
		}
	}
}

// TestSweepLeftoverRoot: a root a killed Hearth left mounted in DATA/run is
// unmounted by the next one, and the drive's files are not touched (the
// run directory is removed only once nothing is mounted in it).
func TestSweepLeftoverRoot(t *testing.T) {
	needContainerd(t)
	data, ns := vmmtest.DataDir(t), testNamespace(t)
	drive := t.TempDir() // stands for the guest's mounted drive
	if err := os.WriteFile(filepath.Join(drive, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(data, "run", "gone-1", rootDirName)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(drive, root, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	h, err := Open(context.Background(), data, WithNamespace(ns), WithRuntime(RuntimeRunc), WithIDBase(testIDBase(t)), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if mounted, _ := mountinfo.Mounted(root); mounted {
		t.Error("the leftover root is still mounted")
	}
	if _, err := os.Stat(filepath.Join(drive, "precious")); err != nil {
		t.Errorf("the drive's file went with the sweep: %v", err)
	}
	assertNoLeaks(t, data, ns, nil)
}

// TestPartitionedBootDrive: a GPT disk whose root partition holds a
// filesystem smaller than the partition (a cloud image written to a larger
// drive) boots, and its filesystem has grown to the partition first.
func TestPartitionedBootDrive(t *testing.T) {
	h, _ := openTestHost(t)
	fs := testguest.Image(t, 32<<20)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 96<<20); err != nil {
		t.Fatal(err)
	}
	// One Linux partition from 1 MiB to the end (GPT Linux filesystem type).
	sfdisk := exec.Command("sfdisk", "-q", "--label", "gpt", disk)
	sfdisk.Stdin = strings.NewReader("start=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n")
	if out, err := sfdisk.CombinedOutput(); err != nil {
		t.Skipf("sfdisk: %v: %s", err, out)
	}
	if out, err := exec.Command("dd", "if="+fs, "of="+disk, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, out)
	}
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: disk}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	// df's size column of / in 1K blocks: more than the 32 MiB it was made with.
	c.Write([]byte("df -k / | tail -1 | (read a size b; echo size-$size-kb$((1+1)))\n"))
	waitConsole(t, c, "-kb2")
	m := regexp.MustCompile(`size-(\d+)-kb2`).FindSubmatch(c.Backlog())
	if m == nil {
		t.Fatalf("no size on the console:\n%s", c.Backlog())
	}
	if kib, _ := strconv.Atoi(string(m[1])); kib < 64<<10 {
		t.Errorf("root filesystem of %d KiB: not grown to its 95 MiB partition", kib)
	}
}

// TestGuestDrives: further drives are block devices guest root owns and
// opens (writable ones read-write, read-only ones for reading only).
func TestGuestDrives(t *testing.T) {
	h, _ := openTestHost(t)
	blank := func() string {
		p := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	id := guestID(t, 0)
	spec := guest.Spec{ID: id, Boot: guest.Disk{Image: testguest.Image(t, 32<<20)},
		Disks: []guest.Disk{{Device: "sdb", Image: blank()}, {Device: "sdc", Image: blank(), ReadOnly: true}}}
	if err := h.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	c.Write([]byte("ls -ln /dev/sdb /dev/sdc; echo hello | dd of=/dev/sdb 2>/dev/null && echo wrote-$((1+1)); " +
		"echo x | dd of=/dev/sdc 2>/dev/null || echo refused-$((2+1)); head -c 512 /dev/sdc | wc -c | sed s/^/read-/; " +
		"echo done-$((3+1))\n"))
	waitConsole(t, c, "done-4")
	out := string(c.Backlog())
	for _, want := range []string{"wrote-2", "refused-3", "read-512"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`brw-rw----\s+1 0\s+0\s.*/dev/sdb`).MatchString(out) || !regexp.MustCompile(`br--r-----\s+1 0\s+0\s.*/dev/sdc`).MatchString(out) {
		t.Errorf("drive nodes not guest root's with modes 0660 and 0440:\n%s", out)
	}
}

// TestDamagedBootDrive: a boot filesystem its checker finds damaged is
// never mounted by the host: Start fails with ErrBootDrive and a one-line
// reason naming the problem and no host path, read-only or writable, and
// nothing is left behind.
func TestDamagedBootDrive(t *testing.T) {
	h, data := openTestHost(t)
	img := testguest.Image(t, 32<<20)
	if out, err := exec.Command("debugfs", "-w", "-R", "clri /etc", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	for i, ro := range []bool{true, false} {
		err := h.Start(context.Background(), guest.Spec{ID: guestID(t, i), Boot: guest.Disk{Image: img, ReadOnly: ro}})
		if !errors.Is(err, guest.ErrBootDrive) {
			t.Fatalf("read-only %t: %v, want ErrBootDrive", ro, err)
		}
		msg := err.Error()
		t.Logf("read-only %t: %s", ro, msg)
		if !strings.Contains(msg, "deleted/unused inode") || strings.Contains(msg, data) || strings.Contains(msg, filepath.Dir(img)) || strings.Contains(msg, "\n") {
			t.Errorf("read-only %t: reason %q", ro, msg)
		}
	}
}

// TestDriveWrittenAfterCleanStop: a writable boot drive the guest left
// clean is started again without a check — and once anything writes the
// image (here debugfs, as an API write would), right after the stop, the
// next start checks it and finds the damage.
func TestDriveWrittenAfterCleanStop(t *testing.T) {
	h, _ := openTestHost(t)
	img := testguest.Image(t, 32<<20)
	root, err := rootfs.FindRoot(context.Background(), img, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := guestID(t, 0)
	spec := guest.Spec{ID: id, Boot: guest.Disk{Image: img}}
	for range 2 {
		if err := h.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		c, _ := h.Console(id)
		c.Write([]byte("echo written > /written; sync; echo done-$((1+1))\n"))
		waitConsole(t, c, "done-2")
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if !h.checked.Unchanged(img, root, false) {
			t.Fatal("a drive the host unmounted clean is not recorded unchanged")
		}
	}
	if out, err := exec.Command("debugfs", "-w", "-R", "clri /etc", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	if err := h.Start(context.Background(), spec); !errors.Is(err, guest.ErrBootDrive) || !strings.Contains(err.Error(), "deleted/unused inode") {
		t.Fatalf("start after the drive was damaged: %v, want ErrBootDrive naming the damage", err)
	}
}

// TestSweepLeftoverLive: a live system's throwaway layer that a crash left
// in DATA/run (its guest gone, nothing mounted) is removed by the next
// Hearth.
func TestSweepLeftoverLive(t *testing.T) {
	needContainerd(t)
	data, ns := vmmtest.DataDir(t), testNamespace(t)
	upper := filepath.Join(data, "run", "gone-2", liveDirName, "upper")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "written-by-a-guest"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := Open(context.Background(), data, WithNamespace(ns), WithRuntime(RuntimeRunc), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join(data, "run", "gone-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover live layer is still there: %v", err)
	}
	assertNoLeaks(t, data, ns, nil)
}

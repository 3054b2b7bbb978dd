package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// testNamespace is a containerd namespace (and cgroup parent) no other test uses.
func testNamespace(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "hearth-test-" + hex.EncodeToString(b)
}

// testIDBase is the first host id of a window of host ids no other test
// (nor Hearth) holds while this one runs: every test Host is an instance of
// its own.
func testIDBase(t testing.TB) uint32 {
	t.Helper()
	base, claim, err := ClaimIDBase(testNamespace(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { claim.Close() })
	return base
}

func needContainerd(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := execLookPath(bin); err != nil {
			t.Skipf("needs %s on PATH: %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and containerd")
	}
}

// openTestHost opens a Host with a private containerd in a new data directory
// and, at cleanup, deletes its guests, closes it and asserts nothing of it
// is left on the host.
func openTestHost(t testing.TB, opts ...Option) (*Host, string) {
	t.Helper()
	needContainerd(t)
	data := vmmtest.DataDir(t)
	ns := testNamespace(t)
	h, err := Open(context.Background(), data, append([]Option{WithNamespace(ns), WithRuntime(RuntimeRunc), WithIDBase(testIDBase(t)), WithLogger(logtest.Logger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, g := range h.Guests(context.Background()) {
			if err := h.Delete(context.Background(), g.Spec.ID); err != nil {
				t.Errorf("cleanup: delete %s: %v", g.Spec.ID, err)
			}
		}
		h.Close()
		assertNoLeaks(t, data, ns, nil)
	})
	return h, data
}

// assertNoLeaks checks that no loop device, mount, cgroup, containerd object
// (when c is given) or console FIFO of the data directory/namespace remains.
func assertNoLeaks(t testing.TB, data, ns string, c *client.Client) {
	t.Helper()
	leaked := testguest.LoopDevicesLeft(func(backing string) bool { return strings.Contains(backing, filepath.Dir(data)) })
	for _, l := range leaked {
		t.Errorf("leaked loop device %s", l)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, data) || strings.Contains(line, "/"+ns+"/") {
			t.Errorf("leaked mount: %s", line)
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	for _, cg := range cgroups {
		t.Errorf("leaked cgroup %s", cg)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "run"))
	for _, e := range entries {
		if inner, _ := os.ReadDir(filepath.Join(data, "run", e.Name())); e.Name() == "netns" && len(inner) == 0 {
			continue // the network's (empty) namespace directory
		}
		t.Errorf("leaked console FIFO directory or namespace: run/%s", e.Name())
	}
	if c != nil {
		ctx := namespaces.WithNamespace(context.Background(), ns)
		cs, err := c.Containers(ctx)
		if err != nil {
			t.Errorf("list containers: %v", err)
		}
		for _, x := range cs {
			t.Errorf("leaked container %s", x.ID())
		}
	}
}

func guestID(t testing.TB, i int) string {
	return fmt.Sprintf("g%d-%s", i, testNamespace(t)[len("hearth-test-"):])
}

// waitConsole waits until the guest's console shows want.
func waitConsole(t testing.TB, c *guest.Console, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if bytes.Contains(c.Backlog(), []byte(want)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("console never showed %q; it has:\n%s", want, c.Backlog())
}

// shellMarker types a command that prints a marker computed in the guest, so
// the echo of the typed line cannot match it.
func shellMarker(t testing.TB, c *guest.Console, n int) {
	t.Helper()
	if _, err := c.Write([]byte(fmt.Sprintf("echo mark-$((%d+1))\n", n))); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, c, fmt.Sprintf("mark-%d", n+1))
}

func TestGuestLifecycle(t *testing.T) {
	h, _ := openTestHost(t)
	exits := make(chan guest.Exit, 4)
	h.OnExit(func(e guest.Exit) { exits <- e })
	img := testguest.Image(t, 64<<20)
	id := guestID(t, 0)
	spec := guest.Spec{ID: id, Hostname: "lifecycle", CPU: 1000, Mem: 128, Boot: guest.Disk{Device: "hda", Image: img}}
	if err := h.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background(), spec); !errors.Is(err, guest.ErrRunning) {
		t.Fatalf("second start: %v, want guest.ErrRunning", err)
	}
	c, ok := h.Console(id)
	if !ok {
		t.Fatal("no console")
	}
	shellMarker(t, c, 41)
	c.Write([]byte("hostname\n"))
	waitConsole(t, c, "lifecycle")
	c.Write([]byte("stty size\n"))
	waitConsole(t, c, fmt.Sprintf("%d %d", TerminalRows, TerminalColumns))

	st, err := h.Status(context.Background(), id)
	if err != nil || st.State != guest.Running || st.Spec.SMP != 1 || st.Started.IsZero() {
		t.Fatalf("status %+v, %v", st, err)
	}
	// runc's state is the instance's, under DATA, not in the host-wide default.
	if _, err := os.Stat(filepath.Join(h.runDir, "runc", h.namespace, id, "state.json")); err != nil {
		t.Errorf("runc state not under DATA/run/runc: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", h.namespace, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runc state in the host-wide /run/containerd/runc: %v", err)
	}

	// The quota follows cpu, live.
	quota := func() string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", h.namespace, id, "cpu.cfs_quota_us"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	want := fmt.Sprint(int64(1000 / h.CoreMHz() * cfsPeriod))
	if got := quota(); got != want {
		t.Errorf("quota %s, want %s", got, want)
	}
	if err := h.SetCPU(context.Background(), id, 2000, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := quota(), fmt.Sprint(int64(min(2000/h.CoreMHz(), 1)*cfsPeriod)); got != want {
		t.Errorf("quota after SetCPU %s, want %s", got, want)
	}
	if pids, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", h.namespace, id, "pids.max")); strings.TrimSpace(string(pids)) != fmt.Sprint(guestPidsLimit) {
		t.Errorf("pids.max %q", pids)
	}
	mem, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", h.namespace, id, "memory.limit_in_bytes"))
	if strings.TrimSpace(string(mem)) != fmt.Sprint(128<<20) {
		t.Errorf("memory limit %s", mem)
	}

	c.Write([]byte("dd if=/dev/zero of=/tmp/x bs=1k count=100 && sync\n"))
	shellMarker(t, c, 50)
	cnt, err := h.Counters(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Disks["hda"].ReadBytes == 0 {
		t.Errorf("counters did not move: %+v", cnt)
	}
	if u, err := h.Usage(context.Background(), id); err != nil || u.CPUNanos == 0 || u.MemoryBytes == 0 {
		t.Errorf("usage %+v, %v", u, err)
	}

	if err := h.Pause(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Status(context.Background(), id); st.State != guest.Paused {
		t.Errorf("state %s after pause", st.State)
	}
	c.Write([]byte("echo thawed-$((1+1))\n"))
	time.Sleep(200 * time.Millisecond)
	if bytes.Contains(c.Backlog(), []byte("thawed-2")) {
		t.Error("a paused guest answered")
	}
	if err := h.Resume(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, c, "thawed-2")

	// Power-off: busybox init runs its shutdown actions and ends.
	if err := h.Signal(context.Background(), id, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exits:
		if e.ID != id {
			t.Errorf("exit of %s", e.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit event after SIGTERM")
	}
	waitConsole(t, c, "hearth-guest: shutting down")
	if st, _ := h.Status(context.Background(), id); st.State != guest.Stopped {
		t.Errorf("state %s after exit", st.State)
	}
	if err := h.Kill(context.Background(), id); !errors.Is(err, guest.ErrNotRunning) {
		t.Errorf("kill after exit: %v", err)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exits:
		t.Errorf("extra exit %+v", e)
	default:
	}
}

func TestGuestWithoutInitRunsShell(t *testing.T) {
	h, _ := openTestHost(t)
	img := testguest.Image(t, 32<<20, testguest.WithoutInit())
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	c.Write([]byte("cat /proc/1/cmdline; echo\n"))
	waitConsole(t, c, "/bin/sh\x00")
	if tty := controllingTTY(t, c); tty == 0 {
		t.Error("the shell Hearth started as PID 1 lost the console as its controlling terminal")
	}
	exits := make(chan guest.Exit, 1)
	h.OnExit(func(e guest.Exit) { exits <- e })
	if err := h.Kill(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exits:
		if e.Status != 128+9 {
			t.Errorf("exit status %d after SIGKILL", e.Status)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit event after SIGKILL")
	}
}

// controllingTTY is the device number of the controlling terminal of the
// shell reading the console (0: none), from its /proc/PID/stat.
func controllingTTY(t *testing.T, c *guest.Console) int {
	t.Helper()
	c.Write([]byte("set -- $(cat /proc/$$/stat); echo ctty-$7-end\n"))
	re := regexp.MustCompile(`ctty-(\d+)-end`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindSubmatch(c.Backlog()); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the shell never said its controlling terminal; the console has:\n%s", c.Backlog())
	return 0
}

// TestConsoleGetty: busybox's getty on the console, as an Alpine-style
// inittab starts it, takes the console as its controlling terminal (init
// holds none) and runs the shell it is given there.
func TestConsoleGetty(t *testing.T) {
	h, _ := openTestHost(t)
	img := testguest.Image(t, 32<<20, testguest.WithInitTab(
		"::sysinit:/bin/mount -t proc proc /proc\n"+
			"console::respawn:/sbin/getty -n -l /bin/sh 0 console\n"))
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	// getty flushes what was typed before it, so the shell's banner first.
	waitConsole(t, c, "built-in shell")
	shellMarker(t, c, 6)
	// tty_nr keeps minors above 255 above the major: unix.Major decodes it.
	if tty := controllingTTY(t, c); unix.Major(uint64(tty)) < ptySlaveMajorFirst || unix.Major(uint64(tty)) > ptySlaveMajorLast {
		t.Errorf("the getty's shell has controlling terminal %d, want the console (a pty)", tty)
	}
	if bytes.Contains(c.Backlog(), []byte("TIOCSCTTY")) {
		t.Errorf("getty could not take the console:\n%s", c.Backlog())
	}
	c.Write([]byte("echo init-ctty-$(cut -d' ' -f7 /proc/1/stat)-end\n"))
	waitConsole(t, c, "init-ctty-0-end")
}

// TestSignalAtStart: a power-off signal sent before the guest's init has
// its handler (this init installs it half a second after it starts; busybox
// init takes milliseconds) waits for it instead of being ignored, as an init
// ignores every signal it does not catch.
func TestSignalAtStart(t *testing.T) {
	h, _ := openTestHost(t)
	exits := make(chan guest.Exit, 1)
	h.OnExit(func(e guest.Exit) { exits <- e })
	img := testguest.Image(t, 32<<20, testguest.WithInitScript(
		"#!/bin/sh\nsleep 0.5\ntrap 'echo powering off; exit 7' USR2\nwhile :; do sleep 1; done\n"))
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Signal(context.Background(), id, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exits:
		if e.Status != 7 {
			t.Errorf("exit status %d, want 7 (init's power-off)", e.Status)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGUSR2 sent before init caught it was lost")
	}
}

func TestBootDriveWithoutFilesystem(t *testing.T) {
	h, data := openTestHost(t)
	img := filepath.Join(data, "blank.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	err := h.Start(context.Background(), guest.Spec{ID: guestID(t, 0), Boot: guest.Disk{Image: img}})
	if !errors.Is(err, guest.ErrBootDrive) || !strings.Contains(err.Error(), "no ext4") {
		t.Fatalf("start on a blank drive: %v, want guest.ErrBootDrive naming ext4", err)
	}
	err = h.Start(context.Background(), guest.Spec{ID: guestID(t, 1), Boot: guest.Disk{Image: filepath.Join(data, "absent.img")}})
	if !errors.Is(err, guest.ErrBootDrive) {
		t.Fatalf("start on a missing drive: %v, want guest.ErrBootDrive", err)
	}
	if len(h.Guests(context.Background())) != 0 {
		t.Error("a failed start left a guest")
	}
}

// TestNewTaskMountFailure passes the ext4 check but not the kernel's: a
// superblock magic with nothing valid behind it.
func TestNewTaskMountFailure(t *testing.T) {
	h, data := openTestHost(t)
	img := filepath.Join(data, "fake.img")
	b := make([]byte, 4<<20)
	b[1024+0x38], b[1024+0x39] = 0x53, 0xEF
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err := h.Start(context.Background(), guest.Spec{ID: guestID(t, 0), Boot: guest.Disk{Image: img}})
	if !errors.Is(err, guest.ErrBootDrive) {
		t.Fatalf("start: %v, want guest.ErrBootDrive", err)
	}
}

func TestGuestDisks(t *testing.T) {
	h, data := openTestHost(t)
	img := testguest.Image(t, 32<<20)
	rw := filepath.Join(data, "rw.img")
	ro := filepath.Join(data, "ro.img")
	os.WriteFile(rw, make([]byte, 1<<20), 0o600)
	os.WriteFile(ro, bytes.Repeat([]byte("cdrom-data "), 1<<16), 0o600)
	id := guestID(t, 0)
	err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Device: "hda", Image: img}, Disks: []guest.Disk{
		{Device: "sdb", Key: "scsi:0:1", Image: rw}, {Device: "hdc", Image: ro, ReadOnly: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	c.Write([]byte("echo written-by-guest | dd of=/dev/sdb conv=fsync 2>/dev/null; echo rw-$((1+1))\n"))
	waitConsole(t, c, "rw-2")
	c.Write([]byte("head -c 10 /dev/hdc; echo; echo x | dd of=/dev/hdc 2>/dev/null || echo ro-$((2+1))\n"))
	waitConsole(t, c, "cdrom-data")
	waitConsole(t, c, "ro-3")
	cnt, err := h.Counters(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	// Counters are named by the server's device key (a guest an older
	// Hearth recorded without one: by its device name).
	if cnt.Disks["scsi:0:1"].WriteBytes == 0 || cnt.Disks["hdc"].ReadBytes == 0 {
		t.Errorf("disk counters did not move, or are not named by the device key: %+v", cnt.Disks)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(rw)
	if !bytes.HasPrefix(got, []byte("written-by-guest")) {
		t.Errorf("the guest's write did not reach the image: %q", got[:32])
	}
}

// TestNoLeaks runs twenty guests through create, start, stop and destroy
// and checks containerd too.
func TestNoLeaks(t *testing.T) {
	h, data := openTestHost(t)
	img := testguest.Image(t, 32<<20)
	disk := filepath.Join(data, "disk.img")
	os.WriteFile(disk, make([]byte, 1<<20), 0o600)
	exits := make(chan guest.Exit, 32)
	h.OnExit(func(e guest.Exit) { exits <- e })
	for i := 0; i < 20; i++ {
		id := guestID(t, i)
		spec := guest.Spec{ID: id, Boot: guest.Disk{Image: img}, Disks: []guest.Disk{{Device: "sdb", Image: disk, ReadOnly: true}}}
		if err := h.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		if err := h.Kill(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exits:
		case <-time.After(20 * time.Second):
			t.Fatal("no exit event")
		}
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	assertNoLeaks(t, data, h.namespace, h.client)
}

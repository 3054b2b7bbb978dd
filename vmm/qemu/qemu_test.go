package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/internal/logtest"
)

// These tests run the real QEMU (Debian's qemu-system-x86) on blank
// drives: SeaBIOS finds nothing to boot and waits, which is all QMP needs.

type running struct {
	vm     VM
	cmd    *exec.Cmd
	out    *logtest.Buffer // QEMU's stdout and stderr
	exited chan struct{}   // closed when QEMU has exited (cmd.ProcessState set)
	client *Client
}

// blank makes a sparse image of size bytes in dir.
func blank(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// startQEMU runs Command(vm) with Env(vm) and connects QMP; cleanup kills
// QEMU (runDir's cleanup removes the sockets a killed QEMU leaves).
// prefix runs before QEMU's argv (ip netns exec NS, which execs QEMU).
func startQEMU(t *testing.T, vm VM, prefix ...string) *running {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Skipf("%s not installed (Debian package %s): %v", Binary, Package, err)
	}
	argv, err := Command(vm)
	if err != nil {
		t.Fatal(err)
	}
	argv = append(prefix, argv...)
	r := &running{vm: vm, out: &logtest.Buffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Env = append(os.Environ(), Env(vm)...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }() //nolint:errcheck // the exit status is read from ProcessState
	t.Cleanup(func() {
		if r.client != nil {
			r.client.Close()
		}
		r.cmd.Process.Kill()
		<-r.exited
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		r.client, err = Connect(ctx, filepath.Join(vm.RunDir, QMPSocket))
		if err == nil {
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("QEMU exited (%v) before QMP answered:\n%s", r.cmd.ProcessState, r.out)
		case <-ctx.Done():
			t.Fatalf("QMP never answered: %v\n%s", err, r.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runDir is a short directory (unix socket paths are at most 107 bytes).
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qemu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// next waits for an event of kind, failing on the way the other events it skips.
func next(t *testing.T, events <-chan Event, kind string) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var skipped []string
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("events closed before %s (skipped %v)", kind, skipped)
			}
			if e.Kind == kind {
				return e
			}
			skipped = append(skipped, e.Kind)
		case <-ctx.Done():
			t.Fatalf("no %s event (skipped %v)", kind, skipped)
		}
	}
}

// openFlags maps each image path QEMU holds open to its open(2) flags.
func openFlags(t *testing.T, pid int) map[string]int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]int{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(info)) {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				f, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				flags[target] = int(f)
			}
		}
	}
	return flags
}

func TestQEMU(t *testing.T) {
	dir := runDir(t)
	vm := VM{Name: "qemu-test", SMP: 1, Mem: 64, RunDir: dir, Drives: []Drive{
		{Key: "ide:0:0", Image: blank(t, dir, "disk.img", 1<<20)},
		{Key: "ide:1:0", Image: blank(t, dir, "cd.iso", 1<<20), CDROM: true},
		{Key: "ata:0:1", Image: blank(t, dir, "ata.img", 1<<20)},
		{Key: "scsi:0:2", Image: blank(t, dir, "library.img", 1<<20), ReadOnly: true},
		{Key: "block:0", Image: blank(t, dir, "vd.img", 1<<20)},
		// A CD and a read-only disk on every bus kind QEMU must accept.
		{Key: "ide:0:1", Image: blank(t, dir, "ide-ro.img", 1<<20), ReadOnly: true},
		{Key: "ata:0:0", Image: blank(t, dir, "ata.iso", 1<<20), CDROM: true},
		{Key: "scsi:0:3", Image: blank(t, dir, "scsi.iso", 1<<20), CDROM: true},
		{Key: "block:1", Image: blank(t, dir, "vd.iso", 1<<20), CDROM: true},
		{Key: "block:2", Image: blank(t, dir, "vd-ro.img", 1<<20), ReadOnly: true},
	}, Boot: []string{"ide:1:0", "ide:0:0"}}
	r := startQEMU(t, vm)
	ctx := context.Background()
	events := r.client.Events(ctx)

	if s, err := r.client.Status(ctx); err != nil || !s.Running || s.State != "running" {
		t.Fatalf("Status = %+v, %v; want running", s, err)
	}

	stats, err := r.client.BlockStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range vm.Drives {
		want = append(want, d.Key)
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(stats)); !slices.Equal(got, want) {
		t.Errorf("BlockStats keys %v, want %v", got, want)
	}

	t.Run("read-only drives are opened read-only", func(t *testing.T) {
		flags := openFlags(t, r.cmd.Process.Pid)
		for _, d := range vm.Drives {
			f, ok := flags[d.Image]
			if !ok {
				t.Errorf("%s: %s not open in QEMU (%v)", d.Key, d.Image, flags)
				continue
			}
			readOnly := f&(os.O_WRONLY|os.O_RDWR) == 0
			if readOnly != (d.CDROM || d.ReadOnly) {
				t.Errorf("%s: %s open with flags %o, read-only %v", d.Key, d.Image, f, readOnly)
			}
		}
		// The throwaway layer is QEMU's temporary file, in the run dir and unlinked.
		var layers []string
		for path := range flags {
			if strings.HasPrefix(path, dir+"/") && strings.HasSuffix(path, " (deleted)") {
				layers = append(layers, path)
			}
		}
		if len(layers) != 3 { // scsi:0:2, ide:0:1, block:2
			t.Errorf("throwaway layers in %s: %v, want three, deleted", dir, layers)
		}
	})

	t.Run("vnc socket speaks RFB", func(t *testing.T) {
		conn, err := net.Dial("unix", filepath.Join(dir, VNCSocket))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		greeting, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(greeting, "RFB 003.008") {
			t.Errorf("VNC greeting %q, %v", greeting, err)
		}
	})

	if err := r.client.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	next(t, events, EventStop)
	if s, err := r.client.Status(ctx); err != nil || s.Running || s.State != "paused" {
		t.Errorf("Status after Pause = %+v, %v; want paused", s, err)
	}
	if err := r.client.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	next(t, events, EventResume)
	if s, err := r.client.Status(ctx); err != nil || !s.Running {
		t.Errorf("Status after Resume = %+v, %v; want running", s, err)
	}

	if err := r.client.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events, EventReset); e.Guest || e.Reason != "host-qmp-system-reset" {
		t.Errorf("RESET event %+v, want from the host by QMP", e)
	}

	// SeaBIOS with nothing booted has no ACPI handler: the button is
	// pressed (POWERDOWN) and the VM keeps running.
	if err := r.client.PowerDown(ctx); err != nil {
		t.Fatal(err)
	}
	next(t, events, EventPowerdown)
	if s, err := r.client.Status(ctx); err != nil || !s.Running {
		t.Errorf("Status after PowerDown without an OS = %+v, %v; want still running", s, err)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.client.Status(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Status with a canceled context: %v", err)
	}

	if err := r.client.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events, EventShutdown); e.Guest || e.Reason != "host-qmp-quit" {
		t.Errorf("SHUTDOWN event %+v, want from the host by QMP quit", e)
	}
	<-r.exited
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("QEMU exit code %d after quit:\n%s", code, r.out)
	}
	// QEMU removes its QMP socket; the VNC socket stays (see the package doc).
	if _, err := os.Stat(filepath.Join(dir, QMPSocket)); err == nil {
		t.Errorf("%s left behind after QEMU quit", QMPSocket)
	}
	for range events { // closed once QEMU has gone (a hang here fails by the test's timeout)
	}
	if _, err := r.client.Status(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Status after QEMU exited: %v, want ErrClosed", err)
	}
	if out := r.out.String(); out != "" {
		t.Logf("QEMU said:\n%s", out)
	}
}

// TestQEMUQMPRefusal: QEMU's refusal of a command is an error that is not ErrClosed.
func TestQEMUQMPRefusal(t *testing.T) {
	r := startQEMU(t, VM{Name: "qemu-refusal", SMP: 1, Mem: 64, RunDir: runDir(t)})
	ctx := context.Background()
	err := r.client.run(ctx, nil, "no-such-command", nil)
	if err == nil || errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "no-such-command") {
		t.Errorf("an unknown command: %v", err)
	}
	if s, err := r.client.Status(ctx); err != nil || !s.Running {
		t.Errorf("Status after a refused command = %+v, %v", s, err)
	}
}

// TestQEMURestart: a second QEMU in the same run dir starts although the
// first left its VNC socket behind.
func TestQEMURestart(t *testing.T) {
	dir := runDir(t)
	vm := VM{Name: "qemu-restart", SMP: 1, Mem: 64, RunDir: dir}
	ctx := context.Background()
	first := startQEMU(t, vm)
	if err := first.client.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	if _, err := os.Stat(filepath.Join(dir, VNCSocket)); err != nil {
		t.Logf("QEMU removed its VNC socket on exit this time (%v)", err)
	}
	second := startQEMU(t, vm)
	if s, err := second.client.Status(ctx); err != nil || !s.Running {
		t.Errorf("Status of the second QEMU = %+v, %v", s, err)
	}
}

// TestQEMUNICs starts a VM with a NIC of each model on taps in a
// throwaway network namespace and reads each NIC's MAC back from QEMU.
func TestQEMUNICs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tap devices need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs ip (iproute2): %v", err)
	}
	ns := fmt.Sprintf("hqemu%x", time.Now().UnixNano()&0xffffff)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	vm := VM{Name: "qemu-nics", SMP: 1, Mem: 64, RunDir: runDir(t)}
	for i, model := range []string{"e1000", "rtl8139", "virtio"} {
		tap := fmt.Sprintf("tap%d", i)
		ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
		vm.NICs = append(vm.NICs, NIC{Index: i, Model: model, MAC: fmt.Sprintf("02:00:00:00:00:0%d", i), Tap: tap})
	}
	r := startQEMU(t, vm, "ip", "netns", "exec", ns)
	ctx := context.Background()
	for _, n := range vm.NICs {
		if mac, err := r.client.NICMAC(ctx, n.Index); err != nil {
			t.Errorf("nic:%d (%s): %v", n.Index, n.Model, err)
		} else if mac != n.MAC {
			t.Errorf("nic:%d (%s) has MAC %s, want %s", n.Index, n.Model, mac, n.MAC)
		}
	}
}

// TestQEMUKVM runs a VM with -accel kvm where the host has KVM.
func TestQEMUKVM(t *testing.T) {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		t.Skipf("no usable /dev/kvm (%v): KVM VMs are not tested here", err)
	} else {
		f.Close()
	}
	r := startQEMU(t, VM{Name: "qemu-kvm", SMP: 2, Mem: 64, KVM: true, RunDir: runDir(t)})
	if s, err := r.client.Status(context.Background()); err != nil || !s.Running {
		t.Errorf("Status under KVM = %+v, %v", s, err)
	}
}

// bootSector is a disk whose boot sector writes msg to COM1 and halts.
func bootSector(t *testing.T, dir, name, msg string) string {
	t.Helper()
	code := []byte{
		0xfc,       // cld
		0x31, 0xc0, // xor ax, ax
		0x8e, 0xd8, // mov ds, ax
		0xbe, 0x16, 0x7c, // mov si, 0x7c16 (msg)
		0xac,       // next: lodsb
		0x84, 0xc0, // test al, al
		0x74, 0x06, // jz halt
		0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
		0xee,       // out dx, al
		0xeb, 0xf5, // jmp next
		0xf4,       // halt: hlt
		0xeb, 0xfd, // jmp halt
	}
	sector := make([]byte, 512)
	copy(sector, append(code, msg+"\r\n\x00"...))
	sector[510], sector[511] = 0x55, 0xaa
	path := blank(t, dir, name, 1<<20)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(sector, 0); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitOutput waits until QEMU's stdout holds want n times.
func waitOutput(t *testing.T, r *running, want string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for strings.Count(r.out.String(), want) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("serial console never showed %q %d times:\n%s", want, n, r.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestQEMUBootOrderAndSerial boots the first device of the boot order
// (block:0 before ide:0:0, both bootable) and reads its serial output on
// QEMU's stdout; a Reset boots it again.
func TestQEMUBootOrderAndSerial(t *testing.T) {
	dir := runDir(t)
	vm := VM{Name: "qemu-boot", SMP: 1, Mem: 64, RunDir: dir, Drives: []Drive{
		{Key: "ide:0:0", Image: bootSector(t, dir, "ide.img", "booted ide:0:0")},
		{Key: "block:0", Image: bootSector(t, dir, "vd.img", "booted block:0"), ReadOnly: true},
	}, Boot: []string{"block:0", "ide:0:0"}}
	r := startQEMU(t, vm)
	waitOutput(t, r, "booted block:0\r\n", 1)
	if err := r.client.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, r, "booted block:0\r\n", 2)
	if strings.Contains(r.out.String(), "ide:0:0") {
		t.Errorf("booted ide:0:0, which is second in the boot order:\n%s", r.out)
	}
	stats, err := r.client.BlockStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := stats["block:0"]; s.ReadRequests == 0 || s.ReadBytes < 512 {
		t.Errorf("block:0 counters after two boots: %+v", s)
	}
}

package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/qemu"
)

// Boot sectors (16-bit code loaded at 0x7c00 by SeaBIOS), assembled with
// GNU as (--32, .code16; ld -Ttext 0 --oformat binary).
var (
	// sectorPowerOff enters ACPI S5: SeaBIOS puts the PIIX4 PM I/O base
	// at 0x600, PM1a_CNT is at base+4, and SLP_EN (bit 13) with SLP_TYP 0
	// is QEMU's soft power-off (hw/acpi/core.c).
	//   mov dx, 0x604; mov ax, 0x2000; out dx, ax; hlt; jmp hlt
	sectorPowerOff = []byte{0xba, 0x04, 0x06, 0xb8, 0x00, 0x20, 0xef, 0xf4, 0xeb, 0xfd}
	// sectorRebootOnce reboots through the keyboard controller (out 0x64,
	// 0xfe) the first time, marking CMOS byte 0x4f (kept across a reset);
	// the second time it writes "rebooted" to COM1 and halts.
	sectorRebootOnce = []byte{
		0xfc, 0x31, 0xc0, 0x8e, 0xd8, // cld; xor ax, ax; mov ds, ax
		0xb0, 0x4f, 0xe6, 0x70, 0xe4, 0x71, // mov al, 0x4f; out 0x70, al; in al, 0x71
		0x84, 0xc0, 0x75, 0x0f, // test al, al; jnz second
		0xb0, 0x4f, 0xe6, 0x70, 0xb0, 0x01, 0xe6, 0x71, // CMOS[0x4f] = 1
		0xb0, 0xfe, 0xe6, 0x64, // mov al, 0xfe; out 0x64, al (reset)
		0xf4, 0xeb, 0xfd, // halt: hlt; jmp halt
		0xba, 0xf8, 0x03, 0xbe, 0x2c, 0x7c, // second: mov dx, 0x3f8; mov si, msg
		0xac, 0x84, 0xc0, 0x74, 0xf2, 0xee, 0xeb, 0xf8, // lodsb; test al, al; jz halt; out dx, al; jmp
		'r', 'e', 'b', 'o', 'o', 't', 'e', 'd', '\r', '\n', 0, // msg
	}
)

// bootSectorDrive is a 1 MiB drive whose boot sector is code.
func (f *managerFixture) bootSectorDrive(code []byte) string {
	d, err := f.Store.CreateDriveFrom(context.Background(), storage.Drive{Owner: f.Owner, Name: "mbr"}, func(path string) error {
		return os.WriteFile(path, bootSector(code), 0o600)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d.ID
}

func bootSector(code []byte) []byte {
	disk := make([]byte, 1<<20)
	copy(disk, code)
	disk[510], disk[511] = 0x55, 0xaa
	return disk
}

// waitEvent waits for a QMP event of kind.
func waitEvent(t *testing.T, events <-chan qemu.Event, kind string) qemu.Event {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("QMP events ended before %s", kind)
			}
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no QMP %s event", kind)
		}
	}
}

// waitEvents waits until the server has n events of kind and returns them.
func (f *managerFixture) waitEvents(id, kind string, n int) []string {
	f.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if got := f.Events(id, kind); len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

func (f *managerFixture) qemuPid(id string) uint32 {
	f.t.Helper()
	g, err := f.host.lookup(id)
	if err != nil {
		f.t.Fatal(err)
	}
	return g.task.Pid()
}

// TestManagerVMPowersItselfOff: a guest that enters ACPI S5 ends QEMU
// (status 0 after a guest SHUTDOWN), and the server stops as after a
// container's own poweroff.
func TestManagerVMPowersItselfOff(t *testing.T) {
	f := newManagerFixture(t)
	if err := f.host.canRunVMs(); err != nil {
		t.Skip(err)
	}
	id := f.Server(map[string]string{"type": "vm", "ide:0:0": f.bootSectorDrive(sectorPowerOff), "mem": "64", "persistent": "true"})
	if err := f.m.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(id, storage.StatusStopped)
	if got := f.waitEvents(id, "server.exit", 1); len(got) != 1 || got[0] != "the guest powered itself off" {
		t.Errorf("exit events %q, want the guest's own poweroff", got)
	}
}

// TestManagerVMPower drives a VM whose boot sector reboots it once and
// then halts (ignoring ACPI): its own reboot keeps the same QEMU running and
// is recorded once (not the firmware's follow-up resets); pause and resume
// stop and continue the vCPUs; reset is a QMP reset of the same QEMU; the
// drive counters are QEMU's; shutdown presses the ACPI power button and,
// unanswered, kills it after the grace period.
func TestManagerVMPower(t *testing.T) {
	f := newManagerFixture(t, vmm.WithGracePeriod(2*time.Second))
	if err := f.host.canRunVMs(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := f.Server(map[string]string{"type": "vm", "ide:0:0": f.bootSectorDrive(sectorRebootOnce), "mem": "64", "persistent": "true"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	pid := f.qemuPid(id)
	con, _ := f.host.Console(id)
	waitConsole(t, con, "rebooted")
	qmp := connectQMP(ctx, t, f.host, id)
	if got := f.waitEvents(id, "server.reboot", 1); len(got) != 1 || got[0] != "the guest rebooted itself" {
		t.Errorf("reboot events %q, want one", got)
	}

	// Pause and resume are QMP's stop and cont; their answers also mean
	// every event before them was read.
	if err := f.m.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, err := qmp.Status(ctx); err != nil || st.State != "paused" || f.Status(id) != storage.StatusPaused {
		t.Errorf("after pause: QEMU %+v %v, server %s", st, err, f.Status(id))
	}
	if err := f.m.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, err := qmp.Status(ctx); err != nil || !st.Running || f.Status(id) != storage.StatusActive {
		t.Errorf("after resume: QEMU %+v %v, server %s", st, err, f.Status(id))
	}
	if got := f.waitEvents(id, "server.reboot", 1); len(got) != 1 {
		t.Errorf("reboot events %q: the firmware's resets were taken for the guest's", got)
	}

	before, _ := f.Store.Server(ctx, id)
	events := qmp.Events(ctx)
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, events, qemu.EventReset); e.Guest || e.Reason != "host-qmp-system-reset" {
		t.Errorf("reset: %+v, want QMP's system_reset", e)
	}
	// CMOS keeps the mark: after the reset it says so again and halts.
	for strings.Count(string(con.Backlog()), "rebooted") < 2 {
		if ctx.Err() != nil {
			t.Fatalf("the boot sector did not run again after the reset:\n%s", con.Backlog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := f.qemuPid(id); got != pid {
		t.Errorf("QEMU pid %d after reset, want the same %d", got, pid)
	}
	if after, _ := f.Store.Server(ctx, id); after.Status != storage.StatusActive || !after.Started.Equal(before.Started) {
		t.Errorf("after reset: %s started %s, want active, started %s", after.Status, after.Started, before.Started)
	}

	o, ok := f.m.Observe(ctx, id)
	if d := o.Disks["ide:0:0"]; !ok || d.ReadBytes < 512 || d.ReadRequests == 0 {
		t.Errorf("drive counters %+v (%v), want QEMU's reads of the boot sector", o.Disks, ok)
	}

	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, qemu.EventPowerdown)
	f.WaitStatus(id, storage.StatusStopped)
	want := "killed: the guest did not power off within the 2 s grace period (asked with the ACPI power button)"
	if got := f.waitEvents(id, "server.kill", 1); len(got) != 1 || got[0] != want {
		t.Errorf("kill events %q, want %q", got, want)
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU (pid %d) still there after the kill: %v", pid, err)
	}
}

// TestVMReadoptedPower: a VM paused through QMP is adopted paused by the
// next Host, whose own connection to QEMU's monitor resumes, resets and
// presses the power button of it, and reads its drive counters.
func TestVMReadoptedPower(t *testing.T) {
	h, data := openTestHost(t)
	if err := h.canRunVMs(); err != nil {
		t.Skip(err)
	}
	disk := filepath.Join(data, "disk.img")
	if err := os.WriteFile(disk, bootSector(sectorRebootOnce), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := guestID(t, 0)
	if err := h.Start(ctx, guest.Spec{ID: id, Type: guest.TypeVM, Mem: 64, IDSlot: 1, Boot: guest.Disk{Device: "ide:0:0", Key: "ide:0:0", Image: disk}}); err != nil {
		t.Fatal(err)
	}
	con, _ := h.Console(id)
	waitConsole(t, con, "rebooted")
	if err := h.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.Close()

	h, err := Open(ctx, data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithIDBase(h.idBase), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // on failure too: the VM must not outlive the test
		h.Delete(context.Background(), id)
		h.Close()
	}()
	if st, err := h.Status(ctx, id); err != nil || st.State != guest.Paused || !st.Buttons {
		t.Fatalf("adopted: %+v %v, want a paused VM with buttons", st, err)
	}
	g, _ := h.lookup(id)
	if g.monitor == nil {
		t.Fatal("no QMP connection after adoption")
	}
	events := g.monitor.client.Events(ctx)
	if err := h.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, qemu.EventResume)
	if err := h.Press(ctx, id, guest.ResetButton); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, qemu.EventReset)
	con, _ = h.Console(id) // the adopted guest's: the boot sector runs again after the reset
	waitConsole(t, con, "rebooted")
	if err := h.Press(ctx, id, guest.PowerButton); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, qemu.EventPowerdown)
	c, err := h.Counters(ctx, id)
	if d := c.Disks["ide:0:0"]; err != nil || d.ReadRequests < 2 || d.ReadBytes < 1024 {
		t.Errorf("counters %+v %v, want QEMU's reads of ide:0:0 (the boot sector, at least twice)", c, err)
	}
}

// TestVMEventReboots: a guest RESET is the guest's own reboot unless it
// follows another reset within firmwareResetWindow of the vCPUs running
// (SeaBIOS's own hard reboots after every reset); a reset made while paused
// counts from the RESUME. A guest SHUTDOWN marks the guest's poweroff.
func TestVMEventReboots(t *testing.T) {
	var rebooted []string
	h := &Host{log: logtest.Logger(t)}
	h.OnReboot(func(id string) { rebooted = append(rebooted, id) })
	g := &instance{spec: guest.Spec{ID: "v", Type: guest.TypeVM}}
	mon := &vmMonitor{}
	t0 := time.Unix(1700000000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, e := range []qemu.Event{
		{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(0)},                                    // the guest's reboot
		{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(30 * time.Millisecond)},                // SeaBIOS's
		{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(31 * time.Millisecond)},                // SeaBIOS's
		{Kind: qemu.EventReset, Reason: "host-qmp-system-reset", Time: at(10 * time.Second)},                        // Hearth's
		{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(10*time.Second + 40*time.Millisecond)}, // SeaBIOS's
		{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(20 * time.Second)},                     // the guest's again
	} {
		h.vmEvent(g, mon, e)
	}
	if len(rebooted) != 2 {
		t.Errorf("%d reboots reported, want 2 (the guest's own)", len(rebooted))
	}

	// Paused, reset, resumed much later: the firmware's RESET after the
	// RESUME is still part of that reset.
	rebooted = nil
	g.paused = true
	h.vmEvent(g, mon, qemu.Event{Kind: qemu.EventReset, Reason: "host-qmp-system-reset", Time: at(time.Minute)})
	g.paused = false
	h.vmEvent(g, mon, qemu.Event{Kind: qemu.EventResume, Time: at(2 * time.Minute)})
	h.vmEvent(g, mon, qemu.Event{Kind: qemu.EventReset, Guest: true, Reason: "guest-reset", Time: at(2*time.Minute + 45*time.Millisecond)})
	if len(rebooted) != 0 {
		t.Errorf("the firmware's reset after a resume was taken for the guest's reboot")
	}

	h.vmEvent(g, mon, qemu.Event{Kind: qemu.EventShutdown, Guest: true, Reason: "guest-shutdown", Time: at(3 * time.Minute)})
	if !mon.poweredOff {
		t.Error("a guest SHUTDOWN was not taken for the guest's poweroff")
	}
}

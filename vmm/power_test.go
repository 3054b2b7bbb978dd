package vmm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/ehkeys"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// waitRestarted waits until the server is active with a started other than
// before: the Manager started its guest again.
func (f *fixture) waitRestarted(id string, before time.Time) storage.Server {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		srv := f.row(id)
		if srv.Status == storage.StatusActive && !srv.Started.Equal(before) && f.guestState(id) == guest.Running {
			return srv
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("server %s is %s started %s, want active with a new started", id, srv.Status, srv.Started)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestManagerShutdownSignal: shutdown sends the server's shutdown:signal,
// else what the backend found the guest's init powers off on, else the
// Manager's default.
func TestManagerShutdownSignal(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Hour), vmm.WithPowerOffSignal(syscall.SIGUSR1))
	ctx := context.Background()
	systemd := ehkeys.SIGRTMIN + 4
	f.backend.PowerOff = systemd
	detected := f.started(nil)
	overridden := f.started(map[string]string{"shutdown:signal": "SIGPWR"})
	f.backend.PowerOff = 0
	unknown := f.started(nil)
	broken := f.started(map[string]string{"shutdown:signal": "SIGFOO"})
	for _, id := range []string{detected, overridden, unknown} {
		if err := f.m.Shutdown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]syscall.Signal{detected: systemd, overridden: syscall.SIGPWR, unknown: syscall.SIGUSR1}
	got := f.backend.Signals()
	if len(got) != len(want) {
		t.Fatalf("signals %v, want one each for %v", got, want)
	}
	for _, s := range got {
		if want[s.ID] != s.Sig {
			t.Errorf("server %s got signal %d, want %d", s.ID, s.Sig, want[s.ID])
		}
	}
	if err := f.m.Shutdown(ctx, broken); !errors.Is(err, vmm.ErrInvalid) {
		t.Errorf("shutdown with a bad shutdown:signal: %v, want ErrInvalid", err)
	}
}

// TestManagerGuestPowersOffItself: an in-guest poweroff or halt (status
// 130) ends the server as a shutdown does; so does a power-off request the
// init answers by rebooting (status 129 while a shutdown is in progress).
func TestManagerGuestPowersOffItself(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Hour))
	ctx := context.Background()
	persistent := f.started(map[string]string{"persistent": "true"})
	transient := f.started(nil)
	f.backend.Exit(persistent, 130)
	f.backend.Exit(transient, 130)
	f.WaitStatus(persistent, storage.StatusStopped)
	f.WaitStatus(transient, "destroyed")

	// An init that takes the power-off signal for a reboot request.
	f.backend.OnSignal = func(id string, sig syscall.Signal) (uint32, bool) { return 129, true }
	asked := f.started(map[string]string{"persistent": "true"})
	if err := f.m.Shutdown(ctx, asked); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(asked, storage.StatusStopped)
	if n := len(f.backend.Guests(ctx)); n != 0 {
		t.Errorf("%d guests left after power-off", n)
	}
}

// TestManagerGuestRebootsItself: an in-guest reboot (status 129) starts the
// same server again at once with a new started, its drive claimed
// throughout.
func TestManagerGuestRebootsItself(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	drive := f.drive(nil)
	id := f.started(map[string]string{"ide:0:0": drive})
	before := f.row(id)
	f.backend.Exit(id, 129)
	after := f.waitRestarted(id, before.Started)
	if got := f.claims(drive); len(got) != 1 || !strings.Contains(got[0], id) {
		t.Errorf("drive claimed by %v after the reboot, want %s", got, id)
	}
	if after.Error != "" {
		t.Errorf("error %q after a reboot", after.Error)
	}
	// Stop after a reboot works as always.
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if f.Status(id) != "destroyed" || len(f.claims(drive)) != 0 {
		t.Errorf("after stop: %s, claims %v", f.Status(id), f.claims(drive))
	}
}

// TestManagerRebootLoop: more than 5 reboots within a minute stop the
// server; reboots further apart never do.
func TestManagerRebootLoop(t *testing.T) {
	now := time.Unix(1800000000, 0)
	f := newFixture(t, vmm.WithClock(func() time.Time { return now }))
	looping := f.started(map[string]string{"persistent": "true"})
	for range 5 {
		before := f.row(looping).Started
		now = now.Add(10 * time.Second) // the 6th reboot comes 50 s after the first
		f.backend.Exit(looping, 129)
		f.waitRestarted(looping, before)
	}
	now = now.Add(10 * time.Second)
	f.backend.Exit(looping, 129)
	f.WaitStatus(looping, storage.StatusStopped)
	if n := len(f.backend.Guests(context.Background())); n != 0 {
		t.Errorf("%d guests after the reboot loop was stopped", n)
	}

	steady := f.started(map[string]string{"persistent": "true"})
	for range 8 {
		before := f.row(steady).Started
		now = now.Add(15 * time.Second) // 4 a minute
		f.backend.Exit(steady, 129)
		f.waitRestarted(steady, before)
	}
}

// TestManagerRebootThatCannotStart: a rebooted guest that cannot start
// again (its drive gone to another server meanwhile, say) leaves the server
// dead with the reason, its claims released.
func TestManagerRebootThatCannotStart(t *testing.T) {
	f := newFixture(t)
	drive := f.drive(nil)
	id := f.started(map[string]string{"ide:0:0": drive, "persistent": "true"})
	f.backend.StartErr = func(guest.Spec) error { return fmt.Errorf("no runtime: %w", vmm.ErrUnavailable) }
	f.backend.Exit(id, 129)
	f.WaitStatus(id, storage.StatusDead)
	if srv := f.row(id); srv.Error == "" {
		t.Error("dead without a reason")
	}
	if got := f.claims(drive); len(got) != 0 {
		t.Errorf("claims %v of a dead server", got)
	}
}

// TestManagerConsoleAfterDeath: the last guest's console output stays
// readable after it ended, until the server starts again or is destroyed.
func TestManagerConsoleAfterDeath(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.started(map[string]string{"persistent": "true"})
	c, _ := f.backend.Console(id)
	c.Output().Write([]byte("Kernel said: no init found\n"))
	f.backend.Exit(id, 255)
	f.WaitStatus(id, storage.StatusStopped)
	out, err := f.m.ConsoleOutput(ctx, id)
	if err != nil || !bytes.Contains(out, []byte("no init found")) {
		t.Errorf("console of a stopped server: %q, %v", out, err)
	}
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if out, err := f.m.ConsoleOutput(ctx, id); err != nil || len(out) != 0 {
		t.Errorf("console after the next start: %q, %v; want the new guest's (empty)", out, err)
	}
	c, _ = f.backend.Console(id)
	c.Output().Write([]byte("second boot\n"))
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if out, _ := f.m.ConsoleOutput(ctx, id); !bytes.Contains(out, []byte("second boot")) {
		t.Errorf("console after stop: %q", out)
	}
	if err := f.m.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.ConsoleOutput(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("console of a destroyed server: %v, want not found", err)
	}

	// A server that never ran, and one that could not start, have none.
	fresh := f.Server(map[string]string{"ide:0:0": f.drive(nil)})
	if out, err := f.m.ConsoleOutput(ctx, fresh); err != nil || out != nil {
		t.Errorf("console of a server that never ran: %q, %v", out, err)
	}
	dead := f.Server(nil)
	if err := f.m.Start(ctx, dead); !errors.Is(err, vmm.ErrBootDrive) {
		t.Fatalf("start without a boot drive: %v", err)
	}
	if out, err := f.m.ConsoleOutput(ctx, dead); err != nil || out != nil {
		t.Errorf("console of a dead server: %q, %v", out, err)
	}
}

// vm is a started server of type vm (its guest has buttons).
func (f *fixture) vm(config map[string]string) string {
	f.t.Helper()
	cfg := map[string]string{"type": "vm"}
	maps.Copy(cfg, config)
	return f.started(cfg)
}

// TestManagerVMShutdown: shutdown of a VM presses its ACPI power button
// (shutdown:signal does not apply), and a VM that ignores it is killed
// after the grace period, the activity log naming the button.
func TestManagerVMShutdown(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Millisecond))
	ctx := context.Background()
	id := f.vm(map[string]string{"shutdown:signal": "SIGPWR"})
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(id, "destroyed")
	if got := f.backend.Presses(); len(got) != 1 || got[0] != (vmmtest.Press{ID: id, Button: guest.PowerButton}) {
		t.Errorf("presses %v, want the power button once", got)
	}
	if got := f.backend.Signals(); len(got) != 0 {
		t.Errorf("signals %v sent to a VM", got)
	}
	want := "killed: the guest did not power off within the 1ms grace period (asked with the ACPI power button)"
	if got := f.Events(id, "server.kill"); len(got) != 1 || got[0] != want {
		t.Errorf("kill events %q, want %q", got, want)
	}

	// A VM that powers off when asked ends as a container does, silently.
	f = newFixture(t, vmm.WithGracePeriod(time.Hour))
	id = f.vm(map[string]string{"persistent": "true"})
	if err := f.m.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Shutdown(ctx, id); err != nil { // a paused VM is resumed first
		t.Fatal(err)
	}
	if f.guestState(id) != guest.Running {
		t.Errorf("guest %s after shutdown of a paused VM, want running (resumed to act on the button)", f.guestState(id))
	}
	f.backend.Exit(id, guest.ExitPoweredOff)
	f.WaitStatus(id, storage.StatusStopped)
	if got := append(f.Events(id, "server.exit"), f.Events(id, "server.kill")...); len(got) != 0 {
		t.Errorf("a power-off that was asked for recorded %q", got)
	}
}

// TestManagerVMReset: reset of a VM presses its reset button: the same
// guest stays (same started), a paused one becomes active, and a shutdown
// in progress ends without a kill.
func TestManagerVMReset(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(50*time.Millisecond))
	ctx := context.Background()
	id := f.vm(map[string]string{"persistent": "true"})
	before := f.row(id)
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Pause(ctx, id); !errors.Is(err, vmm.ErrBusy) {
		t.Errorf("pause while shutting down: %v, want ErrBusy", err)
	}
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.m.Transient(id); ok {
		t.Error("still shutting down after a reset")
	}
	if err := f.m.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	power, reset := vmmtest.Press{ID: id, Button: guest.PowerButton}, vmmtest.Press{ID: id, Button: guest.ResetButton}
	want := []vmmtest.Press{power, reset, reset}
	if got := f.backend.Presses(); !slices.Equal(got, want) {
		t.Errorf("presses %v, want %v", got, want)
	}
	// Something that does not happen can only be waited for: well past the
	// grace period.
	time.Sleep(200 * time.Millisecond)
	if srv := f.row(id); srv.Status != storage.StatusActive || !srv.Started.Equal(before.Started) || f.guestState(id) != guest.Running {
		t.Errorf("after reset: %s started %s (was %s), guest %s; want the same guest active", srv.Status, srv.Started, before.Started, f.guestState(id))
	}
	if got := f.Events(id, "server.kill"); len(got) != 0 {
		t.Errorf("killed after a reset: %q", got)
	}
}

// TestManagerVMRebootsItself: a VM that rebooted itself stays active (the
// same guest); the activity log says so, at most five times a minute.
func TestManagerVMRebootsItself(t *testing.T) {
	f := newFixture(t)
	id := f.vm(nil)
	before := f.row(id)
	for range 8 {
		f.backend.Reboot(id)
	}
	got := f.Events(id, "server.reboot")
	if len(got) != 6 || got[0] != "the guest rebooted itself 6 times within 60 s: further reboots within it are not recorded" || got[5] != "the guest rebooted itself" {
		t.Errorf("reboot events %q, want 5 and the bound", got)
	}
	if srv := f.row(id); srv.Status != storage.StatusActive || !srv.Started.Equal(before.Started) {
		t.Errorf("after reboots: %s started %s, want active, started %s", srv.Status, srv.Started, before.Started)
	}
}

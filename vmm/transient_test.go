package vmm_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
)

// TestManagerTransientStates: a server is Starting while its guest is being
// made, ShuttingDown (with the kill's deadline) from the power-off request
// until the guest is gone, and rests in its status otherwise.
func TestManagerTransientStates(t *testing.T) {
	now := time.Unix(1800000000, 0)
	f := newFixture(t, vmm.WithGracePeriod(time.Hour), vmm.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	id := f.Server(map[string]string{"ide:0:0": f.drive(nil), "persistent": "true"})

	var during vmm.Transient
	f.backend.StartErr = func(spec guest.Spec) error {
		during, _ = f.m.Transient(spec.ID)
		return nil
	}
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if during.State != vmm.Starting {
		t.Errorf("while the guest was being made: %+v, want starting", during)
	}
	if tr, ok := f.m.Transient(id); ok {
		t.Errorf("after the start: %+v, want none", tr)
	}

	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	tr, ok := f.m.Transient(id)
	if !ok || tr.State != vmm.ShuttingDown || !tr.Deadline.Equal(now.Add(time.Hour)) {
		t.Errorf("after the power-off request: %+v %v, want shutting down until %v", tr, ok, now.Add(time.Hour))
	}
	// A second request does not move the kill.
	now = now.Add(time.Minute)
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.m.Transient(id); !again.Deadline.Equal(tr.Deadline) {
		t.Errorf("second shutdown moved the deadline to %v", again.Deadline)
	}
	f.backend.Exit(id, 0)
	f.WaitStatus(id, storage.StatusStopped)
	if tr, ok := f.m.Transient(id); ok {
		t.Errorf("after the guest powered off: %+v, want none", tr)
	}

	// A failed start leaves no transient state behind.
	f.backend.StartErr = func(guest.Spec) error { return guest.ErrNotFound }
	f.m.Start(ctx, id)
	if tr, ok := f.m.Transient(id); ok {
		t.Errorf("after a failed start: %+v, want none", tr)
	}
}

// TestManagerRecordsWhatGuestsDo: the activity log has the kill at the end
// of a grace period and a guest's death with its reason; a power-off that
// was asked for adds nothing of its own.
func TestManagerRecordsWhatGuestsDo(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Millisecond), vmm.WithPowerOffSignal(syscall.SIGPWR))
	ctx := context.Background()
	ignores := f.started(map[string]string{"persistent": "true"}) // ignores the power-off signal
	if err := f.m.Shutdown(ctx, ignores); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(ignores, storage.StatusStopped)
	if got := f.Events(ignores, "server.kill"); len(got) != 1 || !strings.Contains(got[0], "did not power off within the 1ms grace period (asked with SIGPWR)") {
		t.Errorf("kill events %q", got)
	}
	if _, ok := f.m.Transient(ignores); ok {
		t.Error("still shutting down after the kill")
	}

	dies := f.started(map[string]string{"persistent": "true"})
	f.backend.Exit(dies, 128+uint32(syscall.SIGSEGV))
	f.WaitStatus(dies, storage.StatusStopped)
	if got := f.Events(dies, "server.exit"); len(got) != 1 || got[0] != "the guest died: its init was killed by SIGSEGV" {
		t.Errorf("exit events %q", got)
	}
	exits := f.started(map[string]string{"persistent": "true"})
	f.backend.Exit(exits, 3)
	f.WaitStatus(exits, storage.StatusStopped)
	if got := f.Events(exits, "server.exit"); len(got) != 1 || got[0] != "the guest died: its init exited with status 3" {
		t.Errorf("exit events %q", got)
	}

	asked := f.started(map[string]string{"persistent": "true"})
	f.backend.OnSignal = func(string, syscall.Signal) (uint32, bool) { return 130, true }
	if err := f.m.Shutdown(ctx, asked); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(asked, storage.StatusStopped)
	if got := append(f.Events(asked, "server.exit"), f.Events(asked, "server.kill")...); len(got) != 0 {
		t.Errorf("a power-off that was asked for recorded %q", got)
	}
}

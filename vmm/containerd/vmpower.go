package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"hearth/vmm/guest"
	"hearth/vmm/qemu"
)

// A VM's power and state go through QEMU's monitor (QMP), which the Host
// keeps a connection to for each running VM: made once QEMU has started
// (Start waits for it), made again for a VM an earlier Hearth left running
// (adopt.go) and whenever it broke while QEMU runs, closed when the guest
// is deleted or Hearth lets go of it. Its events tell the guest's own
// poweroff (QEMU then exits 0: reported as guest.ExitPoweredOff) and its
// own reboots (QEMU resets in place: OnReboot).

// qmpRetry is the longest pause between attempts to reach the QMP socket of
// a QEMU that is still starting (it makes the socket early in its start).
const qmpRetry = 100 * time.Millisecond

// qmpAdoptTimeout bounds the connection to an adopted VM's monitor: its
// socket is there already, so a QEMU that does not answer at once is
// left for later (qmpOf tries again when Hearth needs it).
const qmpAdoptTimeout = 5 * time.Second

// qmpCountersTimeout bounds a VM's drive counters: server info asks for
// every running server's and must not hang on one busy QEMU.
const qmpCountersTimeout = 5 * time.Second

// qmpDrainTimeout bounds how long an exit of QEMU waits for its monitor's
// last events (the connection ends with the process: milliseconds).
const qmpDrainTimeout = 2 * time.Second

// firmwareResetWindow: a guest RESET that follows another reset this soon
// is part of that reset, not a reboot of the guest's own. SeaBIOS, finding
// itself run before (HaveRunPost), asks for a hard reboot again at once:
// measured on QEMU 7.2 / SeaBIOS 1.16.2 under TCG, every reset (system_reset,
// or the guest's own) is followed within 50 ms of running by two RESET
// events with guest true and reason guest-reset.
const firmwareResetWindow = 2 * time.Second

// vmMonitor is the Host's connection to one VM's QEMU and what its events
// told.
type vmMonitor struct {
	client *qemu.Client
	done   chan struct{} // closed when the connection's events end
	// poweredOff: QEMU reported the guest's own poweroff (SHUTDOWN, guest).
	poweredOff bool
	// resetAt is when the vCPUs last started from a reset: the RESET
	// event, or the RESUME after a reset made while they were stopped.
	resetAt           time.Time
	resetWhileStopped bool
}

// OnReboot sets the function told when a VM guest rebooted itself in place.
// It runs on a monitor's event loop: it must not block.
func (h *Host) OnReboot(fn func(id string)) {
	h.mu.Lock()
	h.onReboot = fn
	h.mu.Unlock()
}

// connectQMP connects to the monitor of g's QEMU and follows its events,
// trying again while QEMU has not made its socket yet, until ctx ends or
// the guest's init exits.
func (h *Host) connectQMP(ctx context.Context, g *instance) (*qemu.Client, error) {
	sock := filepath.Join(h.qemuRunDir(g.spec.ID), qemu.QMPSocket)
	wait := 5 * time.Millisecond
	for {
		c, err := qemu.Connect(ctx, sock, qemu.WithLogger(h.log.With("server", g.spec.ID)))
		if err == nil {
			h.follow(g, c)
			return c, nil
		}
		h.mu.Lock()
		exited := g.exited
		h.mu.Unlock()
		if exited {
			return nil, fmt.Errorf("QEMU ended: %s", lastLine(g.console.Backlog()))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("QEMU's monitor: %w (%w)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, qmpRetry)
	}
}

// follow makes c g's monitor connection and reads its events until it
// ends; a previous connection is closed.
func (h *Host) follow(g *instance, c *qemu.Client) {
	mon := &vmMonitor{client: c, done: make(chan struct{})}
	events := c.Events(h.ctx)
	h.mu.Lock()
	old := g.monitor
	g.monitor = mon
	h.mu.Unlock()
	if old != nil {
		old.client.Close()
	}
	go func() {
		defer close(mon.done)
		for e := range events {
			h.vmEvent(g, mon, e)
		}
	}()
}

// vmEvent records what a QMP event tells of g and reports the guest's own
// reboots.
func (h *Host) vmEvent(g *instance, mon *vmMonitor, e qemu.Event) {
	h.mu.Lock()
	rebooted := false
	switch e.Kind {
	case qemu.EventShutdown:
		mon.poweredOff = e.Guest
	case qemu.EventResume:
		if mon.resetWhileStopped {
			mon.resetAt, mon.resetWhileStopped = e.Time, false
		}
	case qemu.EventReset:
		settling := !mon.resetAt.IsZero() && e.Time.Sub(mon.resetAt) < firmwareResetWindow
		rebooted = e.Guest && !settling
		mon.resetAt = e.Time
		mon.resetWhileStopped = g.paused
	}
	fn := h.onReboot
	h.mu.Unlock()
	h.log.Debug("qmp event", "server", g.spec.ID, "event", e.Kind, "guest", e.Guest, "reason", e.Reason)
	if rebooted {
		h.log.Info("the guest rebooted itself", "server", g.spec.ID, "reason", e.Reason)
		if fn != nil {
			fn(g.spec.ID)
		}
	}
}

// qmpOf is the monitor connection of running VM g, made again when it broke
// (or an adoption could not make it) while QEMU runs.
func (h *Host) qmpOf(ctx context.Context, g *instance) (*qemu.Client, error) {
	h.mu.Lock()
	mon := g.monitor
	h.mu.Unlock()
	if mon != nil {
		select {
		case <-mon.done:
		default:
			return mon.client, nil
		}
	}
	c, err := h.connectQMP(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", g.spec.ID, err)
	}
	h.log.Info("reconnected to the VM's monitor", "server", g.spec.ID)
	return c, nil
}

// closeQMP closes g's monitor connection; QEMU keeps running. The caller
// holds h.mu.
func (g *instance) closeQMP() {
	if g.monitor != nil {
		g.monitor.client.Close()
	}
}

// adoptQMP connects to the monitor of a VM an earlier Hearth left running
// and takes its run state: a VM paused through QMP is paused (its task is
// not frozen). A failure leaves the connection for qmpOf to make.
func (h *Host) adoptQMP(ctx context.Context, g *instance) {
	ctx, cancel := context.WithTimeout(ctx, qmpAdoptTimeout)
	defer cancel()
	c, err := h.connectQMP(ctx, g)
	if err == nil {
		var st qemu.Status
		if st, err = c.Status(ctx); err == nil && !st.Running && st.State != "shutdown" {
			g.paused = true
		}
	}
	if err != nil {
		h.log.Warn("no monitor for an adopted VM yet: connecting when needed", "server", g.spec.ID, "err", err)
	}
}

// vmQMP runs call with the monitor of running VM id, naming what it does in
// errors; a QEMU that ended meanwhile is guest.ErrNotRunning.
func (h *Host) vmQMP(ctx context.Context, id, what string, call func(context.Context, *qemu.Client) error) (*instance, error) {
	g, err := h.lookup(id)
	if err != nil {
		return nil, err
	}
	if !g.spec.VM() {
		return nil, fmt.Errorf("%s guest %s: it is no VM: %w", what, id, guest.ErrInvalid)
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	c, err := h.qmpOf(ctx, g)
	if err == nil {
		err = call(ctx, c)
	}
	h.mu.Lock()
	exited := g.exited
	h.mu.Unlock()
	if err != nil && (exited || errors.Is(err, qemu.ErrClosed)) {
		return nil, fmt.Errorf("%s guest %s: QEMU has ended: %w", what, id, guest.ErrNotRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("%s guest %s: %w", what, id, err)
	}
	return g, nil
}

// Press presses a VM's button: the ACPI power button (QMP
// system_powerdown), or reset (system_reset: the same QEMU restarts its
// firmware).
func (h *Host) Press(ctx context.Context, id string, b guest.Button) error {
	press := map[guest.Button]func(*qemu.Client, context.Context) error{
		guest.PowerButton: (*qemu.Client).PowerDown,
		guest.ResetButton: (*qemu.Client).Reset,
	}[b]
	if press == nil {
		return fmt.Errorf("guest %s: no button %q: %w", id, b, guest.ErrInvalid)
	}
	_, err := h.vmQMP(ctx, id, "press the "+string(b)+" of", func(ctx context.Context, c *qemu.Client) error { return press(c, ctx) })
	return err
}

// pauseVM stops (frozen) or continues a VM's vCPUs through QMP, rather than
// freezing QEMU's cgroup: QEMU itself keeps answering its monitor and the
// VNC display.
func (h *Host) pauseVM(ctx context.Context, id string, frozen bool) error {
	what, change := "resume", (*qemu.Client).Resume
	if frozen {
		what, change = "pause", (*qemu.Client).Pause
	}
	g, err := h.vmQMP(ctx, id, what, func(ctx context.Context, c *qemu.Client) error { return change(c, ctx) })
	if err != nil {
		return err
	}
	h.mu.Lock()
	g.paused = frozen
	h.mu.Unlock()
	return nil
}

// vmExitStatus is what the exit of VM g's QEMU with status says: QEMU
// exits 0 after its guest powered itself off (also after a quit or a
// SIGTERM, which Hearth never sends), reported as guest.ExitPoweredOff when
// its monitor told the poweroff was the guest's. Its last events are
// awaited first.
func (h *Host) vmExitStatus(g *instance, status uint32) uint32 {
	h.mu.Lock()
	mon := g.monitor
	h.mu.Unlock()
	if status != 0 || mon == nil {
		return status
	}
	select {
	case <-mon.done:
	case <-time.After(qmpDrainTimeout):
		h.log.Warn("the VM's monitor outlives QEMU's exit: its poweroff is not known", "server", g.spec.ID)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if mon.poweredOff {
		return guest.ExitPoweredOff
	}
	return status
}

// vmCounters are the drive counters of VM g as QEMU counted them (the guest's
// view: a read-only drive's throwaway layer included), by counter key.
func (h *Host) vmCounters(ctx context.Context, g *instance, c guest.Counters) {
	ctx, cancel := context.WithTimeout(ctx, qmpCountersTimeout)
	defer cancel()
	q, err := h.qmpOf(ctx, g)
	var stats map[string]qemu.BlockStats
	if err == nil {
		stats, err = q.BlockStats(ctx)
	}
	if err != nil {
		h.log.Warn("drive counters unreadable", "server", g.spec.ID, "err", err)
		return
	}
	for _, d := range append([]guest.Disk{g.spec.Boot}, g.spec.Disks...) {
		if s, ok := stats[d.Key]; ok {
			c.Disks[d.CounterKey()] = guest.DiskCounters{ReadBytes: s.ReadBytes, ReadRequests: s.ReadRequests,
				WriteBytes: s.WriteBytes, WriteRequests: s.WriteRequests}
		}
	}
}

// lastLine is the last non-empty line of a console backlog (QEMU's last
// word on its stderr, which is the console), at most 200 bytes.
func lastLine(backlog []byte) string {
	lines := bytes.Split(bytes.TrimSpace(backlog), []byte("\n"))
	line := string(bytes.TrimSpace(lines[len(lines)-1]))
	if len(line) > 200 {
		line = line[len(line)-200:]
	}
	if line == "" {
		return "no message"
	}
	return line
}

// Package vmmtest is test support for the guest layer: Backend, an
// in-memory hypervisor that implements vmm.Backend without root, containerd
// or any guest process; Servers, servers in a store for Manager tests; and
// Logger, a *slog.Logger writing to the test log. Tests drive guests' lives
// by hand (Exit, Adopt), have guests' inits react to signals (PowerOff,
// OnSignal) and inject failures (StartErr, SetCPUErr).
package vmmtest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"hearth/vmm/guest"
)

// Backend is a fake hypervisor. Its guests do nothing but change state: a
// signal other than SIGKILL is recorded and handed to OnSignal (without it,
// the test decides with Exit whether the guest powers off), SIGKILL ends the
// guest at once with status 137.
type Backend struct {
	mu       sync.Mutex
	guests   map[string]*fakeGuest
	onExit   func(guest.Exit)
	onReboot func(id string)
	now      time.Time
	signals  []Signal
	presses  []Press
	cpu      []CPUChange

	// StartErr, when set, is called by Start; an error it returns is
	// Start's and no guest is made.
	StartErr func(spec guest.Spec) error
	// SetCPUErr, when set, is SetCPU's error for a running guest.
	SetCPUErr error
	// PowerOff is the signal every guest Start makes is found to power
	// off on (its Status.PowerOff); 0 = the backend cannot tell.
	PowerOff syscall.Signal
	// OnSignal, when set, is how a guest's init acts on a signal other
	// than SIGKILL: when exits is true, the guest ends with status (e.g.
	// 130 for a power-off, 129 for a reboot, as containerd reports them).
	OnSignal func(id string, sig syscall.Signal) (status uint32, exits bool)
	// FixedCounters and FixedUsage, when set, are what every running guest
	// reports.
	FixedCounters *guest.Counters
	FixedUsage    *guest.Usage
	// DialDisplay, when set, reaches the display of a running VM guest
	// (Spec.Type vm): Display hands it out; without it no guest has one.
	DialDisplay func(ctx context.Context, id string) (net.Conn, error)
	// Accel is what Accelerator reports ("" = VMs cannot run).
	Accel string
}

// Signal is one signal Signal delivered.
type Signal struct {
	ID  string
	Sig syscall.Signal
}

// Press is one button Press pressed.
type Press struct {
	ID     string
	Button guest.Button
}

// CPUChange is one SetCPU that took effect.
type CPUChange struct {
	ID       string
	CPU, SMP int
}

type fakeGuest struct {
	status  guest.Status
	console *guest.Console
}

// NewBackend returns a fake hypervisor with no guests.
func NewBackend() *Backend {
	return &Backend{guests: map[string]*fakeGuest{}, now: time.Unix(1700000000, 0)}
}

// Name is "fake".
func (b *Backend) Name() string { return "fake" }

// tick is a start time distinct from every earlier one.
func (b *Backend) tick() time.Time {
	b.now = b.now.Add(time.Second)
	return b.now
}

// Start makes a running guest of spec (SMP 0 becomes 1); a VM's has
// buttons (Press).
func (b *Backend) Start(ctx context.Context, spec guest.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if b.StartErr != nil {
		if err := b.StartErr(spec); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.guests[spec.ID]; ok {
		return fmt.Errorf("guest %s: %w", spec.ID, guest.ErrRunning)
	}
	spec.SMP = max(spec.SMP, 1)
	b.guests[spec.ID] = &fakeGuest{
		status:  guest.Status{Spec: spec, State: guest.Running, Started: b.tick(), PowerOff: b.PowerOff, Buttons: spec.VM()},
		console: guest.NewConsole(),
	}
	return nil
}

// Adopt adds a guest as if an earlier Hearth had left it: running, paused,
// stopped (ended meanwhile) or lost (st.Lost: gone with the host). Call it
// before vmm.NewManager.
func (b *Backend) Adopt(st guest.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st.Started.IsZero() {
		st.Started = b.tick()
	}
	b.guests[st.Spec.ID] = &fakeGuest{status: st, console: guest.NewConsole()}
}

// running returns the guest with id if it has not ended.
func (b *Backend) running(id string) (*fakeGuest, error) {
	g, ok := b.guests[id]
	if !ok {
		return nil, fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	if g.status.State == guest.Stopped {
		return g, fmt.Errorf("guest %s: %w", id, guest.ErrNotRunning)
	}
	return g, nil
}

// Signal records sig; SIGKILL ends the guest (status 137), any other
// signal ends it when OnSignal says so.
func (b *Backend) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	b.mu.Lock()
	if _, err := b.running(id); err != nil {
		b.mu.Unlock()
		return err
	}
	b.signals = append(b.signals, Signal{id, sig})
	onSignal := b.OnSignal
	b.mu.Unlock()
	switch {
	case sig == syscall.SIGKILL:
		b.Exit(id, 137)
	case onSignal != nil:
		if status, exits := onSignal(id, sig); exits {
			b.Exit(id, status)
		}
	}
	return nil
}

// Press records the press of a button of a running guest that has them;
// the guest does nothing (the test decides with Exit and Reboot).
func (b *Backend) Press(ctx context.Context, id string, button guest.Button) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.running(id)
	if err != nil {
		return err
	}
	if !g.status.Buttons {
		return fmt.Errorf("guest %s has no %s: %w", id, button, guest.ErrInvalid)
	}
	b.presses = append(b.presses, Press{id, button})
	return nil
}

// Presses are the buttons pressed so far.
func (b *Backend) Presses() []Press {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Press(nil), b.presses...)
}

// Reboot reports to OnReboot's function that a running guest rebooted
// itself in place, as a VM does.
func (b *Backend) Reboot(id string) {
	b.mu.Lock()
	_, err := b.running(id)
	fn := b.onReboot
	b.mu.Unlock()
	if err == nil && fn != nil {
		fn(id)
	}
}

// Signals are the signals delivered so far.
func (b *Backend) Signals() []Signal {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Signal(nil), b.signals...)
}

func (b *Backend) setState(id string, from, to guest.State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.running(id)
	if err != nil {
		return err
	}
	if g.status.State != from {
		return fmt.Errorf("guest %s is %s: %w", id, g.status.State, guest.ErrNotRunning)
	}
	g.status.State = to
	return nil
}

// Pause freezes a running guest.
func (b *Backend) Pause(ctx context.Context, id string) error {
	return b.setState(id, guest.Running, guest.Paused)
}

// Resume thaws a paused guest.
func (b *Backend) Resume(ctx context.Context, id string) error {
	return b.setState(id, guest.Paused, guest.Running)
}

// SetCPU records the change, or fails with SetCPUErr.
func (b *Backend) SetCPU(ctx context.Context, id string, cpu, smp int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.running(id)
	if err != nil {
		return err
	}
	if b.SetCPUErr != nil {
		return b.SetCPUErr
	}
	g.status.Spec.CPU, g.status.Spec.SMP = cpu, max(smp, 1)
	b.cpu = append(b.cpu, CPUChange{id, cpu, smp})
	return nil
}

// CPUChanges are the SetCPU calls that took effect so far.
func (b *Backend) CPUChanges() []CPUChange {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]CPUChange(nil), b.cpu...)
}

// SetFirewall changes the Firewall of the guest's NIC index in its spec,
// as Status then reports it.
func (b *Backend) SetFirewall(ctx context.Context, id string, index int, fw guest.Firewall) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.running(id)
	if err != nil {
		return err
	}
	nics := slices.Clone(g.status.Spec.NICs)
	i := slices.IndexFunc(nics, func(n guest.NIC) bool { return n.Index == index })
	if i < 0 {
		return fmt.Errorf("guest %s has no nic:%d: %w", id, index, guest.ErrInvalid)
	}
	nics[i].Firewall = fw
	g.status.Spec.NICs = nics
	return nil
}

// Delete removes the guest; its end is no exit to report.
func (b *Backend) Delete(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.guests[id]
	if !ok {
		return fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	g.console.CloseInput()
	g.console.End()
	delete(b.guests, id)
	return nil
}

// Exit ends a running guest's init with status, as if it powered off, and
// reports it to OnExit's function.
func (b *Backend) Exit(id string, status uint32) {
	b.mu.Lock()
	g, err := b.running(id)
	if err != nil {
		b.mu.Unlock()
		return
	}
	g.status.State, g.status.ExitStatus, g.status.ExitedAt = guest.Stopped, status, b.tick()
	g.console.CloseInput()
	fn := b.onExit
	b.mu.Unlock()
	if fn != nil {
		fn(guest.Exit{ID: id, Status: status, At: g.status.ExitedAt})
	}
}

// Status describes one guest.
func (b *Backend) Status(ctx context.Context, id string) (guest.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.guests[id]
	if !ok {
		return guest.Status{}, fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	return g.status, nil
}

// Guests describes every guest.
func (b *Backend) Guests(ctx context.Context) []guest.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]guest.Status, 0, len(b.guests))
	for _, g := range b.guests {
		out = append(out, g.status)
	}
	return out
}

// Console is the guest's console; tests write its output with Output().
func (b *Backend) Console(id string) (*guest.Console, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.guests[id]
	if !ok {
		return nil, false
	}
	return g.console, true
}

// Display is b.DialDisplay for a running VM guest.
func (b *Backend) Display(id string) (func(ctx context.Context) (net.Conn, error), bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.running(id)
	if err != nil || !g.status.Spec.VM() || b.DialDisplay == nil {
		return nil, false
	}
	return func(ctx context.Context) (net.Conn, error) { return b.DialDisplay(ctx, id) }, true
}

// Accelerator is b.Accel.
func (b *Backend) Accelerator() string { return b.Accel }

// Counters are b.FixedCounters (zero without), for a running guest.
func (b *Backend) Counters(ctx context.Context, id string) (guest.Counters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.running(id); err != nil {
		return guest.Counters{}, err
	}
	if b.FixedCounters == nil {
		return guest.Counters{}, nil
	}
	return *b.FixedCounters, nil
}

// Usage is b.FixedUsage for a running guest; without it, an error (the backend
// cannot tell).
func (b *Backend) Usage(ctx context.Context, id string) (guest.Usage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.running(id); err != nil {
		return guest.Usage{}, err
	}
	if b.FixedUsage == nil {
		return guest.Usage{}, fmt.Errorf("guest %s: no usage: %w", id, guest.ErrUnavailable)
	}
	return *b.FixedUsage, nil
}

// OnReboot sets the function Reboot reports to.
func (b *Backend) OnReboot(fn func(id string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onReboot = fn
}

// OnExit sets the function Exit (and SIGKILL) reports to.
func (b *Backend) OnExit(fn func(guest.Exit)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onExit = fn
}

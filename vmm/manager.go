package vmm

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"hearth/console"
	"hearth/storage"
	"hearth/vmm/guest"
	"hearth/vmm/network"
)

// DefaultGracePeriod is how long Shutdown waits for a guest to power off
// before it kills it.
const DefaultGracePeriod = 60 * time.Second

// Manager runs the servers of a storage.Store on a Backend: it implements the
// Guests interface of web/api. It keeps the database in step with the
// guests: a server whose guest stops for any reason becomes stopped when it
// is persistent and is destroyed otherwise (its drives kept, unclaimed); a
// server whose guest cannot start is dead, with the reason under error.
//
// Every call that changes a server — the lifecycle calls, Set, Destroy and
// the handling of a guest's exit — runs under that server's lifecycle lock
// and checks the server's row and guest state after taking it: a call that
// lost a race finds the server gone (ErrNotFound, wrapping storage's) or in
// another state (ErrRunning, ErrNotRunning), never a half-made guest or a
// guest without a row.
type Manager struct {
	backend  Backend
	store    *storage.Store
	consoles *console.Registry
	bridge   string
	names    network.Names
	grace    time.Duration
	powerOff syscall.Signal
	log      *slog.Logger
	now      func() time.Time

	mu           sync.Mutex
	locks        map[string]*serverLock     // per server while held or awaited: its lifecycle calls run one at a time
	waiters      map[string][]chan struct{} // Shutdown's: closed when the guest asked to power off is gone
	lastConsoles map[string]*guest.Console  // the consoles of guests that ended, until the server's next start or destruction
	reboots      map[string][]time.Time     // when each server's guest rebooted itself lately (the reboot-loop bound)
	transients   map[string]Transient       // servers starting or shutting down now
}

// serverLock is a server's lifecycle lock; users counts the calls holding or
// awaiting it, so the entry goes when the last one is done.
type serverLock struct {
	sync.Mutex
	users int
}

// ManagerOption configures a Manager.
type ManagerOption func(*Manager)

// WithGracePeriod sets how long Shutdown waits before SIGKILL (default 60 s).
func WithGracePeriod(d time.Duration) ManagerOption { return func(m *Manager) { m.grace = d } }

// WithPowerOffSignal sets the power-off signal of guests whose backend cannot
// tell what their init understands (default SIGTERM).
func WithPowerOffSignal(sig syscall.Signal) ManagerOption {
	return func(m *Manager) { m.powerOff = sig }
}

// WithConsoles gives every running server with a VNC password a console.
func WithConsoles(c *console.Registry) ManagerOption { return func(m *Manager) { m.consoles = c } }

// WithPublicBridge names the bridge nic:0 joins (default "hearth0").
func WithPublicBridge(name string) ManagerOption { return func(m *Manager) { m.bridge = name } }

// WithNetworkNames names the VLAN bridges nic:1 joins after the Hearth
// instance's (default: those of the instance "hearth").
func WithNetworkNames(n network.Names) ManagerOption { return func(m *Manager) { m.names = n } }

// WithLogger sets where the Manager logs (default: nowhere).
func WithLogger(l *slog.Logger) ManagerOption { return func(m *Manager) { m.log = l } }

// WithClock sets the clock the reboot-loop bound and shutdown deadlines count
// with (default time.Now).
func WithClock(now func() time.Time) ManagerOption { return func(m *Manager) { m.now = now } }

// NewManager starts following the backend's guest exits and reconciles the
// database with the guests: running guests are re-adopted (started
// unchanged), guests that ended meanwhile are treated as stopped, and
// servers recorded active whose guest is gone (a host reboot) are started again.
func NewManager(ctx context.Context, backend Backend, store *storage.Store, opts ...ManagerOption) (*Manager, error) {
	m := &Manager{
		backend:      backend,
		store:        store,
		bridge:       "hearth0",
		grace:        DefaultGracePeriod,
		powerOff:     syscall.SIGTERM,
		log:          slog.New(slog.DiscardHandler),
		now:          time.Now,
		locks:        map[string]*serverLock{},
		waiters:      map[string][]chan struct{}{},
		lastConsoles: map[string]*guest.Console{},
		reboots:      map[string][]time.Time{},
		transients:   map[string]Transient{},
	}
	for _, opt := range opts {
		opt(m)
	}
	backend.OnExit(m.guestExited)
	backend.OnReboot(m.guestRebooted)
	return m, m.reconcile(ctx)
}

// Backend names what the Manager's guests run under.
func (m *Manager) Backend() string { return m.backend.Name() }

// Accelerator is how VM guests run here (the backend's probe):
// guest.AccelKVM, guest.AccelTCG (software emulation, slower), or "" where
// they cannot run.
func (m *Manager) Accelerator() string { return m.backend.Accelerator() }

// lock takes the server's lifecycle lock and returns its release.
func (m *Manager) lock(server string) (unlock func()) {
	m.mu.Lock()
	l, ok := m.locks[server]
	if !ok {
		l = &serverLock{}
		m.locks[server] = l
	}
	l.users++
	m.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, server)
		}
		m.mu.Unlock()
	}
}

// guestState is the state of the server's guest; guest.Stopped when it has none.
func (m *Manager) guestState(ctx context.Context, server string) guest.State {
	st, err := m.backend.Status(ctx, server)
	if err != nil {
		return guest.Stopped
	}
	return st.State
}

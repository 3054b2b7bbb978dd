package vmm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hearth/console"
	"hearth/storage"
	"hearth/vmm/network"
	"hearth/web/eh"
)

// DefaultGracePeriod is how long Shutdown waits for a guest to power off
// before it kills it.
const DefaultGracePeriod = 60 * time.Second

// Manager runs the servers of a storage.Store on a Host: it implements the
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
	host     *Host
	store    *storage.Store
	consoles *console.Registry
	bridge   string
	grace    time.Duration
	powerOff syscall.Signal
	logf     func(string, ...any)

	mu      sync.Mutex
	locks   map[string]*serverLock     // per server while held or awaited: its lifecycle calls run one at a time
	waiters map[string][]chan struct{} // Shutdown's: closed when the guest asked to power off is gone
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

// WithPowerOffSignal sets the guests' power-off signal (default SIGTERM).
func WithPowerOffSignal(sig syscall.Signal) ManagerOption {
	return func(m *Manager) { m.powerOff = sig }
}

// WithConsoles gives every running server with a VNC password a console.
func WithConsoles(c *console.Registry) ManagerOption { return func(m *Manager) { m.consoles = c } }

// WithPublicBridge names the bridge nic:0 joins (default "hearth0").
func WithPublicBridge(name string) ManagerOption { return func(m *Manager) { m.bridge = name } }

// WithManagerLogger sets where the Manager logs (default: the Host's logger).
func WithManagerLogger(logf func(format string, args ...any)) ManagerOption {
	return func(m *Manager) { m.logf = logf }
}

// NewManager starts following the Host's guest exits and reconciles the
// database with the guests: running guests are re-adopted (started
// unchanged), guests that ended meanwhile are treated as stopped, and
// servers recorded active whose guest is gone (a host reboot) are started again.
func NewManager(ctx context.Context, host *Host, store *storage.Store, opts ...ManagerOption) (*Manager, error) {
	m := &Manager{
		host:     host,
		store:    store,
		bridge:   "hearth0",
		grace:    DefaultGracePeriod,
		powerOff: syscall.SIGTERM,
		logf:     host.logf,
		locks:    map[string]*serverLock{},
		waiters:  map[string][]chan struct{}{},
	}
	for _, opt := range opts {
		opt(m)
	}
	host.OnExit(m.guestExited)
	return m, m.reconcile(ctx)
}

var _ interface {
	Start(ctx context.Context, server string) error
	Stop(ctx context.Context, server string) error
	Shutdown(ctx context.Context, server string) error
	Reset(ctx context.Context, server string) error
	Pause(ctx context.Context, server string) error
	Resume(ctx context.Context, server string) error
	Set(ctx context.Context, server string, update func(ctx context.Context, active bool) (eh.Props, error)) error
	Runtime(ctx context.Context, server string) (eh.Props, bool)
	Destroy(ctx context.Context, server string) error
} = (*Manager)(nil)

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

// guestState is the state of the server's guest; Stopped when it has none.
func (m *Manager) guestState(ctx context.Context, server string) State {
	st, err := m.host.Status(ctx, server)
	if err != nil {
		return Stopped
	}
	return st.State
}

// Start starts a stopped or dead server. A server whose guest cannot be made
// (no boot drive, no filesystem, a runtime failure) becomes dead with the
// reason; a drive in use elsewhere or being imaged is ErrBusy and changes nothing.
func (m *Manager) Start(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if storage.Running(srv.Status) {
		return fmt.Errorf("server %s is %s: %w", server, srv.Status, ErrRunning)
	}
	return m.start(ctx, srv)
}

// start makes and starts the guest of srv and records the outcome.
func (m *Manager) start(ctx context.Context, srv storage.Server) error {
	spec, err := m.guestSpec(ctx, srv)
	if err != nil {
		if !errors.Is(err, storage.ErrBusy) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrUnavailable) {
			m.dead(ctx, srv.ID, err)
		}
		return err
	}
	// A guest that ended but whose exit is still being handled goes first.
	if st, err := m.host.Status(ctx, srv.ID); err == nil && st.State == Stopped {
		if err := m.host.Delete(ctx, srv.ID); err != nil {
			return err
		}
	}
	if err := m.store.Claim(ctx, srv.ID); err != nil {
		if errors.Is(err, storage.ErrBusy) {
			return busyError{err}
		}
		m.dead(ctx, srv.ID, err)
		return err
	}
	if err := m.host.Start(ctx, spec); err != nil {
		m.store.ReleaseClaims(context.WithoutCancel(ctx), srv.ID)
		if !errors.Is(err, ErrUnavailable) {
			m.dead(ctx, srv.ID, err)
		}
		return err
	}
	st, _ := m.host.Status(ctx, srv.ID)
	if _, err := m.store.SetServerStatus(context.WithoutCancel(ctx), srv.ID, storage.StatusActive, st.Started, ""); err != nil {
		m.logf("server %s: record active: %v", srv.ID, err)
	}
	m.attachConsole(srv)
	return nil
}

// busyError is a storage refusal (a drive claimed or imaging) that also
// reads as ErrBusy, keeping storage's one-line message.
type busyError struct{ error }

func (e busyError) Is(target error) bool { return target == ErrBusy }
func (e busyError) Unwrap() error        { return e.error }

// dead records that the server's guest could not start, and why.
func (m *Manager) dead(ctx context.Context, server string, reason error) {
	m.store.ReleaseClaims(context.WithoutCancel(ctx), server)
	if _, err := m.store.SetServerStatus(context.WithoutCancel(ctx), server, storage.StatusDead, time.Time{}, reason.Error()); err != nil {
		m.logf("server %s: record dead (%v): %v", server, reason, err)
	}
}

// guestSpec turns a server's configuration into a GuestSpec: drives, NICs
// (with a lease for nic:0:dhcp auto and a MAC made and kept where unset),
// cpu, smp, mem, hostname.
func (m *Manager) guestSpec(ctx context.Context, srv storage.Server) (GuestSpec, error) {
	cfg := srv.Config
	spec := GuestSpec{ID: srv.ID, Hostname: dnsName(cfg["name"], srv.ID)}
	var err error
	if spec.CPU, err = atoiKey(cfg, "cpu"); err != nil {
		return spec, err
	}
	if s := cfg["smp"]; s != "" && s != "auto" {
		if spec.SMP, err = atoiKey(cfg, "smp"); err != nil {
			return spec, err
		}
	}
	mem, err := atoiKey(cfg, "mem")
	if err != nil {
		return spec, err
	}
	spec.Mem = int64(mem)

	drives, err := m.store.ServerDrives(ctx, srv.ID)
	if err != nil {
		return spec, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	boot, _ := eh.BootDevice(cfg)
	bootKey := boot.Key
	names := guestDeviceNames(drives)
	for _, d := range drives {
		if d.Device == bootKey {
			spec.Boot = Disk{Device: d.Device, Image: d.Path, ReadOnly: d.CDROM}
			continue
		}
		spec.Disks = append(spec.Disks, Disk{Device: names[d.Device], Image: d.Path, ReadOnly: d.CDROM})
	}
	if spec.Boot.Image == "" {
		return spec, fmt.Errorf("server %s has no boot drive (key boot, or a drive on ide/scsi/block): %w", srv.ID, ErrBootDrive)
	}
	spec.NICs, err = m.nics(ctx, srv)
	return spec, err
}

func atoiKey(cfg map[string]string, key string) (int, error) {
	v := cfg[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("key %s: %q is not a count: %w", key, v, ErrInvalid)
	}
	return n, nil
}

// nics builds nic:0 (public bridge, address from the lease or the static IP
// resource) and nic:1 (the VLAN's bridge, no address).
func (m *Manager) nics(ctx context.Context, srv storage.Server) ([]NIC, error) {
	cfg := srv.Config
	var nics []NIC
	for i := 0; i <= 1; i++ {
		p := fmt.Sprintf("nic:%d:", i)
		if cfg[p+"model"] == "" && (i == 0 || cfg[p+"vlan"] == "") {
			continue
		}
		nic := NIC{Index: i, MAC: cfg[p+"mac"]}
		if nic.MAC == "" {
			nic.MAC = network.RandomMAC()
			if _, err := m.store.UpdateServer(ctx, srv.ID, func(s *storage.Server) error {
				s.Config[p+"mac"] = nic.MAC
				return nil
			}); err != nil {
				return nil, err
			}
		}
		if i == 0 {
			nic.Bridge = m.bridge
			var addr netip.Addr
			switch dhcp := cfg["nic:0:dhcp"]; dhcp {
			case "":
			case "auto":
				a, err := m.store.AllocateLease(ctx, srv.ID)
				if err != nil {
					return nil, err
				}
				addr = a
			default:
				a, err := netip.ParseAddr(dhcp)
				if err != nil {
					return nil, fmt.Errorf("key nic:0:dhcp: %q: %w", dhcp, ErrInvalid)
				}
				addr = a
			}
			if addr.IsValid() {
				nic.Address = netip.PrefixFrom(addr, m.store.Subnet().Bits())
				nic.Gateway = m.store.Gateway()
			}
		} else {
			nic.Bridge = network.VLANBridge(cfg[p+"vlan"])
		}
		nics = append(nics, nic)
	}
	return nics, nil
}

// guestDeviceNames names each drive under /dev in the guest the way a PC
// would: ide:B:U → hda…hdd, scsi/ata:B:U → sda…, block:N → vda….
func guestDeviceNames(drives []storage.Attachment) map[string]string {
	names := map[string]string{}
	for _, d := range drives {
		parts := strings.Split(d.Device, ":")
		n := func(i int) int { v, _ := strconv.Atoi(parts[i]); return v }
		switch parts[0] {
		case "ide":
			names[d.Device] = "hd" + letters(n(1)*2+n(2))
		case "scsi", "ata":
			names[d.Device] = "sd" + letters(n(1)*16+n(2))
		default:
			names[d.Device] = "vd" + letters(n(1))
		}
	}
	return names
}

// letters is a, b, …, z, aa, ab, … like Linux disk names.
func letters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

// dnsName makes a server name a DNS-safe hostname.
func dnsName(name, id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	host := strings.Trim(b.String(), "-")
	if len(host) > 63 {
		host = strings.Trim(host[:63], "-")
	}
	if host == "" {
		host = "server-" + strings.SplitN(id, "-", 2)[0]
	}
	return host
}

func (m *Manager) attachConsole(srv storage.Server) {
	if m.consoles == nil || srv.Config["password"] == "" {
		return
	}
	c, ok := m.host.Console(srv.ID)
	if !ok {
		return
	}
	if _, err := m.consoles.Attach(srv.ID, srv.Config["name"], c, srv.Config["password"]); err != nil {
		m.logf("server %s: console: %v", srv.ID, err)
	}
}

func (m *Manager) detachConsole(server string) {
	if m.consoles != nil {
		m.consoles.Detach(server)
	}
}

// Stop kills the guest at once; then a persistent server is stopped and any
// other destroyed. A server neither running nor left with an ended guest is
// ErrNotRunning.
func (m *Manager) Stop(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if _, err := m.host.Status(ctx, server); err != nil && !storage.Running(srv.Status) {
		return fmt.Errorf("server %s is %s: %w", server, srv.Status, ErrNotRunning)
	}
	return m.stop(ctx, server)
}

// Destroy removes a server, stopping its guest first when it has one. Both
// happen under the server's lock, so no Start or Reset can bring a guest
// back between the stop and the removal and leave it without a row. A
// server already gone is ErrNotFound.
func (m *Manager) Destroy(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if _, err := m.host.Status(ctx, server); err == nil || storage.Running(srv.Status) {
		if err := m.stop(ctx, server); err != nil {
			return err
		}
	}
	// The guest is gone: finish even if the caller has gone too. A
	// non-persistent server went with its guest already.
	if err := m.store.DeleteServer(context.WithoutCancel(ctx), server); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

func (m *Manager) stop(ctx context.Context, server string) error {
	if err := m.host.Delete(ctx, server); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	m.wake(server)
	return m.ended(ctx, server)
}

// ended records that a server's guest is gone (already deleted from the Host).
func (m *Manager) ended(ctx context.Context, server string) error {
	ctx = context.WithoutCancel(ctx)
	m.detachConsole(server)
	if err := m.store.ReleaseClaims(ctx, server); err != nil {
		m.logf("server %s: release claims: %v", server, err)
	}
	srv, err := m.store.SetServerStatus(ctx, server, storage.StatusStopped, time.Time{}, "")
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if srv.Config["persistent"] == "true" {
		return nil
	}
	m.store.ReleaseLease(ctx, server)
	if err := m.store.DeleteServer(ctx, server); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// Shutdown sends the power-off signal and returns; the guest's exit then
// stops the server as any exit does. A guest still running after the grace
// period is killed.
func (m *Manager) Shutdown(ctx context.Context, server string) error {
	defer m.lock(server)()
	if _, err := m.store.Server(ctx, server); err != nil {
		return err
	}
	st, err := m.host.Status(ctx, server)
	if err != nil || st.State == Stopped {
		return fmt.Errorf("server %s: %w", server, ErrNotRunning)
	}
	if st.State == Paused { // a frozen guest cannot act on the signal
		if err := m.host.Resume(ctx, server); err != nil {
			return err
		}
		m.setRunning(ctx, server, storage.StatusActive)
	}
	exited := m.waitExit(server)
	if err := m.host.Signal(ctx, server, m.powerOff); err != nil {
		m.cancelWait(server, exited)
		return err
	}
	go func() {
		select {
		case <-exited:
			return
		case <-time.After(m.grace):
		}
		m.cancelWait(server, exited)
		defer m.lock(server)()
		// Only the incarnation that was asked to power off is killed.
		cur, err := m.host.Status(context.Background(), server)
		if err != nil || cur.State == Stopped || !cur.Started.Equal(st.Started) {
			return
		}
		m.logf("server %s: no power-off after %s; killing it", server, m.grace)
		if err := m.stop(context.Background(), server); err != nil {
			m.logf("server %s: %v", server, err)
		}
	}()
	return nil
}

// poweringOff reports whether the server's guest was asked to power off and
// is still there.
func (m *Manager) poweringOff(server string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters[server]) > 0
}

// wake tells Shutdown's waiters that the server's guest is gone: it exited,
// or the Manager deleted it.
func (m *Manager) wake(server string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.waiters[server] {
		close(ch)
	}
	delete(m.waiters, server)
}

func (m *Manager) waitExit(server string) chan struct{} {
	ch := make(chan struct{})
	m.mu.Lock()
	m.waiters[server] = append(m.waiters[server], ch)
	m.mu.Unlock()
	return ch
}

func (m *Manager) cancelWait(server string, ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.waiters[server]
	for i, c := range w {
		if c == ch {
			m.waiters[server] = append(w[:i], w[i+1:]...)
		}
	}
	if len(m.waiters[server]) == 0 {
		delete(m.waiters, server)
	}
}

// guestExited runs on the Host's event loop: it wakes Shutdown and, off the
// loop, puts the server in its stopped (or destroyed) state.
func (m *Manager) guestExited(e Exit) {
	m.wake(e.ID)
	go func() {
		defer m.lock(e.ID)()
		// The guest may have been deleted (Stop, Shutdown) or replaced
		// (Reset, Start) while this waited for the lock.
		if st, err := m.host.Status(context.Background(), e.ID); err != nil || st.State != Stopped {
			return
		}
		m.logf("server %s: guest exited (status %d)", e.ID, e.Status)
		if err := m.stop(context.Background(), e.ID); err != nil {
			m.logf("server %s: after exit: %v", e.ID, err)
		}
	}()
}

// Reset kills the guest of a running server and starts it again with the
// same configuration.
func (m *Manager) Reset(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if !storage.Running(srv.Status) {
		return fmt.Errorf("server %s is %s, not active: %w", server, srv.Status, ErrNotRunning)
	}
	if err := m.host.Delete(ctx, server); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	m.wake(server)
	m.detachConsole(server)
	m.store.ReleaseClaims(context.WithoutCancel(ctx), server)
	return m.start(ctx, srv)
}

// Pause freezes the guest of an active server. One powering off is ErrBusy:
// frozen, it would not finish (and runc's freeze fails on a guest whose
// processes are exiting).
func (m *Manager) Pause(ctx context.Context, server string) error {
	defer m.lock(server)()
	if err := m.expect(ctx, server, Running, "active"); err != nil {
		return err
	}
	if m.poweringOff(server) {
		return fmt.Errorf("server %s is shutting down: %w", server, ErrBusy)
	}
	if err := m.host.Pause(ctx, server); err != nil {
		return err
	}
	return m.setRunning(ctx, server, storage.StatusPaused)
}

// Resume thaws the guest of a paused server.
func (m *Manager) Resume(ctx context.Context, server string) error {
	defer m.lock(server)()
	if err := m.expect(ctx, server, Paused, "paused"); err != nil {
		return err
	}
	if err := m.host.Resume(ctx, server); err != nil {
		return err
	}
	return m.setRunning(ctx, server, storage.StatusActive)
}

// expect checks, under the server's lock, that the server exists and its
// guest is in state want (which the message calls what).
func (m *Manager) expect(ctx context.Context, server string, want State, what string) error {
	if _, err := m.store.Server(ctx, server); err != nil {
		return err
	}
	if got := m.guestState(ctx, server); got != want {
		return fmt.Errorf("server %s is %s, not %s: %w", server, got, what, ErrNotRunning)
	}
	return nil
}

func (m *Manager) setRunning(ctx context.Context, server, status string) error {
	st, err := m.host.Status(ctx, server)
	if err != nil {
		return err
	}
	_, err = m.store.SetServerStatus(context.WithoutCancel(ctx), server, status, st.Started, "")
	return err
}

// Set changes a server's configuration under its lifecycle lock, so no
// start, stop, reset or destroy runs between the stored change and its
// effect: a start either ran before (the server is active and only live keys
// may change) or runs after (and boots, and claims, the new configuration).
// update validates and stores the change — any key when active is false,
// only live keys when it is true — and returns the keys it changed (value ""
// = removed). On an active server those then take effect at once (apply); if
// that fails, their old values are stored again and the failure returned.
func (m *Manager) Set(ctx context.Context, server string, update func(ctx context.Context, active bool) (changed eh.Props, err error)) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	// A guest that ended but whose exit is not yet handled counts as
	// active: its row says so, and its claims are still held.
	active := storage.Running(srv.Status) || m.guestState(ctx, server) != Stopped
	changed, err := update(ctx, active)
	if err != nil || !active || len(changed) == 0 {
		return err
	}
	if err := m.apply(ctx, server, changed); err != nil {
		// A refused live change leaves nothing behind.
		if _, rerr := m.store.UpdateServer(context.WithoutCancel(ctx), server, func(cur *storage.Server) error {
			for k := range changed {
				if v, ok := srv.Config[k]; ok {
					cur.Config[k] = v
				} else {
					delete(cur.Config, k)
				}
			}
			return nil
		}); rerr != nil && !errors.Is(rerr, storage.ErrNotFound) {
			m.logf("server %s: undoing a refused live change: %v", server, rerr)
		}
		return err
	}
	return nil
}

// apply makes stored live changes of a running server take effect: cpu (and
// smp) change the CPU quota at once, password the console's, name its title.
// A guest that has ended meanwhile keeps them in its stored configuration
// only, which its next start uses. The caller holds the server's lock.
func (m *Manager) apply(ctx context.Context, server string, changed eh.Props) error {
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if m.guestState(ctx, server) == Stopped {
		return nil
	}
	if _, ok := changed["cpu"]; ok {
		cpu, err := atoiKey(changed, "cpu")
		if err != nil {
			return err
		}
		smp, _ := atoiKey(srv.Config, "smp") // "auto" reads as 0: derived from cpu
		if err := m.host.SetCPU(ctx, server, cpu, smp); errors.Is(err, ErrNotRunning) {
			return nil // it ended just now: stored only, as above
		} else if err != nil {
			return err
		}
	}
	if m.consoles == nil {
		return nil
	}
	if pw, ok := changed["password"]; ok {
		if err := m.consoles.SetPassword(server, pw); errors.Is(err, console.ErrNoConsole) && pw != "" {
			srv.Config["password"] = pw
			m.attachConsole(srv)
		} else if err != nil {
			return err
		}
	}
	if name, ok := changed["name"]; ok {
		m.consoles.Rename(server, name)
	}
	return nil
}

// Runtime gives the runtime keys of a running server: smp:cores, NIC
// addresses, MACs and counters, per-drive I/O counters, CPU and memory use
// (cpu:usage in ns, mem:usage in bytes), its console endpoint.
func (m *Manager) Runtime(ctx context.Context, server string) (eh.Props, bool) {
	st, err := m.host.Status(ctx, server)
	if err != nil || st.State == Stopped {
		return nil, false
	}
	p := eh.Props{"smp:cores": strconv.Itoa(st.Spec.SMP)}
	for _, n := range st.Spec.NICs {
		prefix := fmt.Sprintf("nic:%d:", n.Index)
		p[prefix+"mac"] = n.MAC
		if n.Address.IsValid() {
			p[prefix+"ip"] = n.Address.Addr().String()
		}
	}
	if c, err := m.host.Counters(ctx, server); err == nil {
		for i, n := range c.NICs {
			prefix := fmt.Sprintf("nic:%d:", i)
			p[prefix+"rx:bytes"] = strconv.FormatUint(n.RxBytes, 10)
			p[prefix+"rx:packets"] = strconv.FormatUint(n.RxPackets, 10)
			p[prefix+"tx:bytes"] = strconv.FormatUint(n.TxBytes, 10)
			p[prefix+"tx:packets"] = strconv.FormatUint(n.TxPackets, 10)
		}
		for dev, d := range c.Disks {
			p[dev+":read:bytes"] = strconv.FormatUint(d.ReadBytes, 10)
			p[dev+":read:requests"] = strconv.FormatUint(d.ReadRequests, 10)
			p[dev+":write:bytes"] = strconv.FormatUint(d.WriteBytes, 10)
			p[dev+":write:requests"] = strconv.FormatUint(d.WriteRequests, 10)
		}
	}
	if u, err := m.host.Usage(ctx, server); err == nil {
		p["cpu:usage"] = strconv.FormatUint(u.CPUNanos, 10)    // ns of CPU time so far
		p["mem:usage"] = strconv.FormatUint(u.MemoryBytes, 10) // bytes in use
	}
	if m.consoles != nil {
		if ep, ok := m.consoles.Endpoint(server); ok {
			p["vnc:ip"] = ep.IP
			if ep.Port != 0 {
				p["vnc:port"] = strconv.Itoa(ep.Port)
			}
		}
	}
	return p, true
}

// ConsoleOutput is the last 64 KiB the server's guest printed (web/api's ConsoleLog).
func (m *Manager) ConsoleOutput(ctx context.Context, server string) ([]byte, error) {
	c, ok := m.host.Console(server)
	if !ok {
		return nil, fmt.Errorf("server %s: %w", server, ErrNotRunning)
	}
	return backlog(c), nil
}

// reconcile brings the database in line with the guests after a start.
func (m *Manager) reconcile(ctx context.Context) error {
	guests := map[string]GuestStatus{}
	for _, g := range m.host.Guests(ctx) {
		guests[g.Spec.ID] = g
	}
	ids := make([]string, 0, len(guests))
	for id := range guests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := guests[id]
		srv, err := m.store.Server(ctx, id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			m.logf("guest %s has no server any more: removing it", id)
			if err := m.host.Delete(ctx, id); err != nil {
				m.logf("guest %s: %v", id, err)
			}
		case err != nil:
			return err
		case g.Lost && storage.Running(srv.Status):
			// Gone with the host: clean up what is left, and start it
			// again below like a server whose guest vanished.
			m.logf("server %s: its guest's task is gone (host reboot?)", id)
			if err := m.host.Delete(ctx, id); err != nil {
				m.logf("server %s: %v", id, err)
			}
			delete(guests, id)
		case g.State == Stopped:
			m.logf("server %s: guest ended while Hearth was away", id)
			if err := m.Stop(ctx, id); err != nil {
				m.logf("server %s: %v", id, err)
			}
		default:
			status := storage.StatusActive
			if g.State == Paused {
				status = storage.StatusPaused
			}
			if _, err := m.store.SetServerStatus(ctx, id, status, g.Started, ""); err != nil {
				m.logf("server %s: %v", id, err)
			}
			m.attachConsole(srv)
		}
	}
	// Claims of servers that are not running were left by a start cut short.
	idle, err := m.store.ServersByStatus(ctx, storage.StatusStopped, storage.StatusDead)
	if err != nil {
		return err
	}
	for _, srv := range idle {
		if _, ok := guests[srv.ID]; !ok {
			if err := m.store.ReleaseClaims(ctx, srv.ID); err != nil {
				m.logf("server %s: release claims: %v", srv.ID, err)
			}
		}
	}
	running, err := m.store.ServersByStatus(ctx, storage.StatusActive, storage.StatusPaused)
	if err != nil {
		return err
	}
	for _, srv := range running {
		if _, ok := guests[srv.ID]; ok {
			continue
		}
		m.logf("server %s was %s but its guest is gone: starting it again", srv.ID, srv.Status)
		unlock := m.lock(srv.ID)
		err := m.start(ctx, srv)
		unlock()
		if err != nil {
			m.logf("server %s: restart: %v", srv.ID, err)
		}
	}
	return nil
}

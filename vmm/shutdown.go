package vmm

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"hearth/internal/ehkeys"
	"hearth/storage"
	"hearth/vmm/guest"
)

// Shutdown asks the guest to power off and returns; the guest's exit then
// stops the server as any exit does. Until then the server is ShuttingDown.
// A guest still running after the grace period is killed, and the
// activity log says so.
func (m *Manager) Shutdown(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	st, err := m.backend.Status(ctx, server)
	if err != nil || st.State == guest.Stopped {
		return fmt.Errorf("server %s is not running: %w", srv.Label(), ErrNotRunning)
	}
	req, err := m.powerOffRequest(srv, st)
	if err != nil {
		return err
	}
	if st.State == guest.Paused { // a frozen guest cannot act on the request
		if err := m.backend.Resume(ctx, server); err != nil {
			return err
		}
		m.setRunning(ctx, server, storage.StatusActive)
	}
	exited := m.waitExit(server)
	if err := req.send(ctx, m.backend, server); err != nil {
		m.cancelWait(server, exited)
		return err
	}
	m.log.Info("asked the guest to power off", "server", server, "with", req)
	m.setTransient(server, Transient{State: ShuttingDown, Deadline: m.now().Add(m.grace)})
	go func() {
		select {
		case <-exited:
			return
		case <-time.After(m.grace):
		}
		m.cancelWait(server, exited)
		defer m.lock(server)()
		// Only the incarnation that was asked to power off is killed.
		cur, err := m.backend.Status(context.Background(), server)
		if err != nil || cur.State == guest.Stopped || !cur.Started.Equal(st.Started) {
			return
		}
		m.log.Warn("the guest did not power off within the grace period: killing it", "server", server, "grace", m.grace, "with", req)
		m.record(server, "server.kill", fmt.Sprintf("killed: the guest did not power off within the %s grace period (asked with %s)", seconds(m.grace), req))
		if err := m.stop(context.Background(), server); err != nil {
			m.log.Error("kill after grace period", "server", server, "err", err)
		}
	}()
	return nil
}

// powerOffRequest is how a guest is asked to power off: a signal to its
// init, or (sig 0) the press of its ACPI power button.
type powerOffRequest struct{ sig syscall.Signal }

func (r powerOffRequest) send(ctx context.Context, b Backend, server string) error {
	if r.sig == 0 {
		return b.Press(ctx, server, guest.PowerButton)
	}
	return b.Signal(ctx, server, r.sig)
}

// String names the request for logs and the activity log: "SIGPWR", "the
// ACPI power button".
func (r powerOffRequest) String() string {
	if r.sig == 0 {
		return "the " + string(guest.PowerButton)
	}
	return ehkeys.SignalName(r.sig)
}

// powerOffRequest is what asks srv's guest to power off: a machine's power
// button (shutdown:signal does not apply to it); for a container the
// server's key shutdown:signal, else what the backend found the guest's
// init understands, else the Manager's default.
func (m *Manager) powerOffRequest(srv storage.Server, st guest.Status) (powerOffRequest, error) {
	if st.Buttons {
		return powerOffRequest{}, nil
	}
	if v := srv.Config["shutdown:signal"]; v != "" {
		sig, err := ehkeys.ShutdownSignal(v)
		if err != nil {
			return powerOffRequest{}, fmt.Errorf("server %s key shutdown:signal: %v: %w", srv.ID, err, ErrInvalid)
		}
		return powerOffRequest{sig}, nil
	}
	if st.PowerOff != 0 {
		return powerOffRequest{st.PowerOff}, nil
	}
	return powerOffRequest{m.powerOff}, nil
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

// seconds writes a whole number of seconds as "60 s", anything else as Go does.
func seconds(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return d.String()
}

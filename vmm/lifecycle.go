package vmm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hearth/internal/hostpath"
	"hearth/storage"
	"hearth/vmm/guest"
)

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
		return fmt.Errorf("server %s is already %s: %w", srv.Label(), srv.Status, ErrRunning)
	}
	return m.start(ctx, srv)
}

// start makes and starts the guest of srv and records the outcome; the
// server is Starting meanwhile.
func (m *Manager) start(ctx context.Context, srv storage.Server) error {
	m.setTransient(srv.ID, Transient{State: Starting})
	defer m.setTransient(srv.ID, Transient{})
	spec, err := m.guestSpec(ctx, srv)
	if err != nil {
		if !errors.Is(err, storage.ErrBusy) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrUnavailable) {
			m.dead(ctx, srv.ID, err)
		}
		return err
	}
	// A guest that ended but whose exit is still being handled goes first.
	if st, err := m.backend.Status(ctx, srv.ID); err == nil && st.State == guest.Stopped {
		if err := m.backend.Delete(ctx, srv.ID); err != nil {
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
	if err := m.backend.Start(ctx, spec); err != nil {
		m.store.ReleaseClaims(context.WithoutCancel(ctx), srv.ID)
		if !errors.Is(err, ErrUnavailable) {
			m.dead(ctx, srv.ID, err)
		}
		return err
	}
	m.forgetConsole(srv.ID)
	st, _ := m.backend.Status(ctx, srv.ID)
	if _, err := m.store.SetServerStatus(context.WithoutCancel(ctx), srv.ID, storage.StatusActive, st.Started, ""); err != nil {
		m.log.Error("recording active", "server", srv.ID, "err", err)
	}
	m.log.Info("guest started", "server", srv.ID)
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
	m.log.Warn("server dead: its guest could not start", "server", server, "reason", reason)
	m.store.ReleaseClaims(context.WithoutCancel(ctx), server)
	if _, err := m.store.SetServerStatus(context.WithoutCancel(ctx), server, storage.StatusDead, time.Time{}, hostpath.Redact(reason.Error())); err != nil {
		m.log.Error("recording dead", "server", server, "reason", reason, "err", err)
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
	if _, err := m.backend.Status(ctx, server); err != nil && !storage.Running(srv.Status) {
		return fmt.Errorf("server %s is already %s: %w", srv.Label(), srv.Status, ErrNotRunning)
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
	if _, err := m.backend.Status(ctx, server); err == nil || storage.Running(srv.Status) {
		if err := m.stop(ctx, server); err != nil {
			return err
		}
	}
	// The guest is gone: finish even if the caller has gone too. A
	// non-persistent server went with its guest already.
	if err := m.store.DeleteServer(context.WithoutCancel(ctx), server); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	m.forgetConsole(server)
	return nil
}

func (m *Manager) stop(ctx context.Context, server string) error {
	if c, ok := m.backend.Console(server); ok {
		m.keepConsole(server, c)
	}
	if err := m.backend.Delete(ctx, server); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	m.wake(server)
	return m.ended(ctx, server)
}

// ended records that a server's guest is gone (already deleted from the Host).
func (m *Manager) ended(ctx context.Context, server string) error {
	ctx = context.WithoutCancel(ctx)
	m.setTransient(server, Transient{})
	m.detachConsole(server)
	m.mu.Lock()
	delete(m.reboots, server)
	m.mu.Unlock()
	if err := m.store.ReleaseClaims(ctx, server); err != nil {
		m.log.Error("releasing claims", "server", server, "err", err)
	}
	srv, err := m.store.SetServerStatus(ctx, server, storage.StatusStopped, time.Time{}, "")
	if errors.Is(err, storage.ErrNotFound) {
		m.forgetConsole(server)
		return nil
	}
	if err != nil {
		return err
	}
	if srv.Config["persistent"] == "true" {
		return nil
	}
	m.store.ReleaseLease(ctx, server)
	m.forgetConsole(server)
	if err := m.store.DeleteServer(ctx, server); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// Reset kills the guest of a running server and starts it again with the
// same configuration; a machine's (a VM's) is reset in place instead.
func (m *Manager) Reset(ctx context.Context, server string) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if !storage.Running(srv.Status) {
		return fmt.Errorf("server %s is %s, not active: %w", srv.Label(), srv.Status, ErrNotRunning)
	}
	if st, err := m.backend.Status(ctx, server); err == nil && st.Buttons && st.State != guest.Stopped {
		return m.resetInPlace(ctx, server, st)
	}
	if err := m.backend.Delete(ctx, server); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	m.wake(server)
	m.setTransient(server, Transient{})
	m.detachConsole(server)
	m.store.ReleaseClaims(context.WithoutCancel(ctx), server)
	return m.start(ctx, srv)
}

// resetInPlace presses the reset button of a machine (a VM): the same guest
// starts its firmware again, keeping its started, console and drive claims.
// As a container's reset does, it ends a shutdown in progress (no kill at
// the end of its grace period) and leaves a paused server active.
func (m *Manager) resetInPlace(ctx context.Context, server string, st guest.Status) error {
	if err := m.backend.Press(ctx, server, guest.ResetButton); err != nil {
		return err
	}
	m.log.Info("pressed the guest's reset button", "server", server)
	m.wake(server)
	m.setTransient(server, Transient{})
	if st.State != guest.Paused {
		return nil
	}
	if err := m.backend.Resume(ctx, server); err != nil {
		return err
	}
	return m.setRunning(ctx, server, storage.StatusActive)
}

// Pause freezes the guest of an active server. One powering off is ErrBusy:
// frozen, it would not finish (and runc's freeze fails on a guest whose
// processes are exiting).
func (m *Manager) Pause(ctx context.Context, server string) error {
	defer m.lock(server)()
	if err := m.expect(ctx, server, guest.Running, "active"); err != nil {
		return err
	}
	if m.poweringOff(server) {
		return fmt.Errorf("server %s is shutting down: %w", server, ErrBusy)
	}
	if err := m.backend.Pause(ctx, server); err != nil {
		return err
	}
	return m.setRunning(ctx, server, storage.StatusPaused)
}

// Resume thaws the guest of a paused server.
func (m *Manager) Resume(ctx context.Context, server string) error {
	defer m.lock(server)()
	if err := m.expect(ctx, server, guest.Paused, "paused"); err != nil {
		return err
	}
	if err := m.backend.Resume(ctx, server); err != nil {
		return err
	}
	return m.setRunning(ctx, server, storage.StatusActive)
}

// expect checks, under the server's lock, that the server exists and its
// guest is in state want (which the message calls what).
func (m *Manager) expect(ctx context.Context, server string, want guest.State, what string) error {
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if got := m.guestState(ctx, server); got != want {
		return fmt.Errorf("server %s is %s, not %s: %w", srv.Label(), got, what, ErrNotRunning)
	}
	return nil
}

func (m *Manager) setRunning(ctx context.Context, server, status string) error {
	st, err := m.backend.Status(ctx, server)
	if err != nil {
		return err
	}
	_, err = m.store.SetServerStatus(context.WithoutCancel(ctx), server, status, st.Started, "")
	return err
}

package vmm

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"hearth/internal/ehkeys"
	"hearth/storage"
	"hearth/vmm/guest"
)

// What a guest's exit status says. A backend reports 128 + the signal for
// an init a signal killed, and the kernel kills the init of a PID namespace
// that calls reboot(2) with SIGINT to power off or halt, with SIGHUP to
// restart (kernel/pid_namespace.c, reboot_pid_ns): the status of an in-guest
// poweroff, halt or reboot. A VM's backend reports its guest's own poweroff
// as guest.ExitPoweredOff too; a VM reboots in place (OnReboot), never with
// exitRebooted.
const (
	exitPoweredOff = guest.ExitPoweredOff
	exitRebooted   = 128 + uint32(syscall.SIGHUP)
)

// The reboot-loop bound: a guest that reboots itself more than maxReboots
// times within rebootWindow is stopped instead of started again.
const (
	maxReboots   = 5
	rebootWindow = time.Minute
)

// guestExited runs on the backend's event loop: it wakes Shutdown and, off
// the loop, ends the server as a shutdown does (stopped, or destroyed when
// not persistent) — or, when the guest rebooted itself and nobody asked it
// to power off, starts it again.
func (m *Manager) guestExited(e guest.Exit) {
	askedToPowerOff := m.poweringOff(e.ID)
	m.wake(e.ID)
	go func() {
		defer m.lock(e.ID)()
		ctx := context.Background()
		// The guest may have been deleted (Stop, Destroy) or replaced
		// (Reset, Start) while this waited for the lock.
		if st, err := m.backend.Status(ctx, e.ID); err != nil || st.State != guest.Stopped {
			return
		}
		switch {
		case e.Status == exitRebooted && !askedToPowerOff:
			m.record(e.ID, "server.exit", "the guest rebooted itself")
			m.rebooted(ctx, e.ID)
			return
		case e.Status == exitPoweredOff:
			m.log.Info("guest powered off", "server", e.ID)
			if !askedToPowerOff {
				m.record(e.ID, "server.exit", "the guest powered itself off")
			}
		default:
			m.log.Info("guest exited", "server", e.ID, "status", e.Status)
			if !askedToPowerOff {
				m.record(e.ID, "server.exit", "the guest died: "+exitReason(e.Status))
			}
		}
		if err := m.stop(ctx, e.ID); err != nil {
			m.log.Error("stopping after exit", "server", e.ID, "err", err)
		}
	}()
}

// guestRebooted runs on the backend's event loop (a record, no lock) when a
// machine (a VM) rebooted itself in place: nothing restarts and the server
// stays as it is, as a PC would; the activity log says so at most
// maxReboots times within rebootWindow, so a machine in a reset loop (a
// triple fault, a bootloader that reboots at once) does not flood it.
func (m *Manager) guestRebooted(server string) {
	n := m.countReboot(server)
	m.log.Info("guest rebooted itself in place", "server", server, "within_window", n)
	switch {
	case n <= maxReboots:
		m.record(server, "server.reboot", "the guest rebooted itself")
	case n == maxReboots+1:
		m.record(server, "server.reboot", fmt.Sprintf("the guest rebooted itself %d times within %s: further reboots within it are not recorded", n, seconds(rebootWindow)))
	}
}

// rebooted starts the server whose guest rebooted itself again at once: the
// same server and configuration with a new started. Its drive claims stay
// held throughout (Claim takes them anew in one transaction). A guest in a
// reboot loop is stopped instead, and a guest that cannot start again
// leaves its server dead with the reason.
func (m *Manager) rebooted(ctx context.Context, server string) {
	if n := m.countReboot(server); n > maxReboots {
		m.log.Warn("guest reboots in a loop: stopping it", "server", server, "reboots", n, "within", rebootWindow)
		m.record(server, "server.exit", fmt.Sprintf("stopped: the guest rebooted itself %d times within %s", n, rebootWindow))
		if err := m.stop(ctx, server); err != nil {
			m.log.Error("stopping a guest in a reboot loop", "server", server, "err", err)
		}
		return
	}
	srv, err := m.store.Server(ctx, server)
	if err == nil {
		err = m.backend.Delete(ctx, server)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		m.log.Error("restarting a rebooted guest", "server", server, "err", err)
		if err := m.stop(ctx, server); err != nil {
			m.log.Error("stopping a rebooted guest", "server", server, "err", err)
		}
		return
	}
	m.log.Info("guest rebooted: starting it again", "server", server)
	m.detachConsole(server)
	if err := m.start(ctx, srv); err != nil {
		m.log.Error("restarting a rebooted guest", "server", server, "err", err)
		// start leaves a refusal (a drive busy, no runtime) unrecorded:
		// the server has no guest any more, so it is dead.
		if now, serr := m.store.Server(ctx, server); serr == nil && storage.Running(now.Status) {
			m.dead(ctx, server, fmt.Errorf("starting again after the guest rebooted: %w", err))
		}
	}
}

// countReboot records a reboot of the server's guest now and returns how
// many it had within rebootWindow, this one included.
func (m *Manager) countReboot(server string) int {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	recent := m.reboots[server][:0]
	for _, t := range m.reboots[server] {
		if now.Sub(t) < rebootWindow {
			recent = append(recent, t)
		}
	}
	m.reboots[server] = append(recent, now)
	return len(m.reboots[server])
}

// exitReason says in words why a guest's init ended: the signal that killed
// it, or the status it exited with.
func exitReason(status uint32) string {
	if status > 128 && status < 128+65 {
		return "its init was killed by " + ehkeys.SignalName(syscall.Signal(status-128))
	}
	return fmt.Sprintf("its init exited with status %d", status)
}

// record adds to the server's activity log what Hearth saw or did by itself;
// a failure to record costs only a log line.
func (m *Manager) record(server, kind, message string) {
	if err := m.store.Record(context.Background(), server, kind, message); err != nil {
		m.log.Error("recording an event", "server", server, "kind", kind, "err", err)
	}
}

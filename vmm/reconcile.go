package vmm

import (
	"context"
	"errors"
	"sort"

	"hearth/storage"
	"hearth/vmm/guest"
)

// reconcile brings the database in line with the guests after a start.
func (m *Manager) reconcile(ctx context.Context) error {
	guests := map[string]guest.Status{}
	for _, g := range m.backend.Guests(ctx) {
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
			m.log.Info("guest has no server any more: removing it", "server", id)
			if err := m.backend.Delete(ctx, id); err != nil {
				m.log.Error("removing guest", "server", id, "err", err)
			}
		case err != nil:
			return err
		case g.Lost && storage.Running(srv.Status):
			// Gone with the host: clean up what is left, and start it
			// again below like a server whose guest vanished.
			m.log.Warn("guest lost with the host (reboot?)", "server", id)
			if err := m.backend.Delete(ctx, id); err != nil {
				m.log.Error("cleaning up a lost guest", "server", id, "err", err)
			}
			delete(guests, id)
		case g.State == guest.Stopped && g.ExitStatus == exitRebooted && storage.Running(srv.Status):
			// It asked to be started again: done below, as for a lost one.
			m.log.Info("guest rebooted itself while Hearth was away", "server", id)
			if err := m.backend.Delete(ctx, id); err != nil {
				m.log.Error("cleaning up a rebooted guest", "server", id, "err", err)
			}
			delete(guests, id)
		case g.State == guest.Stopped:
			m.log.Info("guest ended while Hearth was away", "server", id)
			if err := m.Stop(ctx, id); err != nil {
				m.log.Error("stopping an ended guest", "server", id, "err", err)
			}
		default:
			status := storage.StatusActive
			if g.State == guest.Paused {
				status = storage.StatusPaused
			}
			if _, err := m.store.SetServerStatus(ctx, id, status, g.Started, ""); err != nil {
				m.log.Error("recording an adopted guest", "server", id, "err", err)
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
				m.log.Error("releasing claims", "server", srv.ID, "err", err)
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
		m.log.Info("guest gone: starting it again", "server", srv.ID, "was", srv.Status)
		unlock := m.lock(srv.ID)
		err := m.start(ctx, srv)
		unlock()
		if err != nil {
			m.log.Error("restart", "server", srv.ID, "err", err)
		}
	}
	return nil
}

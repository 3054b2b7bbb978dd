package vmm

import (
	"context"

	"hearth/vmm/guest"
)

// guestExited runs on the Host's event loop: it wakes Shutdown and, off the
// loop, puts the server in its stopped (or destroyed) state.
func (m *Manager) guestExited(e guest.Exit) {
	m.wake(e.ID)
	go func() {
		defer m.lock(e.ID)()
		// The guest may have been deleted (Stop, Shutdown) or replaced
		// (Reset, Start) while this waited for the lock.
		if st, err := m.backend.Status(context.Background(), e.ID); err != nil || st.State != guest.Stopped {
			return
		}
		m.log.Info("guest exited", "server", e.ID, "status", e.Status)
		if err := m.stop(context.Background(), e.ID); err != nil {
			m.log.Error("stopping after exit", "server", e.ID, "err", err)
		}
	}()
}

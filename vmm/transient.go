package vmm

import "time"

// The transient states a server passes through between two statuses.
const (
	// Starting: a start is in progress (the guest's filesystem checked,
	// its root prepared, its shim started); the status is still stopped
	// or dead until it ends.
	Starting = "starting"
	// ShuttingDown: the guest was asked to power off and is still there;
	// the status stays active until it is gone, at the latest at Deadline.
	ShuttingDown = "shutting-down"
)

// Transient is what is happening to a server now, between two statuses.
type Transient struct {
	State string // Starting or ShuttingDown
	// Deadline is, while shutting down, when a guest still there is killed.
	Deadline time.Time
}

// Transient reports what is happening to the server now; false when it
// rests in its status.
func (m *Manager) Transient(server string) (Transient, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.transients[server]
	return t, ok
}

// setTransient records what is happening to the server; a zero Transient
// clears it. A second shutdown keeps the first one's deadline: the first
// kill comes then.
func (m *Manager) setTransient(server string, t Transient) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.State == "" {
		delete(m.transients, server)
		return
	}
	if cur, ok := m.transients[server]; ok && cur.State == ShuttingDown && t.State == ShuttingDown && cur.Deadline.Before(t.Deadline) {
		return
	}
	m.transients[server] = t
}

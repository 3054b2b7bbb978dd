package containerd

import (
	"context"
	"fmt"

	"hearth/vmm/guest"
)

// Status describes one guest.
func (h *Host) Status(ctx context.Context, id string) (guest.Status, error) {
	h.mu.Lock()
	g, ok := h.guests[id]
	h.mu.Unlock()
	if !ok {
		return guest.Status{}, fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	return h.status(g), nil
}

// Guests describes every guest the Host knows: after Open, those an earlier
// Hearth left, running or ended meanwhile.
func (h *Host) Guests(ctx context.Context) []guest.Status {
	h.mu.Lock()
	all := make([]*instance, 0, len(h.guests))
	for _, g := range h.guests {
		all = append(all, g)
	}
	h.mu.Unlock()
	out := make([]guest.Status, 0, len(all))
	for _, g := range all {
		out = append(out, h.status(g))
	}
	return out
}

func (h *Host) status(g *instance) guest.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := guest.Status{Spec: g.spec, Started: g.started, State: guest.Running, PowerOff: g.powerOff, Buttons: g.spec.VM()}
	switch {
	case g.exited:
		s.State, s.ExitStatus, s.ExitedAt, s.Lost = guest.Stopped, g.exit.Status, g.exit.At, g.lost
	case g.paused:
		s.State = guest.Paused
	}
	return s
}

// Console is the guest's terminal stream.
func (h *Host) Console(id string) (*guest.Console, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.guests[id]
	if !ok {
		return nil, false
	}
	return g.console, true
}

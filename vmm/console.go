package vmm

import (
	"context"
	"fmt"

	"hearth/storage"
)

func (m *Manager) attachConsole(srv storage.Server) {
	if m.consoles == nil || srv.Config["password"] == "" {
		return
	}
	c, ok := m.backend.Console(srv.ID)
	if !ok {
		return
	}
	if _, err := m.consoles.Attach(srv.ID, srv.Config["name"], c, srv.Config["password"]); err != nil {
		m.log.Warn("console not attached", "server", srv.ID, "err", err)
	}
}

func (m *Manager) detachConsole(server string) {
	if m.consoles != nil {
		m.consoles.Detach(server)
	}
}

// ConsoleOutput is the last 64 KiB the server's guest printed (web/api's ConsoleLog).
func (m *Manager) ConsoleOutput(ctx context.Context, server string) ([]byte, error) {
	c, ok := m.backend.Console(server)
	if !ok {
		return nil, fmt.Errorf("server %s: %w", server, ErrNotRunning)
	}
	return c.Backlog(), nil
}

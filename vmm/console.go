package vmm

import (
	"context"

	"hearth/storage"
	"hearth/vmm/guest"
)

// attachConsole opens the VNC console of a running server that has a
// password: its guest's display where it has one (a VM's VGA, relayed),
// else its terminal. A VM's serial port stays its console log
// (ConsoleOutput).
func (m *Manager) attachConsole(srv storage.Server) {
	if m.consoles == nil || srv.Config["password"] == "" {
		return
	}
	name, password := srv.Config["name"], srv.Config["password"]
	var err error
	if dial, ok := m.backend.Display(srv.ID); ok {
		_, err = m.consoles.AttachRelay(srv.ID, name, dial, password)
	} else if c, ok := m.backend.Console(srv.ID); ok {
		_, err = m.consoles.Attach(srv.ID, name, c, password)
	} else {
		return
	}
	if err != nil {
		m.log.Warn("console not attached", "server", srv.ID, "err", err)
	}
}

func (m *Manager) detachConsole(server string) {
	if m.consoles != nil {
		m.consoles.Detach(server)
	}
}

// ConsoleOutput is the last 64 KiB the server's guest printed (web/api's
// ConsoleLog): of the guest running now, or of the last one, which stays
// readable after it ended (so that one sees why) until the server starts
// again or is destroyed. A server whose guest has not run since Hearth
// started has none.
func (m *Manager) ConsoleOutput(ctx context.Context, server string) ([]byte, error) {
	if c, ok := m.backend.Console(server); ok {
		return c.Backlog(), nil
	}
	m.mu.Lock()
	c, ok := m.lastConsoles[server]
	m.mu.Unlock()
	if ok {
		return c.Backlog(), nil
	}
	if _, err := m.store.Server(ctx, server); err != nil {
		return nil, err
	}
	return nil, nil
}

// keepConsole keeps the console of the server's guest, which is going.
func (m *Manager) keepConsole(server string, c *guest.Console) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastConsoles[server] = c
}

// forgetConsole drops the kept console of the server's last guest.
func (m *Manager) forgetConsole(server string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.lastConsoles, server)
}

package vmm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"hearth/console"
	"hearth/storage"
	"hearth/vmm/guest"
)

// Set changes a server's configuration under its lifecycle lock, so no
// start, stop, reset or destroy runs between the stored change and its
// effect: a start either ran before (the server is active and only live keys
// may change) or runs after (and boots, and claims, the new configuration).
// update validates and stores the change — any key when active is false,
// only live keys when it is true — and returns the keys it changed (value ""
// = removed). On an active server those then take effect at once (apply); if
// that fails, their old values are stored again and the failure returned.
func (m *Manager) Set(ctx context.Context, server string, update func(ctx context.Context, active bool) (changed map[string]string, err error)) error {
	defer m.lock(server)()
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	// A guest that ended but whose exit is not yet handled counts as
	// active: its row says so, and its claims are still held.
	active := storage.Running(srv.Status) || m.guestState(ctx, server) != guest.Stopped
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
			m.log.Error("undoing a refused live change", "server", server, "err", rerr)
		}
		return err
	}
	return nil
}

// apply makes stored live changes of a running server take effect: cpu (and
// smp) change the CPU quota at once, nic:N:firewall:* and nic:0:block the NIC's filter,
// password the console's, name its title.
// A guest that has ended meanwhile keeps them in its stored configuration
// only, which its next start uses. The caller holds the server's lock.
func (m *Manager) apply(ctx context.Context, server string, changed map[string]string) error {
	srv, err := m.store.Server(ctx, server)
	if err != nil {
		return err
	}
	if m.guestState(ctx, server) == guest.Stopped {
		return nil
	}
	if _, ok := changed["cpu"]; ok {
		cpu, err := atoiKey(changed, "cpu")
		if err != nil {
			return err
		}
		smp, _ := atoiKey(srv.Config, "smp") // "auto" reads as 0: derived from cpu
		if err := m.backend.SetCPU(ctx, server, cpu, smp); errors.Is(err, ErrNotRunning) {
			return nil // it ended just now: stored only, as above
		} else if err != nil {
			return err
		}
	}
	for index := range firewallChanges(changed) {
		fw, err := firewall(srv.Config, fmt.Sprintf("nic:%d:", index))
		if err != nil {
			return err
		}
		if err := m.backend.SetFirewall(ctx, server, index, fw); errors.Is(err, ErrNotRunning) {
			return nil
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

// firewallChanges are the NICs whose firewall keys (nic:N:firewall:*,
// nic:0:block) changed.
func firewallChanges(changed map[string]string) map[int]bool {
	nics := map[int]bool{}
	for k := range changed {
		var n int
		if rest, ok := strings.CutPrefix(k, "nic:"); ok && (strings.Contains(rest, ":firewall:") || strings.HasSuffix(rest, ":block")) {
			if _, err := fmt.Sscanf(rest, "%d:", &n); err == nil {
				nics[n] = true
			}
		}
	}
	return nics
}

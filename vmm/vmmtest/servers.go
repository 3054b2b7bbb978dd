package vmmtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm"
)

// Servers creates servers in a store and follows their state, for tests of
// the Manager over any backend.
type Servers struct {
	t     testing.TB
	Store *storage.Store
	Owner string // the user who owns the servers
}

// NewServers opens a store in a new directory (closed at cleanup) with
// one user to own the servers; opts are the store's.
func NewServers(t testing.TB, dir string, opts ...storage.Option) *Servers {
	store, err := storage.Open(dir, append([]storage.Option{storage.WithLogger(logtest.Logger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	u, _, err := store.CreateUser(context.Background(), "owner", false)
	if err != nil {
		t.Fatal(err)
	}
	return &Servers{t: t, Store: store, Owner: u.ID}
}

// Server creates a server of 1000 MHz and 128 MiB, smp auto, not
// persistent, with config on top, and returns its UUID.
func (s *Servers) Server(config map[string]string) string {
	s.t.Helper()
	cfg := map[string]string{"name": "test server", "cpu": "1000", "mem": "128", "smp": "auto", "persistent": "false"}
	maps.Copy(cfg, config)
	srv, err := s.Store.CreateServer(context.Background(), s.Owner, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return srv.ID
}

// Status is the server's status; "destroyed" once it is gone.
func (s *Servers) Status(id string) string {
	s.t.Helper()
	srv, err := s.Store.Server(context.Background(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return "destroyed"
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return srv.Status
}

// Events lists the messages of a server's activity-log events of one kind,
// newest first.
func (s *Servers) Events(id, kind string) []string {
	s.t.Helper()
	all, err := s.Store.Events(context.Background(), id, 100)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e.Message)
		}
	}
	return out
}

// WaitStatus waits until the server's status is want: for what the Manager
// does off the caller's goroutine (an exit, the kill after a grace period).
func (s *Servers) WaitStatus(id, want string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Status(id) != want {
		if time.Now().After(deadline) {
			s.t.Fatalf("server %s is %s, want %s", id, s.Status(id), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Set changes a server's configuration through m.Set the way web/api does:
// any key of a stopped server, only cpu, name, password and NIC firewall keys
// (nic:N:firewall:*, nic:0:block) of an active one (others are vmm.ErrBusy
// naming the key).
func (s *Servers) Set(ctx context.Context, m *vmm.Manager, id string, changes map[string]string) error {
	return m.Set(ctx, id, func(ctx context.Context, active bool) (map[string]string, error) {
		for k := range changes {
			if active && k != "cpu" && k != "name" && k != "password" && !strings.Contains(k, ":firewall:") && k != "nic:0:block" {
				return nil, fmt.Errorf("server %s is active: key %s: %w", id, k, vmm.ErrBusy)
			}
		}
		_, err := s.Store.UpdateServer(ctx, id, func(srv *storage.Server) error {
			maps.Copy(srv.Config, changes)
			return nil
		})
		return changes, err
	})
}

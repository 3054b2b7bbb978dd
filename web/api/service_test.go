package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/web/eh"
)

func newService(t testing.TB) (*Service, *storage.Store) {
	t.Helper()
	store, err := storage.Open(t.TempDir(), storage.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return New(store), store
}

func wantWord(t *testing.T, err error, word string) {
	t.Helper()
	var e *eh.Error
	if !errors.As(err, &e) || e.Word != word {
		t.Fatalf("error %v, want word %s", err, word)
	}
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	root := Caller{ID: "", Admin: true}
	admin, secret, err := s.CreateUser(ctx, root, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, "root", secret)
	if err != nil || got != admin {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	_, err = s.Authenticate(ctx, "root", "nope")
	wantWord(t, err, "auth")
	alice, _, err := s.CreateUser(ctx, admin, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.CreateUser(ctx, alice, "mallory", true)
	wantWord(t, err, "auth")
	_, err = s.Users(ctx, alice)
	wantWord(t, err, "auth")
	_, _, err = s.CreateUser(ctx, admin, "alice", false)
	wantWord(t, err, "busy")
	var e *eh.Error
	if _, _, err = s.CreateUser(ctx, admin, "has space", false); !errors.As(err, &e) || e.Word != "usage" || e.Key != "name" {
		t.Errorf("bad name: %v", err)
	}
	users, err := s.Users(ctx, admin)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users = %v, %v", users, err)
	}
	wantWord(t, s.RemoveUser(ctx, admin, admin.ID), "busy")
	d, err := s.CreateDrive(ctx, alice, eh.Props{"size": "1M"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser(ctx, admin, alice.ID); !strings.Contains(err.Error(), "1 drives") {
		t.Errorf("remove an owner: %v", err)
	}
	if err := s.DestroyDrive(ctx, alice, d["drive"]); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser(ctx, admin, alice.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.User(ctx, alice.ID)
	wantWord(t, err, "auth")
}

func TestErrorKeys(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t)
	u, _, _ := store.CreateUser(ctx, "alice", false)
	c := Caller{ID: u.ID, Name: u.Name}
	_, err := s.CreateServer(ctx, c, eh.Props{"name": "s", "cpu": "1000", "mem": "512", "block:1": "00000000-0000-0000-0000-000000000000"}, false)
	var e *eh.Error
	if !errors.As(err, &e) || e.Word != "missing" || e.Key != "block:1" {
		t.Errorf("missing drive: %#v", err)
	}
}

// TestMACOfAnotherServerIsBusy: a MAC is one server's, whoever owns the other.
func TestMACOfAnotherServerIsBusy(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t)
	alice, _, _ := store.CreateUser(ctx, "alice", false)
	bob, _, _ := store.CreateUser(ctx, "bob", false)
	ca, cb := Caller{ID: alice.ID, Name: alice.Name}, Caller{ID: bob.ID, Name: bob.Name}
	base := eh.Props{"name": "s", "cpu": "1000", "mem": "512", "nic:0:model": "virtio", "nic:1:model": "virtio"}
	with := func(k, v string) eh.Props {
		p := eh.Props{k: v}
		for bk, bv := range base {
			p[bk] = bv
		}
		return p
	}
	own, err := s.CreateServer(ctx, ca, with("nic:0:mac", "02:aa:00:00:00:01"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"nic:0:mac", "nic:1:mac"} {
		_, err := s.CreateServer(ctx, cb, with(key, "02:AA:00:00:00:01"), false)
		var e *eh.Error
		if !errors.As(err, &e) || e.Word != "busy" || e.Key != key || !strings.Contains(e.Message, key) {
			t.Errorf("create with another user's MAC in %s: %#v, want busy naming the key", key, err)
		}
	}
	other, err := s.CreateServer(ctx, cb, with("nic:1:mac", "02:aa:00:00:00:02"), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SetServer(ctx, cb, other["server"], eh.Props{"nic:1:mac": "02:aa:00:00:00:01"})
	wantWord(t, err, "busy")
	// A server keeps its own MAC, and a freed MAC is free.
	if _, err := s.SetServer(ctx, ca, own["server"], eh.Props{"nic:0:mac": "02:aa:00:00:00:01", "name": "t"}); err != nil {
		t.Errorf("set a server's own MAC again: %v", err)
	}
	if _, err := s.SetServer(ctx, ca, own["server"], eh.Props{"nic:0:mac": "02:aa:00:00:00:03"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetServer(ctx, cb, other["server"], eh.Props{"nic:0:mac": "02:aa:00:00:00:01"}); err != nil {
		t.Errorf("a MAC no server uses any more: %v", err)
	}
}

func TestGuestErrorsMapToWords(t *testing.T) {
	for err, word := range map[error]string{
		vmm.ErrUnavailable:           "system",
		vmm.ErrBusy:                  "busy",
		vmm.ErrRunning:               "busy",
		vmm.ErrNotRunning:            "busy",
		vmm.ErrInvalid:               "usage",
		vmm.ErrBootDrive:             "failed",
		storage.ErrNotFound:          "missing",
		storage.ErrFull:              "full",
		context.Canceled:             "failed",
		errors.New("something else"): "failed",
		eh.Billingf("out of credit"): "billing",
		errors.Join(errors.New("x"), vmm.ErrBootDrive): "failed",
	} {
		wantWord(t, apiError(err), word)
	}
	if apiError(nil) != nil {
		t.Error("apiError(nil) != nil")
	}
	if !strings.Contains(apiError(vmm.ErrUnavailable).Error(), "no guest runtime") {
		t.Error("unavailable message")
	}
}

func TestEvents(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t)
	a, _, _ := store.CreateUser(ctx, "alice", false)
	b, _, _ := store.CreateUser(ctx, "bob", false)
	alice, bob := Caller{ID: a.ID}, Caller{ID: b.ID}
	srv, err := s.CreateServer(ctx, alice, eh.Props{"name": "s", "cpu": "1000", "mem": "512"}, false)
	if err != nil {
		t.Fatal(err)
	}
	s.SetServer(ctx, alice, srv["server"], eh.Props{"cpu": "2000"})
	events, err := s.Events(ctx, alice, srv["server"], 10)
	if err != nil || len(events) != 2 || events[0].Kind != "server.set" || !strings.Contains(events[0].Message, "cpu") {
		t.Fatalf("Events = %+v, %v", events, err)
	}
	d, _ := s.CreateDrive(ctx, alice, eh.Props{"size": "1M"})
	if events, err := s.Events(ctx, alice, d["drive"], 10); err != nil || len(events) != 1 {
		t.Errorf("drive events %+v, %v", events, err)
	}
	for _, id := range []string{srv["server"], d["drive"], "nonsense"} {
		_, err := s.Events(ctx, bob, id, 10)
		wantWord(t, err, "missing")
	}
}

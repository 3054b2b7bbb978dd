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

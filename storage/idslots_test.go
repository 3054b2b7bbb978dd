package storage

import (
	"context"
	"errors"
	"testing"
)

func TestIDSlotsAreKeptDisjointAndReused(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	var ids []string
	for range 3 {
		srv, err := s.CreateServer(ctx, u.ID, map[string]string{"name": "g"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, srv.ID)
	}
	for want, id := range ids {
		got, err := s.IDSlot(ctx, id)
		if err != nil || got != want {
			t.Fatalf("server %d: slot %d, %v; want %d", want, got, err, want)
		}
	}
	if again, err := s.IDSlot(ctx, ids[1]); err != nil || again != 1 {
		t.Fatalf("second ask: slot %d, %v; want the same slot 1", again, err)
	}
	// A destroyed server's slot is the next one handed out.
	if err := s.DeleteServer(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	srv, err := s.CreateServer(ctx, u.ID, map[string]string{"name": "h"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.IDSlot(ctx, srv.ID); err != nil || got != 0 {
		t.Fatalf("after destroy: slot %d, %v; want the freed 0", got, err)
	}
	if got, err := s.IDSlot(ctx, srv.ID); err != nil || got != 0 {
		t.Fatalf("kept: slot %d, %v", got, err)
	}
	next, err := s.CreateServer(ctx, u.ID, map[string]string{"name": "i"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.IDSlot(ctx, next.ID); err != nil || got != 3 {
		t.Fatalf("next: slot %d, %v; want 3 (0-2 taken)", got, err)
	}
	if _, err := s.IDSlot(ctx, "00000000-0000-0000-0000-00000000dead"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown server: %v, want ErrNotFound", err)
	}
}

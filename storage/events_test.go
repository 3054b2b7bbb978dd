package storage

import (
	"context"
	"testing"
)

// An event made with WithActor says who asked; one without, nobody; Record
// adds one that goes with no other change.
func TestEventActor(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	srv, err := s.CreateServer(WithActor(ctx, "alice"), u.ID, map[string]string{"name": "web1", "cpu": "1000", "mem": "256"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, srv.ID, "server.kill", "killed at the end of the grace period"); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(WithActor(ctx, "bob"), srv.ID, "server.request", "shutdown requested"); err != nil {
		t.Fatal(err)
	}
	events, err := s.Events(ctx, srv.ID, 10)
	if err != nil || len(events) != 3 {
		t.Fatalf("events %+v, %v", events, err)
	}
	want := []string{"shutdown requested — by bob", "killed at the end of the grace period", `server "web1" created — by alice`}
	for i, e := range events {
		if e.Message != want[i] {
			t.Errorf("event %d: %q, want %q", i, e.Message, want[i])
		}
	}
	if events[1].Kind != "server.kill" {
		t.Errorf("kind %q", events[1].Kind)
	}
}

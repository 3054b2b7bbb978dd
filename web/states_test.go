package web

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"hearth/vmm"
)

// TestServerPassingState: while a server shuts down its status stays
// active (the reference's values only) and Hearth's keys say what is
// happening and when the guest is killed; a client echoing them back later,
// when the state has passed, is not refused. JSON gives the deadline as a
// number, like started.
func TestServerPassingState(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	s := c.post("/servers/create", "name web1\ncpu 1000\nmem 512\npersistent true").expect(t, 200).props(t)
	id := s["server"]
	if s["hearth:state"] != "" {
		t.Errorf("a server at rest shows hearth:state %q", s["hearth:state"])
	}
	deadline := time.Unix(1900000000, 0)
	e.guests.mu.Lock()
	e.guests.passing = map[string]vmm.Transient{id: {State: vmm.ShuttingDown, Deadline: deadline}}
	e.guests.mu.Unlock()
	info := c.get("/servers/"+id+"/info").expect(t, 200)
	got := info.props(t)
	if got["status"] != "active" || got["hearth:state"] != "shutting-down" || got["hearth:deadline"] != "1900000000" {
		t.Errorf("shutting down: status %q, hearth:state %q, hearth:deadline %q", got["status"], got["hearth:state"], got["hearth:deadline"])
	}
	if j := c.asJSON().get("/servers/"+id+"/info").expect(t, 200).body; !strings.Contains(j, `"hearth:deadline":1900000000`) || !strings.Contains(j, `"hearth:state":"shutting-down"`) {
		t.Errorf("JSON info: %s", j)
	}
	e.guests.mu.Lock()
	e.guests.passing = nil
	e.guests.mu.Unlock()
	echoed := c.post("/servers/"+id+"/set", strings.Replace(info.body, "name web1", "name web2", 1)).expect(t, 200).props(t)
	if echoed["name"] != "web2" || echoed["hearth:state"] != "" {
		t.Errorf("echoed set after the state passed: %v", echoed)
	}
	if got := c.post("/servers/"+id+"/set", "hearth:state starting").expect(t, 200).props(t); got["hearth:state"] != "" {
		t.Errorf("hearth:state was set: %v", got)
	}
}

// TestServerRequestsLogged: every lifecycle request is in the server's
// activity log with who asked, and so is a failure the guest layer gave.
func TestServerRequestsLogged(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	id := c.post("/servers/create", "name web1\ncpu 1000\nmem 512\npersistent true").expect(t, 200).props(t)["server"]
	c.post("/servers/"+id+"/shutdown", "").expect(t, 204)
	c.post("/servers/"+id+"/start", "").expect(t, 204)
	c.post("/servers/"+id+"/set", "cpu 1200").expect(t, 200)
	c.post("/servers/"+id+"/stop", "").expect(t, 204)
	e.guests.refuse = errors.New("no room")
	c.post("/servers/"+id+"/start", "").expect(t, 500)
	events, err := e.store.Events(context.Background(), id, 20)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for _, ev := range events {
		log = append(log, ev.Kind+": "+ev.Message)
	}
	all := strings.Join(log, "\n")
	for _, want := range []string{
		"server.request: start requested — by alice",
		"server.request: shutdown requested — by alice",
		"server.set: configuration changed: cpu — by alice",
		`server.create: server "web1" created — by alice`,
		"server.request: stop (power cut) requested — by alice",
		"server.error: start failed: no room — by alice",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("activity log lacks %q:\n%s", want, all)
		}
	}
}

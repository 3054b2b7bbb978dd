package e2e

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// answers counts what contending clients got, per action and status, and
// the answers that must not happen, one line per kind (UUIDs and byte
// counts blanked).
type answers struct {
	mu     sync.Mutex
	counts map[string]int
	bad    map[string]int
}

var (
	uuidPattern  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	bytesPattern = regexp.MustCompile(`\d+ bytes`)
)

// add records one answer; allowed says whether this status is acceptable
// besides success, 409 busy and 404 missing.
func (a *answers) add(action string, r reply, allowed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts, a.bad = map[string]int{}, map[string]int{}
	}
	a.counts[fmt.Sprintf("%s %d", action, r.status)]++
	if r.err == nil && !allowed && (r.status < 400 || r.status == 409 || r.status == 404) {
		return
	}
	if r.err == nil && allowed {
		return
	}
	body := strings.TrimSpace(r.body)
	if r.status == 200 {
		body = fmt.Sprintf("%d bytes", len(r.body))
	}
	msg := fmt.Sprintf("%s: %d %s %.120q %v", action, r.status, r.word, body, r.err)
	a.bad[uuidPattern.ReplaceAllString(bytesPattern.ReplaceAllString(msg, "N bytes"), "UUID")]++
}

func (a *answers) report(t *testing.T) {
	t.Logf("answers: %v", a.counts)
	for k, n := range a.bad {
		t.Errorf("%d× %s", n, k)
	}
}

// hammer runs call in loadClients goroutines, each with its own random
// source, until d has passed.
func hammer(d time.Duration, call func(rng *rand.Rand)) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(deadline) {
				call(rng)
			}
		}()
	}
	wg.Wait()
}

// whileHammering runs call in loadClients goroutines for d and, meanwhile,
// destroy once for each id, spread over the first half of d.
func whileHammering(d time.Duration, ids []string, destroy func(id string), call func(rng *rand.Rand)) {
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(d / 2 * time.Duration(i) / time.Duration(len(ids)))
			destroy(id)
		}()
	}
	hammer(d, call)
	wg.Wait()
}

// TestContention has 16 clients of one user fire lifecycle calls at the
// same 4 servers at once: for 10 s start, stop, reset, pause, resume,
// shutdown, set and info; then for 3 s the same while each server is also
// destroyed. Every answer is a success, 409 busy or (once destroyed) 404 —
// never a 5xx — and rows, tasks and host state agree afterwards.
func TestContention(t *testing.T) {
	h := startHearth(t)
	lib := h.importLibrary("32M")
	c := h.addUser("race-"+randomHex(2), false)
	var ids []string
	for i := range 4 {
		ids = append(ids, c.post("/servers/create", guestWithNIC(fmt.Sprintf("race%d", i), c.driveFrom(t, lib, "32M"))).must(t, 200).props()["server"])
	}
	actions := []string{"start", "stop", "reset", "pause", "resume", "shutdown", "set", "info"}
	var got answers
	call := func(rng *rand.Rand) {
		id, action := ids[rng.IntN(len(ids))], actions[rng.IntN(len(actions))]
		var r reply
		switch action {
		case "info":
			r = c.get("/servers/" + id + "/info")
		case "set":
			r = c.post("/servers/"+id+"/set", fmt.Sprintf("cpu %d", 500+rng.IntN(500)))
		default:
			r = c.post("/servers/"+id+"/"+action, "")
		}
		got.add(action, r, false)
	}
	hammer(10*time.Second, call)
	whileHammering(3*time.Second, ids, func(id string) { got.add("destroy", c.post("/servers/"+id+"/destroy", ""), false) }, call)
	got.report(t)
	// Let shutdowns in their grace period end, then compare.
	time.Sleep(3 * time.Second)
	if s := h.checkConsistent(t); len(s.servers) != 0 {
		t.Errorf("servers left after destroying all: %d", len(s.servers))
	}
}

// TestDriveContention has 16 clients write, read, resize, image, clone and
// rename the same 3 drives at once for 8 s, then destroy them among the
// calls for 2 s: only successes, 409 busy and 404 (and 400 for a read past
// an end a resize just moved); a 200 read carries all its bytes; then rows
// and files agree.
func TestDriveContention(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("drace-"+randomHex(2), false)
	src := c.post("/drives/create", "name src\nsize 4M").must(t, 200).props()["drive"]
	c.do("POST", "/drives/"+src+"/write/0", strings.NewReader(strings.Repeat("s", 4<<20))).must(t, 204)
	var ids []string
	for i := range 3 {
		ids = append(ids, c.post("/drives/create", fmt.Sprintf("name d%d\nsize 8M", i)).must(t, 200).props()["drive"])
	}
	actions := []string{"write", "read", "resize", "image", "clone", "rename"}
	var got answers
	call := func(rng *rand.Rand) {
		id, action := ids[rng.IntN(len(ids))], actions[rng.IntN(len(actions))]
		var r reply
		switch action {
		case "write":
			r = c.do("POST", fmt.Sprintf("/drives/%s/write/%d", id, rng.IntN(4)<<20), strings.NewReader(strings.Repeat("w", 1<<20)))
		case "read":
			r = c.get(fmt.Sprintf("/drives/%s/read/%d/1M", id, rng.IntN(8)<<20))
		case "resize":
			r = c.post("/drives/"+id+"/set", fmt.Sprintf("size %dM", 4+rng.IntN(8)))
		case "image":
			r = c.post("/drives/"+id+"/image/"+src, "")
		case "clone":
			r = c.post("/drives/"+id+"/clone", "name c")
		case "rename":
			r = c.post("/drives/"+id+"/set", "name r")
		}
		pastEnd := action == "read" && r.status == 400 && strings.Contains(r.body, "past the end")
		got.add(action, r, pastEnd)
	}
	hammer(8*time.Second, call)
	whileHammering(2*time.Second, ids, func(id string) { got.add("destroy", c.post("/drives/"+id+"/destroy", ""), false) }, call)
	got.report(t)
	h.waitNoImaging(t)
	h.checkConsistent(t)
}

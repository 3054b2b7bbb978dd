package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Load test shape: 16 clients, each with its own user, keeping up to 6
// guests (96 in all) through create, start, stop, destroy and info.
const (
	loadClients         = 16
	loadGuestsPerClient = 6
)

// loadDuration is HEARTH_LOAD_DURATION (e.g. 3m for `./task load`), 30 s by default.
func loadDuration(t *testing.T) time.Duration {
	if v := os.Getenv("HEARTH_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("HEARTH_LOAD_DURATION=%s: %v", v, err)
		}
		return d
	}
	return 30 * time.Second
}

// loadStats collects latencies per operation and unexpected answers.
type loadStats struct {
	mu         sync.Mutex
	lat        map[string][]time.Duration
	fiveXX     []string
	unexpected []string
}

func (s *loadStats) record(op string, r reply, want int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[op] = append(s.lat[op], r.took)
	switch {
	case r.err != nil:
		s.unexpected = append(s.unexpected, fmt.Sprintf("%s: %v", op, r.err))
	case r.status >= 500:
		s.fiveXX = append(s.fiveXX, fmt.Sprintf("%s: %d %s %q", op, r.status, r.word, strings.TrimSpace(r.body)))
	case r.status != want:
		s.unexpected = append(s.unexpected, fmt.Sprintf("%s: %d %s %q (want %d)", op, r.status, r.word, strings.TrimSpace(r.body), want))
	}
}

// loadGuest is one client's server and its boot drive.
type loadGuest struct{ id, drive, status string }

// TestLoad runs 16 clients doing mixed create/start/stop/destroy/info
// against up to 96 guests for HEARTH_LOAD_DURATION, then checks for zero
// 5xx and zero leaks and writes the latencies to test-artifacts/load.md.
func TestLoad(t *testing.T) {
	dur := loadDuration(t)
	h := startHearth(t)
	lib := h.importLibrary("32M")
	clients := make([]*client, loadClients)
	free := make([][]string, loadClients) // each client's unused boot drives
	for i := range clients {
		clients[i] = h.addUser(fmt.Sprintf("load%d-%s", i, randomHex(2)), false)
		for range loadGuestsPerClient {
			d := clients[i].post("/drives/create", "name boot\nsize 32M").must(t, 200).props()["drive"]
			clients[i].post("/drives/"+d+"/image/"+lib, "").must(t, 200)
			free[i] = append(free[i], d)
		}
	}
	for i, c := range clients {
		for _, d := range free[i] {
			c.waitImaged(t, d)
		}
	}

	stats := &loadStats{lat: map[string][]time.Duration{}}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	peak := make([]int, loadClients)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			var guests []*loadGuest
			for n := 0; time.Now().Before(deadline); n++ {
				switch x := rng.IntN(100); {
				case len(free[i]) > 0 && (len(guests) == 0 || x < 15):
					d := free[i][0]
					r := c.post("/servers/create", guestWithNIC(fmt.Sprintf("l%d-%d", i, n), d))
					stats.record("create", r, 200)
					if r.status == 200 {
						free[i] = free[i][1:]
						guests = append(guests, &loadGuest{id: r.props()["server"], drive: d, status: "active"})
						peak[i] = max(peak[i], len(guests))
					}
				case x < 25:
					stats.record("list", c.get("/servers/list"), 200)
				case x < 30:
					stats.record("info-all", c.get("/servers/info"), 200)
				default:
					g := guests[rng.IntN(len(guests))]
					switch y := rng.IntN(100); {
					case y < 55:
						stats.record("info", c.get("/servers/"+g.id+"/info"), 200)
					case y < 85 && g.status == "active":
						r := c.post("/servers/"+g.id+"/stop", "")
						stats.record("stop", r, 204)
						if r.status == 204 {
							g.status = "stopped"
						}
					case y < 85:
						r := c.post("/servers/"+g.id+"/start", "")
						stats.record("start", r, 204)
						if r.status == 204 {
							g.status = "active"
						}
					default:
						r := c.post("/servers/"+g.id+"/destroy", "")
						stats.record("destroy", r, 204)
						if r.status == 204 {
							free[i] = append(free[i], g.drive)
							guests = slices.DeleteFunc(guests, func(o *loadGuest) bool { return o == g })
						}
					}
				}
			}
			for _, g := range guests {
				stats.record("destroy", c.post("/servers/"+g.id+"/destroy", ""), 204)
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, p := range peak {
		total += p
	}
	var all []time.Duration
	var table strings.Builder
	fmt.Fprintf(&table, "Load test: %d clients, up to %d guests (peak sum %d), %s on %s.\n\n", loadClients, loadClients*loadGuestsPerClient, total, dur, hostDescription())
	table.WriteString("| operation | requests | p50 | p99 | max |\n|---|---|---|---|---|\n")
	ops := keys(stats.lat)
	slices.Sort(ops)
	for _, op := range ops {
		l := stats.lat[op]
		all = append(all, l...)
		fmt.Fprintf(&table, "| %s | %d | %.1f ms | %.1f ms | %.1f ms |\n", op, len(l), ms(percentile(l, 50)), ms(percentile(l, 99)), ms(percentile(l, 100)))
	}
	fmt.Fprintf(&table, "| **all** | %d | %.1f ms | %.1f ms | %.1f ms |\n", len(all), ms(percentile(all, 50)), ms(percentile(all, 99)), ms(percentile(all, 100)))
	fmt.Fprintf(&table, "\n5xx answers: %d; other unexpected answers: %d; leaks after: see test log (none when it passed).\n", len(stats.fiveXX), len(stats.unexpected))
	t.Log("\n" + table.String())
	writeArtifact(t, "load.md", table.String())

	for _, e := range first(stats.fiveXX, 20) {
		t.Errorf("5xx: %s", e)
	}
	for _, e := range first(stats.unexpected, 20) {
		t.Errorf("unexpected: %s", e)
	}
	if s := h.checkConsistent(t); len(s.servers) != 0 {
		t.Errorf("%d servers left after every client destroyed its own", len(s.servers))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// hostDescription names the machine the figures come from.
func hostDescription() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d logical CPUs", cpu, runtime.NumCPU())
}

// writeArtifact replaces test-artifacts/NAME at the repository root.
func writeArtifact(t testing.TB, name, content string) {
	dir := "../../test-artifacts"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("test-artifacts: %v", err)
		return
	}
	if err := os.WriteFile(dir+"/"+name, []byte(content), 0o644); err != nil {
		t.Logf("test-artifacts/%s: %v", name, err)
	}
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
	var mu sync.Mutex
	counts := map[string]int{}
	var bad []string
	do := func(id, action string, rng *rand.Rand) {
		var r reply
		switch action {
		case "info":
			r = c.get("/servers/" + id + "/info")
		case "set":
			r = c.post("/servers/"+id+"/set", fmt.Sprintf("cpu %d", 500+rng.IntN(500)))
		default:
			r = c.post("/servers/"+id+"/"+action, "")
		}
		mu.Lock()
		defer mu.Unlock()
		counts[fmt.Sprintf("%s %d", action, r.status)]++
		if r.err != nil || r.status >= 500 || (r.status >= 400 && r.status != 409 && r.status != 404) {
			bad = append(bad, fmt.Sprintf("%s: %d %s %q %v", action, r.status, r.word, strings.TrimSpace(r.body), r.err))
		}
	}
	race := func(d time.Duration) {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range loadClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) {
					do(ids[rng.IntN(len(ids))], actions[rng.IntN(len(actions))], rng)
				}
			}()
		}
		wg.Wait()
	}
	race(10 * time.Second)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 500 * time.Millisecond)
			do(id, "destroy", nil)
		}()
	}
	race(3 * time.Second)
	wg.Wait()
	t.Logf("answers: %v", counts)
	// One line per kind of bad answer (UUIDs blanked), with its count.
	kinds := map[string]int{}
	uuid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	for _, b := range bad {
		kinds[uuid.ReplaceAllString(b, "UUID")]++
	}
	for k, n := range kinds {
		t.Errorf("%d× %s", n, k)
	}
	// Let shutdowns in their grace period end, then compare.
	time.Sleep(3 * time.Second)
	if s := h.checkConsistent(t); len(s.servers) != 0 {
		t.Errorf("servers left after destroying all: %d", len(s.servers))
	}
}

// TestDriveContention has 16 clients write, read, resize, image, clone and
// rename the same 3 drives at once for 8 s, then destroy them among the
// calls: only successes, 409 busy and 404; then rows and files agree.
func TestDriveContention(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("drace-"+randomHex(2), false)
	src := c.post("/drives/create", "name src\nsize 4M").must(t, 200).props()["drive"]
	c.do("POST", "/drives/"+src+"/write/0", strings.NewReader(strings.Repeat("s", 4<<20))).must(t, 204)
	var ids []string
	for i := range 3 {
		ids = append(ids, c.post("/drives/create", fmt.Sprintf("name d%d\nsize 8M", i)).must(t, 200).props()["drive"])
	}
	var mu sync.Mutex
	counts := map[string]int{}
	kinds := map[string]int{}
	uuid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	var clones []string
	do := func(id, action string, rng *rand.Rand) {
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
			if r.status == 200 {
				mu.Lock()
				clones = append(clones, r.props()["drive"])
				mu.Unlock()
			}
		case "rename":
			r = c.post("/drives/"+id+"/set", "name r")
		case "destroy":
			r = c.post("/drives/"+id+"/destroy", "")
		}
		mu.Lock()
		defer mu.Unlock()
		counts[fmt.Sprintf("%s %d", action, r.status)]++
		pastEnd := action == "read" && r.status == 400 && strings.Contains(r.body, "past the end") // resized meanwhile
		if r.err != nil || r.status >= 500 || (r.status >= 400 && r.status != 409 && r.status != 404 && !pastEnd) {
			body := strings.TrimSpace(r.body)
			if action == "read" && r.status == 200 {
				body = fmt.Sprintf("%d bytes", len(r.body))
			}
			msg := regexp.MustCompile(`\d+ bytes`).ReplaceAllString(fmt.Sprintf("%s: %d %s %.120q %v", action, r.status, r.word, body, r.err), "N bytes")
			kinds[uuid.ReplaceAllString(msg, "UUID")]++
		}
	}
	actions := []string{"write", "read", "resize", "image", "clone", "rename"}
	race := func(d time.Duration) {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range loadClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) {
					do(ids[rng.IntN(len(ids))], actions[rng.IntN(len(actions))], rng)
				}
			}()
		}
		wg.Wait()
	}
	race(8 * time.Second)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); do(id, "destroy", nil) }()
	}
	race(2 * time.Second)
	wg.Wait()
	t.Logf("answers: %v", counts)
	for k, n := range kinds {
		t.Errorf("%d× %s", n, k)
	}
	admin := h.client(h.admin)
	for _, p := range admin.infos(t, "/drives/info") {
		if p["imaging"] != "" {
			admin.waitImaged(t, p["drive"])
		}
	}
	s := h.checkConsistent(t)
	for _, id := range ids {
		if _, ok := s.drives[id]; ok && counts["destroy 204"] > 0 {
			// destroyed ones must be gone; others (409 while imaging) may stay
			if p := c.get("/drives/" + id + "/info"); p.status == 200 && p.props()["imaging"] == "" {
				t.Logf("drive %s survived its destroy (answered busy)", id)
			}
		}
	}
	t.Logf("%d clones made", len(clones))
}

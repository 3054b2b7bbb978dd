package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
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

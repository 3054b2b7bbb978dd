package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// inFlight is how many operations of one kind run when Hearth is killed.
const inFlight = 20

// guestWithNIC is guestConfig with a public NIC, so a kill can leak
// namespaces and veths too.
func guestWithNIC(name, drive string) string {
	return guestConfig(name, drive) + "nic:0:model virtio\nnic:0:dhcp auto\n"
}

// faultKind is one kind of operation SIGKILLed in flight: prepare makes
// what the operations need, op runs operation i, check asserts the
// outcome after the restart given which operations were acknowledged.
type faultKind struct {
	name    string
	prepare func(t *testing.T, h *hearth, c *client, lib string) []string
	op      func(c *client, i int, arg string) reply
	ok      int // the acknowledged status
	check   func(t *testing.T, h *hearth, c *client, lib string, args []string, acked []bool, s snapshot)
}

var writeData = func() [][]byte {
	d := make([][]byte, inFlight)
	for i := range d {
		d[i] = make([]byte, 8<<20)
		rand.Read(d[i])
	}
	return d
}

func faultKinds() []faultKind {
	var data [][]byte
	bootDrives := func(t *testing.T, c *client, lib string) []string {
		ids := make([]string, inFlight)
		for i := range ids {
			ids[i] = c.post("/drives/create", fmt.Sprintf("name boot%d\nsize 32M", i)).must(t, 200).props()["drive"]
			c.post("/drives/"+ids[i]+"/image/"+lib, "").must(t, 200)
		}
		for _, id := range ids {
			c.waitImaged(t, id)
		}
		return ids
	}
	stoppedServers := func(t *testing.T, c *client, lib string) []string {
		ids := bootDrives(t, c, lib)
		for i, d := range ids {
			ids[i] = c.post("/servers/create/stopped", guestWithNIC(fmt.Sprintf("g%d", i), d)).must(t, 200).props()["server"]
		}
		return ids
	}
	activeServers := func(t *testing.T, c *client, lib string) []string {
		ids := stoppedServers(t, c, lib)
		for _, id := range ids {
			c.post("/servers/"+id+"/start", "").must(t, 204)
		}
		for _, id := range ids {
			c.waitStatus(t, id, "active", time.Minute)
		}
		return ids
	}
	return []faultKind{
		{
			name:    "create",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string { return bootDrives(t, c, lib) },
			op: func(c *client, i int, drive string) reply {
				return c.post("/servers/create", guestWithNIC(fmt.Sprintf("g%d", i), drive))
			},
			ok: 200,
			check: func(t *testing.T, h *hearth, c *client, lib string, drives []string, acked []bool, s snapshot) {
				byDrive := map[string][]string{}
				for id, p := range s.servers {
					byDrive[p["ide:0:0"]] = append(byDrive[p["ide:0:0"]], id)
				}
				for i, d := range drives {
					switch n := len(byDrive[d]); {
					case n > 1:
						t.Errorf("create %d made %d servers", i, n)
					case acked[i] && n == 0:
						t.Errorf("acknowledged create %d lost", i)
					case acked[i] && s.servers[byDrive[d][0]]["status"] != "active":
						t.Errorf("acknowledged create %d is %s after the restart", i, s.servers[byDrive[d][0]]["status"])
					}
				}
			},
		},
		{
			name:    "start",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string { return stoppedServers(t, c, lib) },
			op:      func(c *client, i int, id string) reply { return c.post("/servers/"+id+"/start", "") },
			ok:      204,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				for i, id := range ids {
					if p, ok := s.servers[id]; !ok {
						t.Errorf("server %d lost", i)
					} else if acked[i] && p["status"] != "active" {
						t.Errorf("acknowledged start %d: server is %s", i, p["status"])
					}
				}
			},
		},
		{
			name: "image",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string {
				ids := make([]string, inFlight)
				for i := range ids {
					ids[i] = c.post("/drives/create", fmt.Sprintf("name target%d\nsize 32M", i)).must(t, 200).props()["drive"]
				}
				return ids
			},
			op: func(c *client, i int, id string) reply { return c.post("/drives/"+id+"/image/"+c.libID, "") },
			ok: 200,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				want, err := os.ReadFile(filepath.Join(h.data, "drives", lib+".img"))
				if err != nil {
					t.Fatal(err)
				}
				zero := make([]byte, len(want))
				for i, id := range ids {
					got, err := os.ReadFile(filepath.Join(h.data, "drives", id+".img"))
					switch {
					case err != nil:
						t.Errorf("image target %d: %v", i, err)
					case bytes.Equal(got, want):
					case acked[i]:
						t.Errorf("acknowledged imaging %d did not complete after the restart", i)
					case !bytes.Equal(got, zero):
						t.Errorf("unacknowledged imaging %d left a partial copy", i)
					}
				}
			},
		},
		{
			name: "write",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string {
				data = writeData()
				ids := make([]string, inFlight)
				for i := range ids {
					ids[i] = c.post("/drives/create", fmt.Sprintf("name w%d\nsize 8M", i)).must(t, 200).props()["drive"]
				}
				return ids
			},
			op: func(c *client, i int, id string) reply {
				return c.do("POST", "/drives/"+id+"/write/0", bytes.NewReader(data[i]), "Content-Type", "application/octet-stream")
			},
			ok: 204,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				for i, id := range ids {
					got, err := os.ReadFile(filepath.Join(h.data, "drives", id+".img"))
					if err != nil {
						t.Errorf("drive %d: %v", i, err)
					} else if acked[i] && !bytes.Equal(got, data[i]) {
						t.Errorf("acknowledged write %d lost", i)
					}
				}
			},
		},
		{
			name:    "stop",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string { return activeServers(t, c, lib) },
			op:      func(c *client, i int, id string) reply { return c.post("/servers/"+id+"/stop", "") },
			ok:      204,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				for i, id := range ids {
					if p, ok := s.servers[id]; !ok {
						t.Errorf("persistent server %d lost", i)
					} else if acked[i] && p["status"] != "stopped" {
						t.Errorf("acknowledged stop %d: server is %s after the restart", i, p["status"])
					}
				}
			},
		},
		{
			name:    "reset",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string { return activeServers(t, c, lib) },
			op:      func(c *client, i int, id string) reply { return c.post("/servers/"+id+"/reset", "") },
			ok:      204,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				// Reset keeps a server running, cut short or not.
				for i, id := range ids {
					if p := s.servers[id]; p["status"] != "active" {
						t.Errorf("server %d is %q after a reset (acknowledged: %v) and a restart", i, p["status"], acked[i])
					}
				}
			},
		},
		{
			name:    "destroy",
			prepare: func(t *testing.T, h *hearth, c *client, lib string) []string { return activeServers(t, c, lib) },
			op:      func(c *client, i int, id string) reply { return c.post("/servers/"+id+"/destroy", "") },
			ok:      204,
			check: func(t *testing.T, h *hearth, c *client, lib string, ids []string, acked []bool, s snapshot) {
				for i, id := range ids {
					if _, ok := s.servers[id]; ok && acked[i] {
						t.Errorf("acknowledged destroy %d: the server is back (%s)", i, s.servers[id]["status"])
					}
				}
			},
		},
	}
}

// TestKillDuring SIGKILLs `hearth serve` while 20 operations of one kind
// are in flight, starts it again on the same data directory, and checks
// that no acknowledged operation is lost, nothing is duplicated, and rows,
// files, containerd tasks, loop devices, mounts, namespaces and veths agree.
func TestKillDuring(t *testing.T) { testStopDuring(t, true) }

// TestTermDuring is TestKillDuring with SIGTERM: Hearth shuts down
// gracefully with the operations in flight.
func TestTermDuring(t *testing.T) { testStopDuring(t, false) }

func testStopDuring(t *testing.T, kill bool) {
	for _, kind := range faultKinds() {
		t.Run(kind.name, func(t *testing.T) {
			h := startHearth(t)
			lib := h.importLibrary("32M")
			c := h.addUser("fault-"+randomHex(2), false)
			c.libID = lib
			args := kind.prepare(t, h, c, lib)

			replies := make([]reply, inFlight)
			done := make(chan int, inFlight)
			var wg sync.WaitGroup
			for i := range inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					replies[i] = kind.op(c, i, args[i])
					done <- i
				}()
			}
			// Kill once the first operation is through (or after a while),
			// so most of them are somewhere inside Hearth.
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			if kill {
				h.kill()
			} else {
				h.stop()
			}
			wg.Wait()
			acked := make([]bool, inFlight)
			n := 0
			for i, r := range replies {
				if r.err == nil && r.status == kind.ok {
					acked[i] = true
					n++
				} else if r.err == nil && r.status >= 500 && kill {
					t.Errorf("operation %d answered %d %q before the kill", i, r.status, r.body)
				} else if r.err == nil && r.status >= 500 {
					t.Logf("operation %d answered %d %q during the shutdown", i, r.status, r.body)
				}
			}
			t.Logf("%s: %d of %d acknowledged before the signal", kind.name, n, inFlight)

			h.start()
			h.waitNoImaging(t)
			s := h.checkConsistent(t)
			for id, p := range s.servers {
				if p["status"] == "dead" { // a start cut short by Hearth's death is not the guest's failure
					t.Errorf("server %s is dead after the restart: %s", id, p["error"])
				}
			}
			kind.check(t, h, c, lib, args, acked, s)
			for id, d := range s.drives {
				for _, claim := range strings.Fields(d["claimed"]) {
					// USER:guest:SERVER:DEVICE
					if f := strings.Split(claim, ":"); len(f) < 3 || s.servers[f[2]]["status"] != "active" {
						t.Errorf("drive %s claimed (%s) by a server that is not running", id, claim)
					}
				}
			}
		})
	}
}

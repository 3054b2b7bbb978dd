package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/vmm/network"
	"hearth/vmm/vmmtest"
)

// instanceGuest is one running server of one Hearth in TestTwoInstances.
type instanceGuest struct {
	h   *hearth
	c   *client
	id  string
	pid string // its task's (init's) host pid

	vlanBridge string // of its nic:1
}

// TestTwoInstances: two Hearths on one host (their own DATA, subnet and
// instance; one with an explicit --bridge, one with the bridge its
// instance derives), each with a busybox guest on its public bridge and a
// VLAN. Each is SIGKILLed and restarted in turn: the other's guest keeps
// running (same task, same pid, still active) and the restarted one
// re-adopts its own. Their containerd namespaces, runc state (under each
// DATA), bridges and host ids are their own; a third Hearth may not claim
// a running one's instance.
func TestTwoInstances(t *testing.T) {
	var vlanBridges []string
	t.Cleanup(func() { // after the Hearths' own cleanups, which destroyed every server
		for _, br := range vlanBridges {
			if exec.Command("ip", "link", "show", br).Run() == nil {
				t.Errorf("VLAN bridge %s outlived its last guest", br)
				exec.Command("ip", "link", "del", br).Run()
			}
		}
	})
	a := startHearth(t)
	b := startHearth(t, withDerivedNames())
	if a.namespace == b.namespace || a.bridge == b.bridge {
		t.Fatalf("two instances share names: namespaces %s, %s; bridges %s, %s", a.namespace, b.namespace, a.bridge, b.bridge)
	}
	if !strings.HasPrefix(b.bridge, "hearth-") || len(b.bridge) > 15 {
		t.Errorf("derived public bridge %q: want hearth- and the instance, at most 15 characters", b.bridge)
	}
	guests := []*instanceGuest{startInstanceGuest(t, a), startInstanceGuest(t, b)}
	for _, g := range guests {
		vlanBridges = append(vlanBridges, g.vlanBridge)
	}
	if vlanBridges[0] == vlanBridges[1] {
		t.Errorf("two instances' VLANs share the bridge %s", vlanBridges[0])
	}

	for _, g := range guests {
		state := filepath.Join(g.h.data, "run", "runc", g.h.namespace, g.id, "state.json")
		if _, err := os.Stat(state); err != nil {
			t.Errorf("runc state of %s's guest is not under its DATA: %v", g.h.namespace, err)
		}
		if _, err := os.Stat(filepath.Join("/run/containerd/runc", g.h.namespace, g.id)); !os.IsNotExist(err) {
			t.Errorf("runc state of %s's guest in the host-wide /run/containerd/runc: %v", g.h.namespace, err)
		}
		if len(g.h.veths()) == 0 {
			t.Errorf("no port on %s's public bridge %s", g.h.namespace, g.h.bridge)
		}
	}
	pidA, _ := strconv.Atoi(guests[0].pid)
	pidB, _ := strconv.Atoi(guests[1].pid)
	_, _, first, size := hostIDs(t, pidA)
	_, _, other, _ := hostIDs(t, pidB)
	if other >= first && other < first+size {
		t.Errorf("the two instances' guests share host ids: %d and %d (%d ids each)", first, other, size)
	}

	// A third Hearth may not run as an instance already running, and is
	// refused before it touches the host.
	dup := "hearthd" + randomHex(4)
	out, err := exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "--data", vmmtest.DataDir(t),
		"--instance", strings.TrimPrefix(a.namespace, "hearth-"), "--subnet", "10.251.0.0/24", "--bridge", dup,
		"--containerd", "/nonexistent.sock").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another Hearth on this host runs as instance") {
		t.Errorf("a second Hearth as instance %s: %v\n%s", a.namespace, err, out)
	}
	if exec.Command("ip", "link", "show", dup).Run() == nil {
		t.Errorf("the refused Hearth made its bridge %s", dup)
		exec.Command("ip", "link", "del", dup).Run()
	}

	for i, restarted := range guests {
		kept := guests[1-i]
		restarted.h.kill()
		restarted.h.start()
		kept.mustRunAsBefore(t, "after the other Hearth was SIGKILLed and restarted")
		restarted.mustRunAsBefore(t, "re-adopted after its Hearth was SIGKILLed and restarted")
	}
}

func startInstanceGuest(t *testing.T, h *hearth) *instanceGuest {
	t.Helper()
	lib := h.importLibrary("32M")
	c := h.addUser("inst-"+randomHex(2), false)
	vlan := c.post("/resources/vlan/create", "").must(t, 200).props()["resource"]
	id := c.post("/servers/create", guestWithNIC("inst", c.driveFrom(t, lib, "32M"))+"nic:1:model virtio\nnic:1:vlan "+vlan+"\n").must(t, 200).props()["server"]
	c.waitStatus(t, id, "active", time.Minute)
	c.waitConsole(t, id, " # ", time.Minute)
	g := &instanceGuest{h: h, c: c, id: id, vlanBridge: network.NamesOf(h.instance).VLANBridge(vlan)}
	if exec.Command("ip", "link", "show", g.vlanBridge).Run() != nil {
		t.Errorf("%s: no VLAN bridge %s", h.namespace, g.vlanBridge)
	}
	task, ok := h.taskTable()[id]
	if !ok || task.status != "RUNNING" {
		t.Fatalf("%s: task of %s: %+v", h.namespace, id, task)
	}
	g.pid = task.pid
	return g
}

// mustRunAsBefore checks that the guest runs on with the same init.
func (g *instanceGuest) mustRunAsBefore(t *testing.T, when string) {
	t.Helper()
	if p := g.c.waitStatus(t, g.id, "active", time.Minute); p["status"] != "active" {
		t.Errorf("%s: server %s %s: %v", g.h.namespace, g.id, when, p)
	}
	task := g.h.taskTable()[g.id]
	if task.pid != g.pid || task.status != "RUNNING" {
		t.Errorf("%s: guest %s %s: task %+v, want pid %s RUNNING", g.h.namespace, g.id, when, task, g.pid)
	}
	if _, err := os.Stat("/proc/" + g.pid); err != nil {
		t.Errorf("%s: guest init %s %s: %v", g.h.namespace, g.pid, when, err)
	}
}

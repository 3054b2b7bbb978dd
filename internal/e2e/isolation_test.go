package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reachInit makes a guest report, every round, whether it reaches the host
// by ping (PING OK|NO), the API on the gateway (API OPEN|CLOSED: an HTTP
// answer) and TCP port 2222 of peer (FW OPEN|CLOSED), each round numbered.
func reachInit(gateway, apiPort, peer string) string {
	return fmt.Sprintf(`::once:/bin/sh -c 'i=0; while :; do i=$((i+1)); `+
		`ping -c 1 -W 1 %[1]s >/dev/null 2>&1 && echo "round $i PING OK" || echo "round $i PING NO"; `+
		`printf "GET / HTTP/1.0\r\n\r\n" | timeout 3 nc -w 2 %[1]s %[2]s 2>/dev/null | grep -q HTTP/ && echo "round $i API OPEN" || echo "round $i API CLOSED"; `+
		`timeout 3 nc -w 2 %[3]s 2222 </dev/null >/dev/null 2>&1 && echo "round $i FW OPEN" || echo "round $i FW CLOSED"; `+
		`sleep 1; done'`, gateway, apiPort, peer)
}

var probeLine = regexp.MustCompile(`round (\d+) (PING|API|FW) (\S+)`)

// waitProbe waits for a round after the round `after` in which what (PING,
// API or FW) answered want, and returns that round; it fails the test
// when a later round answers otherwise or none comes in time.
func (c *client) waitProbe(t *testing.T, id, what, want string, after int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		body := c.get("/servers/"+id+"/console").must(t, 200).body
		for _, m := range probeLine.FindAllStringSubmatch(body, -1) {
			var round int
			fmt.Sscan(m[1], &round)
			if round <= after || m[2] != what {
				continue
			}
			if m[3] == want {
				return round
			}
			last = m[0]
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("guest %s: no %s %s after round %d within 60 s (last: %q)", id, what, want, after, last)
	return 0
}

// TestGuestIsolation runs a busybox guest against a Hearth whose API
// listens on every address, as an operator's would: the guest pings the
// host but cannot open the API port; the firewall keys of a second guest
// block and, once changed live, allow its port; a MAC another user's
// server has is 409 busy.
func TestGuestIsolation(t *testing.T) {
	h := startHearth(t, withArgs("--listen", "0.0.0.0:0"))
	u, err := url.Parse(h.url())
	if err != nil {
		t.Fatal(err)
	}
	_, apiPort, _ := net.SplitHostPort(u.Host)
	gateway := netip.MustParsePrefix(h.subnet).Addr().Next().String()
	alice, bob := h.addUser("alice-"+randomHex(2), false), h.addUser("bob-"+randomHex(2), false)

	// Bob's server listens on 2222 behind policy reject, accepting ssh only.
	bobLib := h.importImage(guestImage(t, "::once:/bin/busybox nc -ll -p 2222 -e /bin/true"), "32M")
	server := guestWithNIC("listener", bob.driveFrom(t, bobLib, "32M")) + "nic:0:firewall:policy reject\nnic:0:firewall:accept tcp/22\n"
	listener := bob.post("/servers/create", server).must(t, 200).props()
	peer := listener["nic:0:dhcp:ip"]
	if peer == "" {
		t.Fatalf("listener has no address: %v", listener)
	}

	aliceLib := h.importImage(guestImage(t, reachInit(gateway, apiPort, peer)), "32M")
	probe := alice.post("/servers/create", guestWithNIC("probe", alice.driveFrom(t, aliceLib, "32M"))).must(t, 200).props()["server"]
	round := alice.waitProbe(t, probe, "PING", "OK", 0) // the network works...
	alice.waitProbe(t, probe, "API", "CLOSED", round-1) // ...but not to the API
	round = alice.waitProbe(t, probe, "FW", "CLOSED", round-1)
	if body := alice.get("/servers/" + probe + "/console").body; strings.Contains(body, "API OPEN") {
		t.Errorf("the guest opened the API port:\n%s", body)
	}

	bob.post("/servers/"+listener["server"]+"/set", "nic:0:firewall:accept tcp/22 tcp/2222").must(t, 200)
	alice.waitProbe(t, probe, "FW", "OPEN", round)

	// Alice may not take the listener's MAC, on either NIC.
	mac := bob.get("/servers/"+listener["server"]+"/info").must(t, 200).props()["nic:0:mac"]
	r := alice.post("/servers/create/stopped", "name thief\ncpu 500\nmem 64\nnic:0:model virtio\nnic:0:mac "+strings.ToUpper(mac))
	if r.status != 409 || !strings.Contains(r.body, "nic:0:mac") {
		t.Errorf("create with another user's MAC: %d %s, want 409 naming nic:0:mac", r.status, r.body)
	}
	stopped := alice.post("/servers/create/stopped", "name thief\ncpu 500\nmem 64\nnic:1:model virtio").must(t, 200).props()["server"]
	r = alice.post("/servers/"+stopped+"/set", "nic:1:mac "+mac)
	if r.status != 409 || !strings.Contains(r.body, "already used") {
		t.Errorf("set another user's MAC: %d %s, want 409 already used", r.status, r.body)
	}
}

// TestGuestAPIFlag: --guest-api true opens the API port to guests, and
// nothing else of the host.
func TestGuestAPIFlag(t *testing.T) {
	free, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	_, apiPort, _ := net.SplitHostPort(free.Addr().String())
	free.Close()
	h := startHearth(t, withArgs("--listen", "0.0.0.0:"+apiPort, "--guest-api", "true"))
	gateway := netip.MustParsePrefix(h.subnet).Addr().Next().String()
	c := h.addUser("carol-"+randomHex(2), false)
	// Port 2222 of the host itself: something listens there, guests may not reach it.
	l, err := net.Listen("tcp4", "0.0.0.0:2222")
	if err != nil {
		t.Skipf("port 2222 of the host is taken: %v", err)
	}
	defer l.Close()
	lib := h.importImage(guestImage(t, reachInit(gateway, apiPort, gateway)), "32M")
	probe := c.post("/servers/create", guestWithNIC("probe", c.driveFrom(t, lib, "32M"))).must(t, 200).props()["server"]
	round := c.waitProbe(t, probe, "API", "OPEN", 0)
	c.waitProbe(t, probe, "FW", "CLOSED", round-1)
}

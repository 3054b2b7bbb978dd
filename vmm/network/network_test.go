package network

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"hearth/internal/logtest"
)

// testNet is one test's Switch with its own bridge and subnet.
type testNet struct {
	*Switch
	t        testing.TB
	instance string // a Hearth instance of its own, as every test is
	subnet   netip.Prefix
	ids      []string
	vlans    []string
	guests   []*exec.Cmd // stand-ins for guests' inits, each in a network namespace of its own
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths, bridges and iptables rules")
	}
}

func newTestNet(t testing.TB, opts ...Option) *testNet {
	t.Helper()
	needRoot(t)
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), 0}), 24)
	gw := netip.PrefixFrom(subnet.Addr().Next(), 24)
	tn := &testNet{t: t, subnet: subnet, instance: fmt.Sprintf("test%04x", rand.IntN(1<<16))}
	opts = append([]Option{WithInstance(tn.instance), WithBridge(fmt.Sprintf("hearthp%08x", rand.Uint32())), WithGateway(gw), WithLogger(logtest.Logger(t)),
		WithFilterTable(fmt.Sprintf("hearthtest%08x", rand.Uint32()))}, opts...)
	m, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	tn.Switch = m
	t.Cleanup(func() { // after a failed test too; a clean pass has done all this already
		for _, g := range tn.guests {
			g.Process.Kill()
			g.Wait()
		}
		for _, id := range tn.ids {
			tn.Switch.Detach(context.Background(), id)
		}
		tn.Switch.Close()
		tn.assertClean()
	})
	return tn
}

// newGuest starts a process in a new network namespace, as runc creates a
// guest's init, and returns its pid and the namespace's path.
func (tn *testNet) newGuest() (pid uint32, path string) {
	tn.t.Helper()
	return tn.startGuest(&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
}

// startGuest starts a guest stand-in with attr (new namespaces, id maps).
func (tn *testNet) startGuest(attr *syscall.SysProcAttr) (pid uint32, path string) {
	tn.t.Helper()
	cmd := exec.Command("/bin/busybox", "sleep", "3600")
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		tn.t.Fatalf("guest stand-in: %v", err)
	}
	tn.guests = append(tn.guests, cmd)
	return uint32(cmd.Process.Pid), fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
}

// stopGuest ends a stand-in started by newGuest, as a guest's init ends.
func (tn *testNet) stopGuest(pid uint32) {
	tn.t.Helper()
	for _, g := range tn.guests {
		if uint32(g.Process.Pid) == pid {
			g.Process.Kill()
			g.Wait()
		}
	}
}

// waitNamespaceGone waits until the kernel has freed the namespace of
// guest id, whose last process ended: the host end of its nic:0 goes then.
func (tn *testNet) waitNamespaceGone(id string) {
	tn.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := netlink.LinkByName(tn.names.hostVeth(id, 0)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			tn.t.Fatal("the host end of nic:0 outlived the guest's namespace")
		}
	}
}

// addr is host n of the test's subnet with its prefix length.
func (tn *testNet) addr(n int) netip.Prefix {
	a := tn.subnet.Addr().As4()
	a[3] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(a), tn.subnet.Bits())
}

func (tn *testNet) gateway() netip.Addr { return tn.gateway0().Addr() }

func (tn *testNet) gateway0() netip.Prefix { return tn.Switch.gateway }

func (tn *testNet) newID() string {
	id := uuid.NewString()
	tn.ids = append(tn.ids, id)
	return id
}

func (tn *testNet) newVLAN() string {
	br := tn.names.VLANBridge(uuid.NewString())
	tn.vlans = append(tn.vlans, br)
	return br
}

func (tn *testNet) public(host int) NIC {
	return NIC{Index: 0, MAC: RandomMAC(), Address: tn.addr(host), Gateway: tn.gateway(), Bridge: tn.Bridge()}
}

// attach starts a guest stand-in and attaches nics to it; it returns the
// path of the guest's namespace.
func (tn *testNet) attach(id string, nics ...NIC) string {
	tn.t.Helper()
	pid, path := tn.newGuest()
	if err := tn.Attach(context.Background(), id, pid, nics); err != nil {
		tn.t.Fatal(err)
	}
	return path
}

func (tn *testNet) detach(id string) {
	tn.t.Helper()
	if err := tn.Detach(context.Background(), id); err != nil {
		tn.t.Fatal(err)
	}
}

// restart replaces the Switch with a new one of the same instance, bridge
// and gateway, as a restarted Hearth makes.
func (tn *testNet) restart() {
	tn.t.Helper()
	m, err := New(WithInstance(tn.instance), WithBridge(tn.Bridge()), WithGateway(tn.gateway0()), WithLogger(logtest.Logger(tn.t)), WithFilterTable(tn.filter.name))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.Switch = m
}

func (tn *testNet) close() {
	tn.t.Helper()
	if err := tn.Close(); err != nil {
		tn.t.Fatal(err)
	}
}

// assertClean fails the test when anything of it is left on the host.
func (tn *testNet) assertClean() {
	t := tn.t
	t.Helper()
	names := append([]string{tn.Bridge()}, tn.vlans...)
	links, err := listLinks()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		for _, id := range tn.ids {
			if strings.HasPrefix(name, tn.names.vethStem(id)) {
				t.Errorf("veth %s of guest %s left behind", name, id)
			}
		}
		for _, n := range names {
			if name == n {
				t.Errorf("bridge %s left behind", name)
			}
		}
	}
	if hasTable(t, tn.filter.name) {
		t.Errorf("nftables tables %s left behind", tn.filter.name)
	}
	rules, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		for _, n := range names {
			if strings.Contains(line, n) {
				t.Errorf("iptables rule left behind: %s", line)
			}
		}
	}
}

// inNetns runs a command in the network namespace at path.
func inNetns(path string, args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=" + path}, args...)...).CombinedOutput()
	return string(out), err
}

// ping reports whether the guest at path gets an answer from addr.
func ping(t *testing.T, path string, addr netip.Addr, want bool) {
	t.Helper()
	deadline := "5" // seconds to wait for an answer that should come
	if !want {
		deadline = "2"
	}
	out, err := inNetns(path, "/bin/busybox", "ping", "-c", "1", "-W", deadline, "-w", deadline, addr.String())
	if got := err == nil; got != want {
		t.Errorf("ping %s from %s: answered %v, want %v\n%s", addr, path, got, want, out)
	}
}

// inNamespace runs fn on a thread in the network namespace at path ("" =
// the host's), so that the sockets fn opens live there.
func inNamespace(path string, fn func() error) error {
	if path == "" {
		return fn() // every thread but runIn's is in the host's
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return runIn(ns, fn)
}

// udpArrives reports whether datagrams sent from the namespace at from to
// addr arrive at a socket on addr in the namespace at to ("" = the host).
// One-way traffic, so it also shows what a reply could never prove.
func udpArrives(t *testing.T, from, to string, addr netip.Addr) bool {
	t.Helper()
	var listener *net.UDPConn
	err := inNamespace(to, func() (err error) {
		listener, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %q: %v", addr, to, err)
	}
	defer listener.Close()
	sent := make(chan error, 1)
	go func() {
		sent <- inNamespace(from, func() error {
			conn, err := net.DialUDP("udp4", nil, listener.LocalAddr().(*net.UDPAddr))
			if err != nil {
				return err
			}
			defer conn.Close()
			for range 5 {
				if _, err := conn.Write([]byte("hello")); err != nil {
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
			return nil
		})
	}()
	listener.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, readErr := listener.ReadFromUDP(make([]byte, 64))
	if err := <-sent; err != nil {
		t.Fatalf("send from %s to %s: %v", from, addr, err)
	}
	return readErr == nil
}

func TestPublicBridgeGuestReachesGatewayAndCountsTraffic(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	id := tn.newID()
	nic := tn.public(10)
	path := tn.attach(id, nic)

	out, err := inNetns(path, "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, nic.Address.String()) {
		t.Errorf("eth0 in the guest: want %s, got %v\n%s", nic.Address, err, out)
	}
	out, err = inNetns(path, "ip", "link", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, nic.MAC) || !strings.Contains(out, "UP") {
		t.Errorf("eth0 in the guest: want up with MAC %s, got %v\n%s", nic.MAC, err, out)
	}
	out, err = inNetns(path, "ip", "route", "show", "default")
	if err != nil || !strings.Contains(out, "via "+tn.gateway().String()+" dev eth0") {
		t.Errorf("default route in the guest: want via %s, got %v\n%s", tn.gateway(), err, out)
	}
	ping(t, path, netip.MustParseAddr("127.0.0.1"), true) // lo is up

	before, err := tn.Counters(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err = inNetns(path, "/bin/busybox", "ping", "-c", "3", "-i", "0.2", "-w", "5", tn.gateway().String())
	if err != nil {
		t.Fatalf("ping gateway: %v\n%s", err, out)
	}
	after, err := tn.Counters(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 3 echo requests of 84 bytes out of the guest, 3 replies in; ARP may add to both.
	if after.TxPackets-before.TxPackets < 3 || after.TxBytes-before.TxBytes < 3*98 {
		t.Errorf("guest tx moved from %+v to %+v, want at least 3 packets, 294 bytes", before, after)
	}
	if after.RxPackets-before.RxPackets < 3 || after.RxBytes-before.RxBytes < 3*98 {
		t.Errorf("guest rx moved from %+v to %+v, want at least 3 packets, 294 bytes", before, after)
	}
	if _, err := tn.Counters(id, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("counters of a missing NIC: %v, want ErrNotFound", err)
	}

	tn.detach(id)
	if _, err := tn.Counters(id, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("counters after detach: %v, want ErrNotFound", err)
	}
	tn.close()
	tn.assertClean()
}

func TestVLANGuestsReachEachOtherAndNoOneElse(t *testing.T) {
	t.Parallel()
	// NAT on turns ip_forward on: isolation must hold even where the host routes.
	tn := newTestNet(t, WithNAT(true))
	red, blue := tn.newVLAN(), tn.newVLAN()
	// All VLAN addresses share one subnet: only the bridges keep them apart.
	vlanAddr := func(n int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 77, byte(n)}), 24) }
	red1, red2, blue1, spy, pub := tn.newID(), tn.newID(), tn.newID(), tn.newID(), tn.newID()
	pRed1 := tn.attach(red1, tn.public(11), NIC{Index: 1, MAC: RandomMAC(), Address: vlanAddr(1), Bridge: red})
	pRed2 := tn.attach(red2, NIC{Index: 1, MAC: RandomMAC(), Address: vlanAddr(2), Bridge: red})
	pBlue1 := tn.attach(blue1, NIC{Index: 1, MAC: RandomMAC(), Address: vlanAddr(3), Bridge: blue})
	pPub := tn.attach(pub, tn.public(12))
	// A VLAN guest that tries to use the host as its router.
	pSpy := tn.attach(spy, NIC{Index: 1, MAC: RandomMAC(), Address: vlanAddr(50), Gateway: vlanAddr(254).Addr(), Bridge: blue})
	blueBridge, err := netlink.LinkByName(blue)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inNetns(pSpy, "ip", "neigh", "replace", vlanAddr(254).Addr().String(), "lladdr", blueBridge.Attrs().HardwareAddr.String(), "dev", "eth1"); err != nil {
		t.Fatalf("static neighbour for the spy's router: %v\n%s", err, out)
	}

	ping(t, pRed1, vlanAddr(2).Addr(), true)
	ping(t, pRed2, vlanAddr(1).Addr(), true)
	ping(t, pRed1, vlanAddr(3).Addr(), false)
	ping(t, pBlue1, vlanAddr(1).Addr(), false)
	ping(t, pRed1, tn.gateway(), true) // over its public NIC
	if !udpArrives(t, pPub, pRed1, tn.addr(11).Addr()) {
		t.Error("public guests' UDP did not reach each other")
	}
	// The host is off limits from the public bridge too (but for DHCP and ICMP).
	if udpArrives(t, pPub, "", tn.gateway()) {
		t.Error("a public guest's UDP reached the host")
	}
	if udpArrives(t, pSpy, "", tn.gateway()) {
		t.Error("a VLAN guest's UDP reached the host")
	}
	if udpArrives(t, pSpy, pRed1, tn.addr(11).Addr()) {
		t.Error("the host routed a VLAN guest's UDP to a public guest")
	}

	for _, vlan := range []string{red, blue} {
		if l, err := netlink.LinkByName(vlan); err != nil {
			t.Errorf("VLAN bridge %s: %v", vlan, err)
		} else if addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL); len(addrs) != 0 {
			t.Errorf("VLAN bridge %s has addresses %v, want none", vlan, addrs)
		}
	}
	// The red bridge stays while red2 still uses it, and goes with its last port.
	tn.detach(red1)
	if _, err := netlink.LinkByName(red); err != nil {
		t.Errorf("VLAN bridge %s gone while a guest uses it: %v", red, err)
	}
	tn.detach(red2)
	if _, err := netlink.LinkByName(red); err == nil {
		t.Errorf("VLAN bridge %s kept after its last guest went", red)
	}
	for _, id := range []string{blue1, spy, pub} {
		tn.detach(id)
	}
	tn.close()
	tn.assertClean()
}

func TestAttachAgainAndAfterRestart(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	vlan := tn.newVLAN()
	id := tn.newID()
	nics := []NIC{tn.public(20), {Index: 1, MAC: RandomMAC(), Address: tn.addr(21), Bridge: vlan, Hostname: "guest20"}}
	nics[0].Hostname = "guest20"
	pid, path := tn.newGuest()
	for range 2 { // the second replaces what the first made
		if err := tn.Attach(context.Background(), id, pid, nics); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := inNetns(path, "ip", "-o", "link", "show"); err != nil || strings.Count(out, "eth0") != 1 || strings.Count(out, "eth1") != 1 {
		t.Errorf("links in the guest after a second Attach: %v\n%s", err, out)
	}

	// Hearth restarts: Close keeps what a running guest uses, a new Switch
	// answers DHCP for the guest once its backend has it adopted.
	tn.close()
	if _, err := netlink.LinkByName(tn.Bridge()); err != nil {
		t.Fatalf("Close removed the public bridge of a running guest: %v", err)
	}
	if !hasTable(t, tn.filter.name) {
		t.Error("Close removed the filter rules of a running guest")
	}
	tn.restart()
	br, err := netlink.LinkByName(tn.Bridge())
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := netlink.AddrList(br, netlink.FAMILY_V4); err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != tn.gateway0().String() {
		t.Errorf("public bridge addresses after restart: %v %v, want only %s", addrs, err, tn.gateway0())
	}
	if _, err := tn.Counters(id, 1); err != nil {
		t.Errorf("counters after restart: %v", err)
	}
	if resp := tn.dhcp.reply(discover(t, nics[0].MAC)); resp != nil {
		t.Errorf("DHCP answered a guest nobody adopted: %v", resp)
	}
	// Whatever became of the rules meanwhile (here: the whole table gone), Adopt makes them again.
	if out, err := exec.Command("nft", "delete", "table", "bridge", tn.filter.name).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v %s", err, out)
	}
	if err := tn.Adopt(id, nics); err != nil {
		t.Fatal(err)
	}
	for _, index := range []int{0, 1} {
		out, err := exec.Command("nft", "list", "chain", "bridge", tn.filter.name, chainPorts).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tn.names.vethOwner(id, index)) || !strings.Contains(string(out), "jump "+tn.names.hostVeth(id, index)) {
			t.Errorf("port rules of nic:%d after Adopt: %v\n%s", index, err, out)
		}
	}
	offer := tn.dhcp.reply(discover(t, nics[0].MAC))
	if offer == nil || offer.YourIPAddr.String() != nics[0].Address.Addr().String() ||
		fmt.Sprint(offer.Router()) != fmt.Sprintf("[%s]", tn.gateway()) || offer.HostName() != "guest20" {
		t.Errorf("DHCP offer after Adopt: %v, want %s via %s named guest20", offer, nics[0].Address, tn.gateway())
	}
	if resp := tn.dhcp.reply(discover(t, nics[1].MAC)); resp != nil {
		t.Errorf("DHCP answered the VLAN NIC after restart: %v", resp)
	}
	tn.detach(id)
	tn.detach(id)
	if resp := tn.dhcp.reply(discover(t, nics[0].MAC)); resp != nil {
		t.Errorf("DHCP answered a detached guest: %v", resp)
	}
	tn.close()
	tn.assertClean()
}

// TestGuestEndTakesItsNICsAlong: the host ends go with the guest's namespace;
// Detach then has only the VLAN bridge and the DHCP lease to remove, for a
// guest adopted after a restart of Hearth too.
func TestGuestEndTakesItsNICsAlong(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%t", restart), func(t *testing.T) {
			tn := newTestNet(t)
			id := tn.newID()
			nics := []NIC{tn.public(25), {Index: 1, MAC: RandomMAC(), Bridge: tn.newVLAN()}}
			pid, _ := tn.newGuest()
			if err := tn.Attach(context.Background(), id, pid, nics); err != nil {
				t.Fatal(err)
			}
			if restart {
				tn.close() // Hearth stops; the guest runs on
				tn.restart()
				if err := tn.Adopt(id, nics); err != nil {
					t.Fatal(err)
				}
			}
			tn.stopGuest(pid)
			tn.waitNamespaceGone(id)
			tn.detach(id)
			if _, err := netlink.LinkByName(nics[1].Bridge); err == nil {
				t.Error("the VLAN bridge outlived the Detach of its last guest")
			}
			tn.close()
			tn.assertClean()
		})
	}
}

func TestAttachRefusesTheHostsNamespace(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	id := tn.newID()
	err := tn.Attach(context.Background(), id, uint32(os.Getpid()), []NIC{tn.public(26)})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Attach into the host's namespace: %v, want ErrInvalid", err)
	}
	if err := tn.Attach(context.Background(), id, 1<<30, []NIC{tn.public(26)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Attach to no process: %v, want ErrNotFound", err)
	}
	tn.close()
	tn.assertClean()
}

func TestAttachFailureRemovesWhatItCreated(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	vlan := tn.newVLAN()
	// A device that takes a VLAN bridge's name but is no bridge makes the third NIC fail.
	blocker := tn.newVLAN()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: blocker}, PeerName: fmt.Sprintf("hearthq%08x", rand.Uint32())}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(veth)

	id := tn.newID()
	pid, path := tn.newGuest()
	err := tn.Attach(context.Background(), id, pid, []NIC{
		tn.public(30),
		{Index: 1, MAC: RandomMAC(), Bridge: vlan},
		{Index: 2, MAC: RandomMAC(), Bridge: blocker},
	})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "not a bridge") {
		t.Fatalf("Attach with a non-bridge: %v, want ErrConflict naming it", err)
	}
	if out, err := inNetns(path, "ip", "-o", "link", "show"); err != nil || strings.Contains(out, "eth") {
		t.Errorf("links in the guest after a failed Attach: %v\n%s", err, out)
	}
	netlink.LinkDel(veth)
	tn.vlans = tn.vlans[:1] // the blocker is gone; assertClean checks the rest
	tn.close()
	tn.assertClean()
}

func TestAttachRefusesAnotherGuestsDevice(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	id := tn.newID()
	// A device under the guest's veth name that Hearth did not make for it.
	squatter := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tn.names.hostVeth(id, 0)}, PeerName: fmt.Sprintf("hearthq%08x", rand.Uint32())}
	if err := netlink.LinkAdd(squatter); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(squatter)
	if err := netlink.LinkSetAlias(squatter, "hearth:other:0"); err != nil {
		t.Fatal(err)
	}
	pid, _ := tn.newGuest()
	if err := tn.Attach(context.Background(), id, pid, []NIC{tn.public(40)}); !errors.Is(err, ErrConflict) {
		t.Errorf("Attach over another guest's veth: %v, want ErrConflict", err)
	}
	if _, err := tn.Counters(id, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Counters of another guest's veth: %v, want ErrNotFound", err)
	}
	tn.detach(id) // must leave the squatter alone
	if _, err := netlink.LinkByName(squatter.Name); err != nil {
		t.Errorf("Detach removed a device of another guest: %v", err)
	}
	netlink.LinkDel(squatter)
	tn.close()
	tn.assertClean()
}

func TestNATRulesFollowTheFlag(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t, WithNAT(true))
	natRule := "hearth:" + tn.Bridge() + ":nat"
	if rules := mustOutput(t, "iptables-save", "-t", "nat"); !strings.Contains(rules, natRule) || !strings.Contains(rules, "-s "+tn.subnet.String()) {
		t.Errorf("NAT rule %s for %s missing:\n%s", natRule, tn.subnet, rules)
	}
	if fwd := strings.TrimSpace(mustRead(t, "/proc/sys/net/ipv4/ip_forward")); fwd != "1" {
		t.Errorf("ip_forward = %s with NAT on, want 1", fwd)
	}
	// A restart with another subnet replaces the rules and the bridge's address.
	moved := netip.MustParsePrefix("10.99." + fmt.Sprint(rand.IntN(256)) + ".1/24")
	crashed, err := New(WithInstance(tn.instance), WithBridge(tn.Bridge()), WithGateway(moved), WithNAT(true), WithFilterTable(tn.filter.name))
	if err != nil {
		t.Fatal(err)
	}
	crashed.dhcp.stop() // what the end of its process would close; the rest stays
	rules := mustOutput(t, "iptables-save")
	if strings.Count(rules, "hearth:"+tn.Bridge()+":") != 3 || strings.Contains(rules, tn.subnet.String()) || !strings.Contains(rules, moved.Masked().String()) {
		t.Errorf("after moving %s to %s, want its 3 rules for the new subnet only:\n%s", tn.subnet, moved, rules)
	}
	if br, err := netlink.LinkByName(tn.Bridge()); err != nil {
		t.Error(err)
	} else if addrs, err := netlink.AddrList(br, netlink.FAMILY_V4); err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != moved.String() {
		t.Errorf("bridge addresses after the move: %v %v, want only %s", addrs, err, moved)
	}
	// A restart with NAT off removes what the earlier runs installed.
	off, err := New(WithInstance(tn.instance), WithBridge(tn.Bridge()), WithGateway(moved), WithFilterTable(tn.filter.name))
	if err != nil {
		t.Fatal(err)
	}
	if rules := mustOutput(t, "iptables-save"); strings.Contains(rules, tn.Bridge()) {
		t.Errorf("rules left after a restart with NAT off:\n%s", rules)
	}
	tn.Switch = off
	tn.close()
	tn.assertClean()

	// And Close removes them.
	tn2 := newTestNet(t, WithNAT(true))
	if rules := mustOutput(t, "iptables-save"); strings.Count(rules, "hearth:"+tn2.Bridge()+":") != 3 {
		t.Errorf("want 3 rules for %s:\n%s", tn2.Bridge(), rules)
	}
	tn2.close()
	tn2.assertClean()
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

// BenchmarkAttachDetach measures what a guest's start and stop spend on
// the network: one public NIC, plus one on a VLAN of its own when vlan is
// set (the bridge and its iptables rules then come and go with it).
func BenchmarkAttachDetach(b *testing.B) {
	for _, vlan := range []bool{false, true} {
		b.Run(fmt.Sprintf("vlan=%v", vlan), func(b *testing.B) {
			tn := newTestNet(b)
			for b.Loop() {
				id := tn.newID()
				nics := []NIC{tn.public(10)}
				if vlan {
					nics = append(nics, NIC{Index: 1, MAC: RandomMAC(), Bridge: tn.newVLAN()})
				}
				tn.attach(id, nics...)
				tn.detach(id)
			}
		})
	}
}

func BenchmarkCounters(b *testing.B) {
	tn := newTestNet(b)
	id := tn.newID()
	tn.attach(id, tn.public(10))
	for b.Loop() {
		if _, err := tn.Counters(id, 0); err != nil {
			b.Fatal(err)
		}
	}
	tn.detach(id)
}

func TestConcurrentGuestsOnOneVLAN(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	vlan := tn.newVLAN()
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = tn.newID()
	}
	pids := make([]uint32, len(ids))
	for i := range pids {
		pids[i], _ = tn.newGuest()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ids))
	for i, id := range ids {
		wg.Go(func() {
			errs <- tn.Attach(context.Background(), id, pids[i], []NIC{tn.public(100 + i), {Index: 1, MAC: RandomMAC(), Bridge: vlan}})
		})
	}
	wg.Wait()
	br, err := netlink.LinkByName(vlan)
	if err != nil {
		t.Fatal(err)
	}
	links, err := listLinks()
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ports++
		}
	}
	if ports != len(ids) {
		t.Errorf("VLAN bridge has %d ports, want %d", ports, len(ids))
	}
	for _, id := range ids {
		wg.Go(func() { errs <- tn.Detach(context.Background(), id) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	tn.close()
	tn.assertClean()
}

func TestDetachWhileTheGuestStillRuns(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	id := tn.newID()
	path := tn.attach(id, tn.public(10), NIC{Index: 1, MAC: RandomMAC(), Bridge: tn.newVLAN()})
	tn.detach(id)
	if out, err := inNetns(path, "ip", "-o", "link", "show"); err != nil || strings.Contains(out, "eth") {
		t.Errorf("links in the guest after Detach: %v\n%s", err, out)
	}
	tn.close()
	tn.assertClean() // veths, bridges and rules are gone though the guest lives on
}

// TestInstancesKeepToTheirOwn: two Hearth instances on one host wiring a
// guest of the same id (a copied DATA) and a VLAN of the same UUID get
// devices of their own, and one's Detach and Close leave the other's alone.
func TestInstancesKeepToTheirOwn(t *testing.T) {
	t.Parallel()
	a, b := newTestNet(t), newTestNet(t)
	id, vlan := uuid.NewString(), uuid.NewString()
	a.ids, b.ids = append(a.ids, id), append(b.ids, id)
	brA, brB := a.names.VLANBridge(vlan), b.names.VLANBridge(vlan)
	if brA == brB || a.names.hostVeth(id, 0) == b.names.hostVeth(id, 0) {
		t.Fatalf("instances %s and %s share device names: %s, %s", a.instance, b.instance, brA, a.names.hostVeth(id, 0))
	}
	a.vlans, b.vlans = append(a.vlans, brA), append(b.vlans, brB)
	if _, err := New(WithInstance(b.instance), WithBridge(a.Bridge()), WithGateway(b.gateway0())); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), a.instance) {
		t.Errorf("a second instance on the first's public bridge: %v, want ErrConflict naming the owner", err)
	}
	a.attach(id, a.public(30), NIC{Index: 1, MAC: RandomMAC(), Bridge: brA})
	b.attach(id, b.public(30), NIC{Index: 1, MAC: RandomMAC(), Bridge: brB})
	a.detach(id)
	a.close()
	a.assertClean()
	for _, nic := range []int{0, 1} {
		if _, err := b.Counters(id, nic); err != nil {
			t.Errorf("the other instance's nic:%d after one's Detach and Close: %v", nic, err)
		}
	}
	if _, err := netlink.LinkByName(brB); err != nil {
		t.Errorf("the other instance's VLAN bridge: %v", err)
	}
	b.detach(id)
	b.close()
	b.assertClean()
}

package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hasTable reports whether nft lists a table of that name (any family).
func hasTable(t testing.TB, name string) bool {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, " "+name) {
			return true
		}
	}
	return false
}

// frame is an Ethernet frame a test sends raw from a guest's NIC.
type frame struct {
	dst, src  net.HardwareAddr
	etherType uint16
	// payload carries marker where the receiver sees it (br_netfilter
	// trims IP packets to their length: after them, it would be cut).
	payload func(marker []byte) []byte
}

var bcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (f frame) bytes(marker []byte) []byte {
	b := append(append(append([]byte{}, f.dst...), f.src...), byte(f.etherType>>8), byte(f.etherType))
	return append(b, f.payload(marker)...)
}

// arpRequest asks for target, claiming sha and spa as the sender.
func arpRequest(sha net.HardwareAddr, spa, target netip.Addr) func([]byte) []byte {
	return func(marker []byte) []byte {
		b := []byte{0, 1, 8, 0, 6, 4, 0, 1}
		b = append(append(b, sha...), spa.AsSlice()...)
		return append(append(append(b, 0, 0, 0, 0, 0, 0), target.AsSlice()...), marker...)
	}
}

// udp4 is an IPv4 UDP datagram (header checksum right: br_netfilter drops
// a bad one; UDP checksum 0 = none).
func udp4(src, dst netip.Addr, sport, dport uint16) func([]byte) []byte {
	return func(data []byte) []byte { return udp4Packet(src, dst, sport, dport, data) }
}

func udp4Packet(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(data)))
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], dst.AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	return append(append(ip, u...), data...)
}

// icmpv6 is an IPv6 ICMPv6 message of type typ (checksum not computed:
// the bridge does not look at it, the receiver sees the frame on a packet
// socket anyway).
func icmpv6(typ byte) func([]byte) []byte {
	return func(marker []byte) []byte { return icmpv6Packet(typ, marker) }
}

func icmpv6Packet(typ byte, marker []byte) []byte {
	ra := append([]byte{typ, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}, marker...)
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, unix.IPPROTO_ICMPV6, 255
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ra)))
	copy(ip[8:], netip.MustParseAddr("fe80::1").AsSlice())
	copy(ip[24:], netip.MustParseAddr("ff02::1").AsSlice())
	return append(ip, ra...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frameArrives sends f from NIC eth of the guest at from, with a random
// marker appended, and reports whether eth of the guest at to sees it.
func frameArrives(t *testing.T, from, fromDev, to, toDev string, f frame) bool {
	t.Helper()
	return sentFrameArrives(t, to, toDev, f, func(b []byte) error {
		return inNamespace(from, func() error {
			ifi, err := net.InterfaceByName(fromDev)
			if err != nil {
				return err
			}
			tx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
			if err != nil {
				return err
			}
			defer unix.Close(tx)
			return unix.Sendto(tx, b, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Addr: [8]byte(append(append([]byte{}, f.dst...), 0, 0))})
		})
	})
}

// sentFrameArrives has send put f, with a random marker appended, on the
// wire and reports whether device toDev in the namespace at to ("" = the
// host's) sees it.
func sentFrameArrives(t *testing.T, to, toDev string, f frame, send func([]byte) error) bool {
	t.Helper()
	marker := fmt.Appendf(nil, "hearth-test-%016x", rand.Uint64())
	var rx int
	err := inNamespace(to, func() error {
		ifi, err := net.InterfaceByName(toDev)
		if err != nil {
			return err
		}
		rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket in %q: %v", to, err)
	}
	defer unix.Close(rx)
	unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
	if err := send(f.bytes(marker)); err != nil {
		t.Fatalf("send: %v", err)
	}
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(rx, buf, 0)
		if err == nil && bytes.Contains(buf[:n], marker) {
			return true
		}
	}
	return false
}

func TestSpoofingGuestsFramesAreDropped(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	vlan := tn.newVLAN()
	spy, peer, victim := tn.newID(), tn.newID(), tn.newID()
	vlanAddr := func(n int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 78, byte(n)}) }
	spyNICs := []NIC{tn.public(41), {Index: 1, MAC: RandomMAC(), Bridge: vlan}}
	peerNICs := []NIC{tn.public(42), {Index: 1, MAC: RandomMAC(), Bridge: vlan}}
	victimNIC := tn.public(43)
	pSpy, pPeer := tn.attach(spy, spyNICs...), tn.attach(peer, peerNICs...)
	tn.attach(victim, victimNIC)
	mine, theirs := mustMAC(t, spyNICs[0].MAC), mustMAC(t, victimNIC.MAC)
	myIP, theirIP := spyNICs[0].Address.Addr(), victimNIC.Address.Addr()
	vMine := mustMAC(t, spyNICs[1].MAC)

	for _, c := range []struct {
		name     string
		dev      string
		f        frame
		arrives  bool
		toDevice string
	}{
		{"honest ARP", "eth0", frame{broadcast, mine, etherARP, arpRequest(mine, myIP, tn.gateway())}, true, "eth0"},
		{"ARP probe", "eth0", frame{broadcast, mine, etherARP, arpRequest(mine, netip.IPv4Unspecified(), theirIP)}, true, "eth0"},
		{"ARP with another's IP", "eth0", frame{broadcast, mine, etherARP, arpRequest(mine, theirIP, tn.gateway())}, false, "eth0"},
		{"ARP with another's MAC", "eth0", frame{broadcast, mine, etherARP, arpRequest(theirs, myIP, tn.gateway())}, false, "eth0"},
		{"frame from another's MAC", "eth0", frame{broadcast, theirs, etherARP, arpRequest(theirs, theirIP, tn.gateway())}, false, "eth0"},
		{"honest IPv4", "eth0", frame{broadcast, mine, etherIPv4, udp4(myIP, bcast4, 4000, 4000)}, true, "eth0"},
		{"IPv4 from another's address", "eth0", frame{broadcast, mine, etherIPv4, udp4(theirIP, bcast4, 4000, 4000)}, false, "eth0"},
		{"DHCP offer", "eth0", frame{broadcast, mine, etherIPv4, udp4(myIP, bcast4, 67, 68)}, false, "eth0"},
		{"IPv6 on the public bridge", "eth0", frame{broadcast, mine, etherIPv6, icmpv6(icmpv6RouterAdv)}, false, "eth0"},
		// On a VLAN the addresses are the tenant's: any sender IP, not any MAC.
		{"VLAN: ARP for any address", "eth1", frame{broadcast, vMine, etherARP, arpRequest(vMine, vlanAddr(9), vlanAddr(10))}, true, "eth1"},
		{"VLAN: IPv4 from any address", "eth1", frame{broadcast, vMine, etherIPv4, udp4(vlanAddr(9), vlanAddr(10), 4000, 4000)}, true, "eth1"},
		{"VLAN: ARP with another's MAC", "eth1", frame{broadcast, vMine, etherARP, arpRequest(theirs, vlanAddr(9), vlanAddr(10))}, false, "eth1"},
		{"VLAN: frame from another's MAC", "eth1", frame{broadcast, theirs, etherARP, arpRequest(theirs, vlanAddr(9), vlanAddr(10))}, false, "eth1"},
		{"VLAN: DHCP offer", "eth1", frame{broadcast, vMine, etherIPv4, udp4(vlanAddr(9), bcast4, 67, 68)}, false, "eth1"},
		{"VLAN: IPv6 echo", "eth1", frame{broadcast, vMine, etherIPv6, icmpv6(128)}, true, "eth1"},
		{"VLAN: router advertisement", "eth1", frame{broadcast, vMine, etherIPv6, icmpv6(icmpv6RouterAdv)}, false, "eth1"},
	} {
		if got := frameArrives(t, pSpy, c.dev, pPeer, c.toDevice, c.f); got != c.arrives {
			t.Errorf("%s: arrived %v, want %v", c.name, got, c.arrives)
		}
	}
	// The spoofed ARP did not teach the peer the spy's MAC for the victim.
	if out, _ := inNetns(pPeer, "ip", "neigh", "show", theirIP.String()); strings.Contains(out, mine.String()) {
		t.Errorf("the peer believes the victim is the spy: %s", out)
	}

	for _, id := range []string{spy, peer, victim} {
		tn.detach(id)
	}
	tn.close()
	tn.assertClean()
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := parseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// tcpConnects reports whether a TCP connection from the namespace at from
// reaches a listener on addr:port in the namespace at to ("" = the host).
func tcpConnects(t *testing.T, from, to string, addr netip.Addr, port uint16) bool {
	t.Helper()
	var l net.Listener
	if err := inNamespace(to, func() (err error) {
		l, err = net.Listen("tcp4", netip.AddrPortFrom(addr, port).String())
		return err
	}); err != nil {
		t.Fatalf("listen on %s:%d in %q: %v", addr, port, to, err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	err := inNamespace(from, func() error {
		c, err := net.DialTimeout("tcp4", l.Addr().String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return err == nil
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestGuestsReachTheHostOnlyForDHCPAndICMP(t *testing.T) {
	t.Parallel()
	api, other := freePort(t), freePort(t)
	tn := newTestNet(t, WithGuestAPI(api))
	id := tn.newID()
	path := tn.attach(id, tn.public(51))

	ping(t, path, tn.gateway(), true)
	if tcpConnects(t, path, "", tn.gateway(), other) {
		t.Error("a guest reached a host service on the public bridge's address")
	}
	if udpArrives(t, path, "", tn.gateway()) {
		t.Error("a guest's UDP reached the host")
	}
	if !tcpConnects(t, path, "", tn.gateway(), api) {
		t.Error("the API port opened to guests (WithGuestAPI) is closed")
	}
	// The host still talks to its guests.
	if !tcpConnects(t, "", path, tn.addr(51).Addr(), other) {
		t.Error("the host could not connect to a guest")
	}
	tn.detach(id)
	tn.close()
	tn.assertClean()
}

func TestFirewallKeysBlockAndAllow(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	vlan := tn.newVLAN()
	guest, client := tn.newID(), tn.newID()
	vAddr := func(n int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 79, byte(n)}), 24) }
	reject := Firewall{Reject: true, Accept: []PortRule{{Proto: "tcp", Low: 22, End: 22}, {Proto: "udp"}}}
	gNICs := []NIC{tn.public(61), {Index: 1, MAC: RandomMAC(), Address: vAddr(1), Bridge: vlan}}
	gNICs[0].Firewall, gNICs[1].Firewall = reject, reject
	pGuest := tn.attach(guest, gNICs...)
	pClient := tn.attach(client, tn.public(62), NIC{Index: 1, MAC: RandomMAC(), Address: vAddr(2), Bridge: vlan})
	gAddr, cAddr := tn.addr(61).Addr(), tn.addr(62).Addr()

	check := func(when string, from, to string, addr netip.Addr, port uint16, want bool) {
		t.Helper()
		if got := tcpConnects(t, from, to, addr, port); got != want {
			t.Errorf("%s: tcp to %s:%d connects %v, want %v", when, addr, port, got, want)
		}
	}
	check("policy reject, accept tcp/22", pClient, pGuest, gAddr, 22, true)
	check("policy reject, accept tcp/22", pClient, pGuest, gAddr, 80, false)
	check("policy reject on the VLAN NIC", pClient, pGuest, vAddr(1).Addr(), 22, true)
	check("policy reject on the VLAN NIC", pClient, pGuest, vAddr(1).Addr(), 80, false)
	check("policy reject: the guest's own connections", pGuest, pClient, cAddr, 80, true)
	if !udpArrives(t, pClient, pGuest, gAddr) {
		t.Error("policy reject, accept udp: UDP did not arrive")
	}
	ping(t, pClient, gAddr, false) // icmp is not in the list

	// Changed live, as /servers/S/set does on a running server.
	accept := Firewall{Refuse: []PortRule{{Proto: "tcp", Low: 20, End: 23}, {Proto: "icmp"}}}
	gNICs[0].Firewall = accept
	if err := tn.SetFirewall(guest, gNICs[0]); err != nil {
		t.Fatal(err)
	}
	check("policy accept, reject tcp/20-23", pClient, pGuest, gAddr, 22, false)
	check("policy accept, reject tcp/20-23", pClient, pGuest, gAddr, 80, true)
	ping(t, pClient, gAddr, false)
	gNICs[0].Firewall = Firewall{}
	if err := tn.SetFirewall(guest, gNICs[0]); err != nil {
		t.Fatal(err)
	}
	check("no firewall", pClient, pGuest, gAddr, 22, true)
	ping(t, pClient, gAddr, true)
	if err := tn.SetFirewall(tn.newID(), gNICs[0]); err == nil {
		t.Error("SetFirewall of a guest that is not attached succeeded")
	}

	tn.detach(guest)
	tn.detach(client)
	tn.close()
	tn.assertClean()
}

// TestTwoInstancesKeepTheirOwnTables: a second Switch (another Hearth on
// the host) neither touches the first one's rules nor removes them.
func TestTwoInstancesKeepTheirOwnTables(t *testing.T) {
	t.Parallel()
	one, two := newTestNet(t), newTestNet(t)
	id := one.newID()
	one.attach(id, one.public(71))
	two.close()
	if !hasTable(t, one.filter.name) {
		t.Fatal("closing one instance removed the other's tables")
	}
	out, err := exec.Command("nft", "list", "table", "bridge", one.filter.name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), one.names.hostVeth(id, 0)) {
		t.Errorf("the first instance's port rules: %v\n%s", err, out)
	}
	one.detach(id)
	one.close()
	one.assertClean()
	two.assertClean()
}

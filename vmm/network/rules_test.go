package network

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// packet is what the rules look at, as the kernel would hand it to them.
type packet struct {
	iif, oif string
	ll       []byte // Ethernet header
	network  []byte // from the network header on
	nfproto  byte
	l4proto  byte
	th       []byte // transport header
	ctState  uint32
}

// eval runs a chain's rules on p as nf_tables does and returns the
// verdict: the first rule whose expressions all match decides; a chain
// that ends without one returns (to the base chain, whose policy accepts).
func eval(t *testing.T, rules [][]expr.Any, p packet) string {
	t.Helper()
	for _, r := range rules {
		var reg []byte
		matched := true
		for _, e := range r {
			switch e := e.(type) {
			case *expr.Meta:
				switch e.Key {
				case expr.MetaKeyIIFNAME:
					reg = ifname(p.iif)
				case expr.MetaKeyOIFNAME:
					reg = ifname(p.oif)
				case expr.MetaKeyL4PROTO:
					reg = []byte{p.l4proto}
				case expr.MetaKeyNFPROTO:
					reg = []byte{p.nfproto}
				default:
					t.Fatalf("meta key %v", e.Key)
				}
			case *expr.Payload:
				src := map[expr.PayloadBase][]byte{expr.PayloadBaseLLHeader: p.ll, expr.PayloadBaseNetworkHeader: p.network, expr.PayloadBaseTransportHeader: p.th}[e.Base]
				if int(e.Offset+e.Len) > len(src) {
					matched = false // the kernel breaks off the rule
					break
				}
				reg = src[e.Offset : e.Offset+e.Len]
			case *expr.Ct:
				reg = binaryutil.NativeEndian.PutUint32(p.ctState)
			case *expr.Bitwise:
				out := make([]byte, len(reg))
				for i := range reg {
					out[i] = reg[i]&e.Mask[i] ^ e.Xor[i]
				}
				reg = out
			case *expr.Cmp:
				eq := bytes.Equal(reg, e.Data)
				matched = eq == (e.Op == expr.CmpOpEq)
			case *expr.Range:
				matched = bytes.Compare(reg, e.FromData) >= 0 && bytes.Compare(reg, e.ToData) <= 0
			case *expr.Verdict:
				switch e.Kind {
				case expr.VerdictDrop:
					return "drop"
				case expr.VerdictAccept:
					return "accept"
				case expr.VerdictJump:
					return "jump " + e.Chain
				}
				t.Fatalf("verdict %v", e.Kind)
			default:
				t.Fatalf("expression %T", e)
			}
			if !matched {
				break
			}
		}
	}
	return "continue"
}

func ether(dst, src string, typ uint16) []byte {
	return append(append(mustParseMAC(dst), mustParseMAC(src)...), byte(typ>>8), byte(typ))
}

func mustParseMAC(s string) []byte {
	m, err := net.ParseMAC(s) // broadcast too
	if err != nil {
		panic(err)
	}
	return m
}

func arp(sha string, spa netip.Addr) []byte {
	return arpRequest(mustParseMAC(sha), spa, netip.MustParseAddr("10.0.0.1"))(nil)
}

func ipv4(src, dst netip.Addr, proto byte) []byte {
	h := make([]byte, 20)
	h[0], h[9] = 0x45, proto
	copy(h[12:], src.AsSlice())
	copy(h[16:], dst.AsSlice())
	return h
}

func ports(sport, dport uint16) []byte { return append(be16(sport), be16(dport)...) }

func TestSpoofRules(t *testing.T) {
	const own, other, bcast = "02:00:00:00:00:01", "02:00:00:00:00:02", "ff:ff:ff:ff:ff:ff"
	me, them, zero := netip.MustParseAddr("10.73.0.5"), netip.MustParseAddr("10.73.0.6"), netip.IPv4Unspecified()
	public := spoofRules(mustParseMAC(own), true, me)
	vlan := spoofRules(mustParseMAC(own), false, netip.Addr{})
	noAddress := spoofRules(mustParseMAC(own), true, netip.Addr{})
	udp := func(src netip.Addr, sport, dport uint16) packet {
		return packet{ll: ether(bcast, own, etherIPv4), network: ipv4(src, bcast4, protoUDP), l4proto: protoUDP, th: ports(sport, dport)}
	}
	for _, c := range []struct {
		name  string
		rules [][]expr.Any
		p     packet
		want  string
	}{
		{"own ARP", public, packet{ll: ether(bcast, own, etherARP), network: arp(own, me)}, "continue"},
		{"ARP probe", public, packet{ll: ether(bcast, own, etherARP), network: arp(own, zero)}, "continue"},
		{"ARP claiming another's IP", public, packet{ll: ether(bcast, own, etherARP), network: arp(own, them)}, "drop"},
		{"ARP claiming another's MAC", public, packet{ll: ether(bcast, own, etherARP), network: arp(other, me)}, "drop"},
		{"another source MAC", public, packet{ll: ether(bcast, other, etherARP), network: arp(other, them)}, "drop"},
		{"own IPv4", public, udp(me, 4000, 53), "continue"},
		{"DHCP discover", public, udp(zero, 68, 67), "continue"},
		{"IPv4 from another address", public, udp(them, 4000, 53), "drop"},
		{"DHCP offer", public, udp(me, 67, 68), "drop"},
		{"IPv6 on the public bridge", public, packet{ll: ether(bcast, own, etherIPv6)}, "drop"},
		{"no address: only DHCP discovery", noAddress, udp(zero, 68, 67), "continue"},
		{"no address: any other source", noAddress, udp(me, 4000, 53), "drop"},
		{"0.0.0.0 to another UDP port", public, udp(zero, 68, 53), "drop"},
		{"0.0.0.0 over TCP", public, packet{ll: ether(bcast, own, etherIPv4), network: ipv4(zero, them, protoTCP), l4proto: protoTCP, th: ports(4000, 67)}, "drop"},
		{"VLAN: any sender IP", vlan, packet{ll: ether(bcast, own, etherARP), network: arp(own, them)}, "continue"},
		{"VLAN: any IPv4 source", vlan, udp(them, 4000, 53), "continue"},
		{"VLAN: another's MAC in ARP", vlan, packet{ll: ether(bcast, own, etherARP), network: arp(other, them)}, "drop"},
		{"VLAN: another source MAC", vlan, packet{ll: ether(bcast, other, etherIPv4), network: ipv4(them, me, protoUDP)}, "drop"},
		{"VLAN: DHCP offer", vlan, udp(them, 67, 68), "drop"},
		{"VLAN: DHCPv6 reply", vlan, packet{ll: ether(bcast, own, etherIPv6), l4proto: protoUDP, th: ports(547, 546)}, "drop"},
		{"VLAN: router advertisement", vlan, packet{ll: ether(bcast, own, etherIPv6), l4proto: protoICMPv6, th: []byte{icmpv6RouterAdv, 0}}, "drop"},
		{"VLAN: neighbour solicitation", vlan, packet{ll: ether(bcast, own, etherIPv6), l4proto: protoICMPv6, th: []byte{135, 0}}, "continue"},
	} {
		if got := eval(t, c.rules, c.p); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestFirewallRules(t *testing.T) {
	tcp := func(dport uint16) packet {
		return packet{l4proto: protoTCP, th: ports(40000, dport), ctState: expr.CtStateBitNEW}
	}
	udp := func(dport uint16) packet {
		return packet{l4proto: protoUDP, th: ports(40000, dport), ctState: expr.CtStateBitNEW}
	}
	icmp := packet{l4proto: protoICMP, th: []byte{8, 0}, ctState: expr.CtStateBitNEW}
	reply := packet{l4proto: protoTCP, th: ports(80, 40000), ctState: expr.CtStateBitESTABLISHED}
	reject := firewallRules(Firewall{Reject: true, Accept: []PortRule{{Proto: "tcp", Low: 22, End: 22}, {Proto: "udp", Low: 1000, End: 2000}, {Proto: "icmp"}}})
	accept := firewallRules(Firewall{Refuse: []PortRule{{Proto: "tcp", Low: 25, End: 25}, {Proto: "udp"}}})
	// nic:0:block wins over the policy and the lists.
	blocked := firewallRules(Firewall{Reject: true, Accept: []PortRule{{Proto: "tcp", Low: 22, End: 22}, {Proto: "tcp", Low: 80, End: 80}}, Block: []PortRule{{Proto: "tcp", Low: 22, End: 22}}})
	for _, c := range []struct {
		name  string
		rules [][]expr.Any
		p     packet
		want  string
	}{
		{"reject: listed tcp port", reject, tcp(22), "accept"},
		{"reject: other tcp port", reject, tcp(80), "drop"},
		{"reject: udp range", reject, udp(1500), "accept"},
		{"reject: udp below the range", reject, udp(999), "drop"},
		{"reject: udp above the range", reject, udp(2001), "drop"},
		{"reject: icmp listed", reject, icmp, "accept"},
		{"reject: replies to the guest", reject, reply, "accept"},
		{"accept: listed tcp port", accept, tcp(25), "drop"},
		{"accept: other tcp port", accept, tcp(80), "continue"},
		{"accept: every udp port", accept, udp(53), "drop"},
		{"block: a blocked port the accept list names", blocked, tcp(22), "drop"},
		{"block: another accepted port", blocked, tcp(80), "accept"},
		{"block: replies to the guest", blocked, reply, "accept"},
		{"accept: replies to the guest", accept, packet{l4proto: protoUDP, th: ports(53, 40000), ctState: expr.CtStateBitESTABLISHED}, "accept"},
	} {
		if got := eval(t, c.rules, c.p); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if (Firewall{}).filters() || (Firewall{Accept: []PortRule{{Proto: "tcp"}}}).filters() {
		t.Error("a firewall that stops nothing filters")
	}
	if !(Firewall{Block: []PortRule{{Proto: "tcp", Low: 25, End: 25}}}).filters() {
		t.Error("a block list alone does not filter")
	}
}

func TestFirewallJumpsAndHostRules(t *testing.T) {
	const mac = "02:00:00:00:00:09"
	addr := netip.MustParseAddr("10.73.0.9")
	jumps := firewallJumps("hearthabcdef010", "hearth0", mustParseMAC(mac), addr)
	for _, c := range []struct {
		name string
		p    packet
		want string
	}{
		{"bridged to the NIC's MAC", packet{oif: "hearth0", ll: ether(mac, "02:00:00:00:00:01", etherIPv4)}, "jump hearthabcdef010"},
		{"routed to its address", packet{oif: "hearth0", nfproto: unix.NFPROTO_IPV4, ll: ether("02:00:00:00:00:07", "02:00:00:00:00:08", etherIPv4), network: ipv4(netip.MustParseAddr("192.0.2.1"), addr, protoTCP)}, "jump hearthabcdef010"},
		{"to another guest", packet{oif: "hearth0", nfproto: unix.NFPROTO_IPV4, ll: ether("02:00:00:00:00:07", "02:00:00:00:00:08", etherIPv4), network: ipv4(addr, netip.MustParseAddr("10.73.0.10"), protoTCP)}, "continue"},
		{"another instance's bridge", packet{oif: "hearth1", ll: ether(mac, "02:00:00:00:00:01", etherIPv4)}, "continue"},
	} {
		if got := eval(t, jumps, c.p); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}

	for _, c := range []struct {
		name string
		api  uint16
		p    packet
		want string
	}{
		{"DHCP", 0, packet{l4proto: protoUDP, th: ports(68, 67)}, "accept"},
		{"ping", 0, packet{l4proto: protoICMP, th: []byte{8, 0}}, "accept"},
		{"the API, closed", 0, packet{l4proto: protoTCP, th: ports(40000, 8080)}, "drop"},
		{"the API, opened", 8080, packet{l4proto: protoTCP, th: ports(40000, 8080)}, "accept"},
		{"another port with the API opened", 8080, packet{l4proto: protoTCP, th: ports(40000, 5900)}, "drop"},
		{"DNS (Hearth serves none)", 0, packet{l4proto: protoUDP, th: ports(40000, 53)}, "drop"},
		{"a reply to the host", 0, packet{l4proto: protoTCP, th: ports(22, 40000), ctState: expr.CtStateBitESTABLISHED}, "accept"},
	} {
		if got := eval(t, hostRules(c.api), c.p); got != c.want {
			t.Errorf("host rules, %s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := eval(t, [][]expr.Any{fromBridge("hearth0", chainGuests)}, packet{iif: "hearth0"}); got != "jump "+chainGuests {
		t.Errorf("from the public bridge: %s", got)
	}
	if got := eval(t, [][]expr.Any{fromPort("hearthabcdef010")}, packet{iif: "hearthabcdef011"}); got != "continue" {
		t.Errorf("another port: %s", got)
	}
}

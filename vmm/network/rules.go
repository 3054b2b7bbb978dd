package network

import (
	"net"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The rules of the instance's nftables tables, as lists of expressions: one
// list per rule, built without touching the kernel (filter.go loads them).
// Every rule loads into register 1 and compares, so a rule's comparisons
// are ANDed; two "!=" on one load make "neither this nor that".

// EtherTypes and IP protocols the rules match.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd

	protoICMP   = unix.IPPROTO_ICMP
	protoTCP    = unix.IPPROTO_TCP
	protoUDP    = unix.IPPROTO_UDP
	protoICMPv6 = unix.IPPROTO_ICMPV6

	portDHCPServer   = 67
	portDHCPv6Server = 547
	icmpv6RouterAdv  = 134
)

func load(base expr.PayloadBase, offset, length uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: offset, Len: length}
}

func cmp(op expr.CmpOp, data []byte) expr.Any {
	return &expr.Cmp{Op: op, Register: 1, Data: data}
}

func meta(key expr.MetaKey) expr.Any { return &expr.Meta{Key: key, Register: 1} }

func verdict(kind expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: kind} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func be16(v uint16) []byte { return binaryutil.BigEndian.PutUint16(v) }

// ifname is an interface name as the kernel compares it: NUL-padded to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func etherType(t uint16) []expr.Any {
	return []expr.Any{load(expr.PayloadBaseLLHeader, 12, 2), cmp(expr.CmpOpEq, be16(t))}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{p})}
}

// established accepts the packets of connections already under way, and
// the ICMP errors about them.
func established() []expr.Any {
	bits := expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		cmp(expr.CmpOpNeq, make([]byte, 4)),
		verdict(expr.VerdictAccept),
	}
}

func nftRule(parts ...[]expr.Any) []expr.Any {
	var r []expr.Any
	for _, p := range parts {
		r = append(r, p...)
	}
	return r
}

// spoofRules is the chain that every frame a guest's NIC sends passes (bridge
// family, prerouting, iifname = its host veth): it drops any frame whose
// source MAC is not the NIC's, any ARP whose sender MAC is not, DHCP server
// replies and IPv6 router advertisements. On the public bridge, where
// Hearth gives the NIC its address (addr; zero = none), it also drops
// everything but IPv4 and ARP, and IPv4 and ARP whose sender address is
// not addr or 0.0.0.0 (ARP probes; for IPv4, DHCP discovery alone). On a VLAN bridge the
// guests' addresses are their own business: any sender IP, any EtherType.
func spoofRules(mac net.HardwareAddr, public bool, addr netip.Addr) [][]expr.Any {
	drop := []expr.Any{verdict(expr.VerdictDrop)}
	rules := [][]expr.Any{
		nftRule([]expr.Any{load(expr.PayloadBaseLLHeader, 6, 6), cmp(expr.CmpOpNeq, mac)}, drop),
		nftRule(etherType(etherARP), []expr.Any{load(expr.PayloadBaseNetworkHeader, 8, 6), cmp(expr.CmpOpNeq, mac)}, drop),
	}
	if public {
		own := []byte{0, 0, 0, 0}
		if addr.Is4() {
			own = addr.AsSlice()
		}
		notOwn := []expr.Any{cmp(expr.CmpOpNeq, own), cmp(expr.CmpOpNeq, []byte{0, 0, 0, 0})}
		unspecified := []expr.Any{load(expr.PayloadBaseNetworkHeader, 12, 4), cmp(expr.CmpOpEq, []byte{0, 0, 0, 0})}
		rules = append(rules,
			nftRule([]expr.Any{load(expr.PayloadBaseLLHeader, 12, 2), cmp(expr.CmpOpNeq, be16(etherIPv4)), cmp(expr.CmpOpNeq, be16(etherARP))}, drop),
			nftRule(etherType(etherARP), []expr.Any{load(expr.PayloadBaseNetworkHeader, 14, 4)}, notOwn, drop),
			nftRule(etherType(etherIPv4), []expr.Any{load(expr.PayloadBaseNetworkHeader, 12, 4)}, notOwn, drop),
			// 0.0.0.0 is for DHCP discovery only.
			nftRule(etherType(etherIPv4), unspecified, []expr.Any{meta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpNeq, []byte{protoUDP})}, drop),
			nftRule(etherType(etherIPv4), unspecified, []expr.Any{load(expr.PayloadBaseTransportHeader, 2, 2), cmp(expr.CmpOpNeq, be16(portDHCPServer))}, drop),
		)
	}
	return append(rules,
		nftRule(l4proto(protoUDP), []expr.Any{load(expr.PayloadBaseTransportHeader, 0, 2), cmp(expr.CmpOpEq, be16(portDHCPServer))}, drop),
		nftRule(l4proto(protoUDP), []expr.Any{load(expr.PayloadBaseTransportHeader, 0, 2), cmp(expr.CmpOpEq, be16(portDHCPv6Server))}, drop),
		nftRule(l4proto(protoICMPv6), []expr.Any{load(expr.PayloadBaseTransportHeader, 0, 1), cmp(expr.CmpOpEq, []byte{icmpv6RouterAdv})}, drop),
	)
}

// portMatch is what a firewall list item matches: its protocol and, for
// TCP and UDP, the destination port range (ICMP: ICMP and ICMPv6, hence
// two matches).
func portMatch(r PortRule) [][]expr.Any {
	switch r.Proto {
	case "icmp":
		return [][]expr.Any{l4proto(protoICMP), l4proto(protoICMPv6)}
	}
	proto := byte(protoTCP)
	if r.Proto == "udp" {
		proto = protoUDP
	}
	m := l4proto(proto)
	switch {
	case r.Low == 0:
	case r.Low == r.End:
		m = nftRule(m, []expr.Any{load(expr.PayloadBaseTransportHeader, 2, 2), cmp(expr.CmpOpEq, be16(r.Low))})
	default:
		m = nftRule(m, []expr.Any{load(expr.PayloadBaseTransportHeader, 2, 2),
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(r.Low), ToData: be16(r.End)}})
	}
	return [][]expr.Any{m}
}

// firewallRules is the chain a NIC's inbound traffic passes (inet family,
// forward): replies to the guest's own connections always get through;
// policy reject accepts the accept list and drops the rest, policy accept
// drops the reject list and lets the rest through; the block list is
// dropped before either.
func firewallRules(fw Firewall) [][]expr.Any {
	rules := [][]expr.Any{established()}
	for _, item := range fw.Block {
		for _, m := range portMatch(item) {
			rules = append(rules, nftRule(m, []expr.Any{verdict(expr.VerdictDrop)}))
		}
	}
	list, kind := fw.Refuse, expr.VerdictDrop
	if fw.Reject {
		list, kind = fw.Accept, expr.VerdictAccept
	}
	for _, item := range list {
		for _, m := range portMatch(item) {
			rules = append(rules, nftRule(m, []expr.Any{verdict(kind)}))
		}
	}
	if fw.Reject {
		rules = append(rules, []expr.Any{verdict(expr.VerdictDrop)})
	}
	return rules
}

// firewallJumps send the traffic for a NIC to its firewall chain: frames
// bridged to its MAC, and IPv4 routed to its address on the public bridge
// (from the uplink through NAT), in the inet forward hook, where conntrack
// knows replies (bridged IPv4 and IPv6 reach it through br_netfilter).
func firewallJumps(chain, bridge string, mac net.HardwareAddr, addr netip.Addr) [][]expr.Any {
	out := []expr.Any{meta(expr.MetaKeyOIFNAME), cmp(expr.CmpOpEq, ifname(bridge))}
	jumps := [][]expr.Any{nftRule(out, []expr.Any{load(expr.PayloadBaseLLHeader, 0, 6), cmp(expr.CmpOpEq, mac), jump(chain)})}
	if addr.Is4() {
		jumps = append(jumps, nftRule(out, []expr.Any{
			meta(expr.MetaKeyNFPROTO), cmp(expr.CmpOpEq, []byte{unix.NFPROTO_IPV4}),
			load(expr.PayloadBaseNetworkHeader, 16, 4), cmp(expr.CmpOpEq, addr.AsSlice()), jump(chain),
		}))
	}
	return jumps
}

// hostRules is the chain all traffic from the guest bridges to the host
// passes (inet family, input): replies to the host's own connections, ICMP,
// DHCP and, when the operator opens it (apiPort not 0), the API get in;
// everything else is dropped.
func hostRules(apiPort uint16) [][]expr.Any {
	accept := []expr.Any{verdict(expr.VerdictAccept)}
	dport := func(p uint16) []expr.Any {
		return []expr.Any{load(expr.PayloadBaseTransportHeader, 2, 2), cmp(expr.CmpOpEq, be16(p))}
	}
	rules := [][]expr.Any{
		established(),
		nftRule(l4proto(protoICMP), accept),
		nftRule(l4proto(protoICMPv6), accept),
		nftRule(l4proto(protoUDP), dport(portDHCPServer), accept),
	}
	if apiPort != 0 {
		rules = append(rules, nftRule(l4proto(protoTCP), dport(apiPort), accept))
	}
	return append(rules, []expr.Any{verdict(expr.VerdictDrop)})
}

// fromBridge jumps to chain for what arrives through bridge.
func fromBridge(bridge, chain string) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, ifname(bridge)), jump(chain)}
}

// fromPort jumps to chain for what arrives through port.
func fromPort(port string) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, ifname(port)), jump(port)}
}

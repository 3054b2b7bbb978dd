package network

import (
	"fmt"
	"strconv"
	"strings"
)

// Firewall is a NIC's ElasticHosts firewall (nic:N:firewall:policy, :accept
// and :reject), enforced on the traffic that comes TO the guest's NIC. The
// zero value lets everything through.
type Firewall struct {
	// Reject true (policy reject): only what Accept lists, and replies to
	// the guest's own connections, get through. False (policy accept, the
	// default): everything but what Reject lists gets through.
	Reject         bool       `json:",omitempty"`
	Accept, Refuse []PortRule `json:",omitempty"` // nic:N:firewall:accept, nic:N:firewall:reject
}

// PortRule is one item of a firewall port list: "tcp/22", "udp/1000-2000",
// "tcp" (every TCP port) or "icmp" (ICMP and ICMPv6).
type PortRule struct {
	Proto    string // tcp, udp or icmp
	Low, End uint16 // port range; 0, 0 = every port
}

func (r PortRule) String() string {
	switch {
	case r.Low == 0:
		return r.Proto
	case r.Low == r.End:
		return fmt.Sprintf("%s/%d", r.Proto, r.Low)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.Low, r.End)
}

// ParsePortRule reads one item of a firewall port list (either case):
// tcp/PORT, udp/PORT, tcp/LOW-HIGH, udp/LOW-HIGH, tcp, udp or icmp.
func ParsePortRule(v string) (PortRule, error) {
	proto, ports, hasPorts := strings.Cut(strings.ToLower(v), "/")
	switch proto {
	case "tcp", "udp":
	case "icmp":
		if hasPorts {
			return PortRule{}, fmt.Errorf("%w: %q: icmp has no ports", ErrInvalid, v)
		}
	default:
		return PortRule{}, fmt.Errorf("%w: %q is not tcp/PORT, udp/PORT or icmp", ErrInvalid, v)
	}
	if !hasPorts {
		return PortRule{Proto: proto}, nil
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := l, error(nil)
	if isRange {
		h, err2 = strconv.ParseUint(hi, 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return PortRule{}, fmt.Errorf("%w: %q: ports must be 1–65535 (a range as LOW-HIGH)", ErrInvalid, v)
	}
	return PortRule{Proto: proto, Low: uint16(l), End: uint16(h)}, nil
}

// ParseFirewall reads a NIC's firewall keys: policy "accept", "reject" or ""
// (accept), and the space-separated accept and reject lists.
func ParseFirewall(policy, accept, reject string) (Firewall, error) {
	var fw Firewall
	switch policy {
	case "", "accept":
	case "reject":
		fw.Reject = true
	default:
		return fw, fmt.Errorf("%w: firewall policy %q (want accept or reject)", ErrInvalid, policy)
	}
	for _, l := range []struct {
		list string
		to   *[]PortRule
	}{{accept, &fw.Accept}, {reject, &fw.Refuse}} {
		for _, item := range strings.Fields(l.list) {
			r, err := ParsePortRule(item)
			if err != nil {
				return Firewall{}, err
			}
			*l.to = append(*l.to, r)
		}
	}
	return fw, nil
}

// filters reports whether fw stops anything at all.
func (fw Firewall) filters() bool { return fw.Reject || len(fw.Refuse) > 0 }

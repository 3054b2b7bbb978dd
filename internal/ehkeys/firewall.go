package ehkeys

import (
	"fmt"
	"strconv"
	"strings"
)

// PortRule is one item of a firewall port list (nic:N:firewall:accept,
// nic:N:firewall:reject, nic:0:block): "tcp/22", "udp/1000-2000", "tcp"
// (every TCP port) or "icmp" (ICMP and ICMPv6).
type PortRule struct {
	Proto    string // tcp, udp or icmp
	Low, End uint16 // port range; 0, 0 = every port
}

// String is the item as stored: lower case, a single port without a range.
func (r PortRule) String() string {
	switch {
	case r.Low == 0:
		return r.Proto
	case r.Low == r.End:
		return fmt.Sprintf("%s/%d", r.Proto, r.Low)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.Low, r.End)
}

// ParsePortRule reads one item of a port list (either case): tcp/PORT,
// udp/PORT, tcp/LOW-HIGH, udp/LOW-HIGH, tcp, udp or icmp.
func ParsePortRule(v string) (PortRule, error) {
	proto, ports, hasPorts := strings.Cut(strings.ToLower(v), "/")
	switch proto {
	case "tcp", "udp":
	case "icmp":
		if hasPorts {
			return PortRule{}, fmt.Errorf("%q: icmp has no ports", v)
		}
	default:
		return PortRule{}, fmt.Errorf("%q is not tcp/PORT, udp/PORT or icmp", v)
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
		return PortRule{}, fmt.Errorf("%q: ports must be 1–65535 (a range as LOW-HIGH)", v)
	}
	return PortRule{Proto: proto, Low: uint16(l), End: uint16(h)}, nil
}

// ParsePortRules reads a space-separated port list.
func ParsePortRules(list string) ([]PortRule, error) {
	var rules []PortRule
	for _, item := range strings.Fields(list) {
		r, err := ParsePortRule(item)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// ensureBridge returns bridge name, creating it when absent (created then
// says so). IPv6 is off on Hearth's bridges: the host takes part in no
// guest network but the public bridge's IPv4 subnet. A VLAN bridge gets
// its isolation rules before it is up.
func ensureBridge(ctx context.Context, name string) (br netlink.Link, created bool, err error) {
	br, err = netlink.LinkByName(name)
	if err == nil {
		if br.Type() != "bridge" {
			return nil, false, fmt.Errorf("%w: %s exists and is a %s, not a bridge", ErrConflict, name, br.Type())
		}
		return br, false, nil
	}
	if !errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, false, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return nil, false, fmt.Errorf("create bridge %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			deleteBridge(context.WithoutCancel(ctx), name)
		}
	}()
	if err := setSysctl("ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil {
		return nil, false, err
	}
	if isVLANBridge(name) {
		if err := ensureRules(ctx, vlanRules(name)); err != nil {
			return nil, false, fmt.Errorf("isolate bridge %s: %w", name, err)
		}
	}
	if br, err = netlink.LinkByName(name); err != nil {
		return nil, false, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, false, fmt.Errorf("bring up bridge %s: %w", name, err)
	}
	return br, true, nil
}

// deleteBridge removes a bridge and its rules; absent is fine.
func deleteBridge(ctx context.Context, name string) error {
	var errs []error
	if l, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", name, err))
		}
	} else if !errors.As(err, &netlink.LinkNotFoundError{}) {
		errs = append(errs, fmt.Errorf("look up bridge %s: %w", name, err))
	}
	if isVLANBridge(name) {
		errs = append(errs, syncRules(ctx, name, nil))
	}
	return errors.Join(errs...)
}

func isVLANBridge(name string) bool { return strings.HasPrefix(name, vlanPrefix) }

// hasPorts reports whether any link is enslaved to bridge.
func hasPorts(bridge string) (bool, error) {
	br, err := netlink.LinkByName(bridge)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up bridge %s: %w", bridge, err)
	}
	links, err := listLinks()
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return true, nil
		}
	}
	return false, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// listLinks lists the host's links, again when a concurrent change
// interrupted the kernel's dump.
func listLinks() ([]netlink.Link, error) {
	for attempt := 0; ; attempt++ {
		links, err := netlink.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		return links, nil
	}
}

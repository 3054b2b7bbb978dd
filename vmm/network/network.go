// Package network gives each Hearth guest its own network namespace wired to a
// host bridge: the public bridge (default hearth0, the gateway of Hearth's
// subnet, optionally NATed to the uplink) or a per-VLAN bridge that carries
// layer-2 traffic between the guests of one VLAN and nothing else.
//
// Everything it creates on the host carries a "hearth" prefix and is derived
// from the guest id, so a restarted Hearth finds (and tears down) what an
// earlier process created without keeping any state of its own:
//
//   - namespace: DATA/run/netns/ID, a bind mount of the namespace file;
//   - host end of NIC n: "hearth" + 8 hex digits of sha256(ID) + n;
//   - VLAN bridge: "hearthv" + the first 8 hex digits of the VLAN UUID.
package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Sentinel errors; the errors returned wrap them.
var (
	// ErrInvalid marks bad input (an id, MAC, address or bridge name).
	ErrInvalid = errors.New("invalid network configuration")
	// ErrNotFound marks a guest or NIC that is not set up.
	ErrNotFound = errors.New("network not found")
	// ErrConflict marks a host device name already used by another guest id.
	ErrConflict = errors.New("network device conflict")
)

// NIC is one guest network interface (package vmm aliases this type).
type NIC struct {
	Index   int          // 0 = public (nic:0), 1 = VLAN (nic:1); becomes ethINDEX in the guest
	MAC     string       // aa:bb:cc:dd:ee:ff
	Address netip.Prefix // guest address with prefix length; invalid (zero) = no address
	Gateway netip.Addr   // zero = no default route
	Bridge  string       // host bridge to join (public bridge, or the VLAN's bridge)
}

// NICCounters are a NIC's traffic as seen by the GUEST (package vmm aliases this type).
type NICCounters struct{ RxBytes, RxPackets, TxBytes, TxPackets uint64 }

// Option configures a Switch.
type Option func(*Switch)

// WithBridge names the public bridge (default "hearth0").
func WithBridge(name string) Option { return func(m *Switch) { m.bridge = name } }

// WithGateway sets the public bridge's address and prefix, i.e. the guests'
// gateway and Hearth's subnet (default 10.73.0.1/16).
func WithGateway(p netip.Prefix) Option { return func(m *Switch) { m.gateway = p } }

// WithNAT turns outbound NAT for the subnet on (default off).
func WithNAT(on bool) Option { return func(m *Switch) { m.nat = on } }

// WithLogger sets where the Switch logs (default: nowhere).
func WithLogger(logf func(format string, args ...any)) Option {
	return func(m *Switch) { m.logf = logf }
}

// Switch wires guests to Hearth's bridges: it sets up and tears down guest networks. It keeps no state a
// restart would lose: devices and namespaces are found again by name.
type Switch struct {
	dir     string // DATA/run/netns
	bridge  string
	gateway netip.Prefix
	nat     bool
	logf    func(string, ...any)

	// forwardOn: New turned ip_forward on, so Close turns it off again.
	forwardOn bool

	mu    sync.Mutex      // serialises changes, so a bridge is never deleted while a port joins it
	vlans map[string]bool // VLAN bridges used through this Switch, for Close
}

// Public bridge defaults (appliance spec §5).
const (
	DefaultBridge  = "hearth0"
	DefaultGateway = "10.73.0.1/16"
)

// New prepares the public bridge with the gateway address (and NAT when
// enabled, or removes a NAT left by an earlier run when not) and returns a
// Switch keeping namespaces under dataDir/run/netns.
func New(dataDir string, opts ...Option) (_ *Switch, err error) {
	m := &Switch{
		dir:     filepath.Join(dataDir, "run", "netns"),
		bridge:  DefaultBridge,
		gateway: netip.MustParsePrefix(DefaultGateway),
		logf:    func(string, ...any) {},
		vlans:   map[string]bool{},
	}
	for _, opt := range opts {
		opt(m)
	}
	if !validIfName(m.bridge) || !strings.HasPrefix(m.bridge, prefix) || isVLANBridge(m.bridge) {
		return nil, fmt.Errorf("%w: public bridge name %q (want %q and up to 9 more characters, not starting %q)", ErrInvalid, m.bridge, prefix, vlanPrefix)
	}
	g := m.gateway
	if !g.IsValid() || !g.Addr().Is4() || g.Bits() < 8 || g.Bits() > 30 || g.Addr() == g.Masked().Addr() {
		return nil, fmt.Errorf("%w: gateway %s (want an IPv4 host address with a /8 to /30 prefix, e.g. %s)", ErrInvalid, g, DefaultGateway)
	}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("namespace directory: %w", err)
	}
	ctx := context.Background()
	br, created, err := ensureBridge(ctx, m.bridge)
	if err != nil {
		return nil, err
	}
	if created {
		defer func() {
			if err != nil {
				m.logIf(deleteBridge(ctx, m.bridge))
			}
		}()
	}
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipNet(g)}); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", g, m.bridge, err)
	}
	m.dropOtherAddresses(br)
	if !m.nat {
		m.logIf(syncRules(ctx, m.bridge, nil))
		m.logf("network: public bridge %s %s, outbound NAT off", m.bridge, g)
		return m, nil
	}
	forward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return nil, fmt.Errorf("read ip_forward: %w", err)
	}
	if strings.TrimSpace(string(forward)) == "0" {
		if err := setSysctl("ipv4/ip_forward", "1"); err != nil {
			return nil, err
		}
		m.forwardOn = true
		defer func() {
			if err != nil {
				m.logIf(setSysctl("ipv4/ip_forward", "0"))
			}
		}()
	}
	if err := syncRules(ctx, m.bridge, natRules(m.bridge, g.Masked())); err != nil {
		return nil, fmt.Errorf("outbound NAT: %w", err)
	}
	m.logf("network: public bridge %s %s, outbound NAT for %s", m.bridge, g, g.Masked())
	return m, nil
}

// dropOtherAddresses removes the addresses an earlier run with another
// subnet gave the public bridge, whose routes would otherwise linger.
func (m *Switch) dropOtherAddresses(br netlink.Link) {
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		m.logf("network: addresses of %s: %v", m.bridge, err)
		return
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); a.IP.Equal(m.gateway.Addr().AsSlice()) && ones == m.gateway.Bits() {
			continue
		}
		m.logf("network: removing old address %s from %s", a.IPNet, m.bridge)
		m.logIf(netlink.AddrDel(br, &a))
	}
}

func (m *Switch) logIf(err error) {
	if err != nil {
		m.logf("network: %v", err)
	}
}

func (m *Switch) netnsPath(id string) string { return filepath.Join(m.dir, id) }

// Setup creates the guest's network namespace with one veth per NIC joined
// to its bridge (a missing VLAN bridge is created) and configured inside:
// ethINDEX with the NIC's MAC and address, the default route via the
// gateway, lo up. It returns the namespace path for the OCI spec. Calling
// it again for a set-up id returns the same path; on failure whatever this
// call created is removed again.
func (m *Switch) Setup(ctx context.Context, id string, nics []NIC) (_ string, err error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	macs, err := m.checkNICs(nics)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				m.logIf(undo[i]())
			}
		}
	}()
	path := m.netnsPath(id)
	if !isNetns(path) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("stale namespace file: %w", err)
		}
		if err := createNetns(path); err != nil {
			return "", err
		}
		undo = append(undo, func() error { return removeNetns(path) })
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return "", fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer ns.Close()
	inside, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("netlink in namespace %s: %w", path, err)
	}
	defer inside.Close()

	for i, nic := range nics {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := m.setupNIC(ctx, inside, ns, id, nic, macs[i], &undo); err != nil {
			return "", fmt.Errorf("guest %s nic:%d: %w", id, nic.Index, err)
		}
	}
	lo, err := inside.LinkByName("lo")
	if err == nil {
		err = inside.LinkSetUp(lo)
	}
	if err != nil {
		return "", fmt.Errorf("guest %s loopback: %w", id, err)
	}
	return path, nil
}

func (m *Switch) checkNICs(nics []NIC) ([]net.HardwareAddr, error) {
	macs := make([]net.HardwareAddr, len(nics))
	seen := map[int]bool{}
	for i, nic := range nics {
		if nic.Index < 0 || nic.Index >= maxNICs || seen[nic.Index] {
			return nil, fmt.Errorf("%w: NIC index %d (want distinct indices 0 to %d)", ErrInvalid, nic.Index, maxNICs-1)
		}
		seen[nic.Index] = true
		mac, err := parseMAC(nic.MAC)
		if err != nil {
			return nil, fmt.Errorf("nic:%d: %w", nic.Index, err)
		}
		macs[i] = mac
		if nic.Bridge != m.bridge && !(isVLANBridge(nic.Bridge) && validIfName(nic.Bridge)) {
			return nil, fmt.Errorf("%w: nic:%d bridge %q (want %q or a VLAN bridge %q+8 hex digits)", ErrInvalid, nic.Index, nic.Bridge, m.bridge, vlanPrefix)
		}
		if nic.Gateway.IsValid() && !nic.Address.IsValid() {
			return nil, fmt.Errorf("%w: nic:%d has gateway %s but no address", ErrInvalid, nic.Index, nic.Gateway)
		}
		if nic.Gateway.IsValid() && (!nic.Address.Contains(nic.Gateway) || nic.Address.Addr() == nic.Gateway) {
			return nil, fmt.Errorf("%w: nic:%d gateway %s is not another address of the NIC's subnet %s", ErrInvalid, nic.Index, nic.Gateway, nic.Address)
		}
	}
	return macs, nil
}

// setupNIC makes (or completes) one veth pair, adding to undo what it creates.
func (m *Switch) setupNIC(ctx context.Context, inside *netlink.Handle, ns netns.NsHandle, id string, nic NIC, mac net.HardwareAddr, undo *[]func() error) error {
	br, created, err := ensureBridge(ctx, nic.Bridge)
	if err != nil {
		return err
	}
	if created {
		*undo = append(*undo, func() error { return deleteBridge(context.WithoutCancel(ctx), nic.Bridge) })
	}
	if created && nic.Bridge == m.bridge { // someone deleted it under us
		m.logf("network: public bridge %s was gone; created it again", m.bridge)
		if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipNet(m.gateway)}); err != nil {
			return fmt.Errorf("address %s on %s: %w", m.gateway, m.bridge, err)
		}
	}
	if isVLANBridge(nic.Bridge) {
		m.vlans[nic.Bridge] = true
	}
	name, owner, guestName := hostVeth(id, nic.Index), vethOwner(id, nic.Index), fmt.Sprintf("eth%d", nic.Index)
	host, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		if host.Attrs().Alias != owner {
			return fmt.Errorf("%w: %s belongs to %q", ErrConflict, name, host.Attrs().Alias)
		}
	case errors.As(err, &netlink.LinkNotFoundError{}):
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: name},
			PeerName:         guestName,
			PeerHardwareAddr: mac,
			PeerNamespace:    netlink.NsFd(int(ns)),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth %s: %w", name, err)
		}
		*undo = append(*undo, func() error { return netlink.LinkDel(veth) })
		// The kernel ignores an alias given at creation.
		if err := netlink.LinkSetAlias(veth, owner); err != nil {
			return fmt.Errorf("alias of %s: %w", name, err)
		}
		// Before it is up, so that the host sends no IPv6 chatter to the guest.
		if err := setSysctl("ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil {
			return err
		}
		if host, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("look up veth %s: %w", name, err)
		}
	default:
		return fmt.Errorf("look up veth %s: %w", name, err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return fmt.Errorf("join %s to %s: %w", name, nic.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}

	guest, err := inside.LinkByName(guestName)
	if err != nil {
		return fmt.Errorf("%w: %s has no %s in the guest's namespace: %v", ErrConflict, name, guestName, err)
	}
	if !bytes.Equal(guest.Attrs().HardwareAddr, mac) {
		if err := inside.LinkSetHardwareAddr(guest, mac); err != nil {
			return fmt.Errorf("MAC %s on %s: %w", mac, guestName, err)
		}
	}
	if nic.Address.IsValid() {
		if err := inside.AddrReplace(guest, &netlink.Addr{IPNet: ipNet(nic.Address)}); err != nil {
			return fmt.Errorf("address %s on %s: %w", nic.Address, guestName, err)
		}
	}
	if err := inside.LinkSetUp(guest); err != nil {
		return fmt.Errorf("bring up %s: %w", guestName, err)
	}
	if nic.Gateway.IsValid() {
		route := &netlink.Route{LinkIndex: guest.Attrs().Index, Gw: nic.Gateway.AsSlice()}
		if err := inside.RouteReplace(route); err != nil {
			return fmt.Errorf("default route via %s: %w", nic.Gateway, err)
		}
	}
	return nil
}

// Teardown removes the guest's veths and namespace file, and a VLAN bridge
// whose last port went with them. Idempotent; it works for guests set up by
// an earlier Hearth process.
func (m *Switch) Teardown(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	links, err := listLinks()
	if err != nil {
		return err
	}
	var errs []error
	bridges := map[int]bool{}
	stem := vethStem(id)
	for _, l := range links {
		a := l.Attrs()
		if len(a.Name) != len(stem)+1 || !strings.HasPrefix(a.Name, stem) {
			continue
		}
		if !strings.HasPrefix(a.Alias, ownerPrefix(id)) {
			m.logf("network: teardown %s: keeping %s, it belongs to %q", id, a.Name, a.Alias)
			continue
		}
		bridges[a.MasterIndex] = true
		if err := netlink.LinkDel(l); err != nil && !errors.As(err, &netlink.LinkNotFoundError{}) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", a.Name, err))
		}
	}
	errs = append(errs, removeNetns(m.netnsPath(id)))
	for index := range bridges {
		br, err := netlink.LinkByIndex(index)
		if err != nil || !isVLANBridge(br.Attrs().Name) {
			continue
		}
		errs = append(errs, m.deleteIdleVLAN(ctx, br.Attrs().Name))
	}
	return errors.Join(errs...)
}

// deleteIdleVLAN removes a VLAN bridge that has no port left.
func (m *Switch) deleteIdleVLAN(ctx context.Context, name string) error {
	busy, err := hasPorts(name)
	if err != nil || busy {
		return err
	}
	delete(m.vlans, name)
	return deleteBridge(ctx, name)
}

// Counters reports NIC index of guest id as the guest sees it: what the
// host end transmits, the guest receives.
func (m *Switch) Counters(id string, index int) (NICCounters, error) {
	if err := checkID(id); err != nil {
		return NICCounters{}, err
	}
	name := hostVeth(id, index)
	l, err := netlink.LinkByName(name)
	if err != nil || l.Attrs().Alias != vethOwner(id, index) || l.Attrs().Statistics == nil {
		return NICCounters{}, fmt.Errorf("%w: guest %s nic:%d (%s)", ErrNotFound, id, index, name)
	}
	s := l.Attrs().Statistics
	return NICCounters{RxBytes: s.TxBytes, RxPackets: s.TxPackets, TxBytes: s.RxBytes, TxPackets: s.RxPackets}, nil
}

// Close removes the VLAN bridges used through this Switch that have no
// port left, and, when no guest uses the public bridge, the bridge with its
// NAT rules (turning ip_forward off again if New turned it on). Running
// guests keep their network across a Hearth restart.
func (m *Switch) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx := context.Background()
	var errs []error
	for name := range m.vlans {
		errs = append(errs, m.deleteIdleVLAN(ctx, name))
	}
	busy, err := hasPorts(m.bridge)
	if err != nil || busy {
		if busy {
			m.logf("network: guests still use %s: keeping it and its rules", m.bridge)
		}
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, syncRules(ctx, m.bridge, nil))
	if m.forwardOn {
		errs = append(errs, setSysctl("ipv4/ip_forward", "0"))
		m.forwardOn = false
	}
	errs = append(errs, deleteBridge(ctx, m.bridge))
	return errors.Join(errs...)
}

// Bridge is the public bridge's name.
func (m *Switch) Bridge() string { return m.bridge }

// Package network wires each Hearth guest's NICs into the network namespace
// its runtime made for it (runc creates a new one with the guest's init, owned
// by the guest's user namespace) and joins them to a host bridge: the public
// bridge (default hearth0 for the instance "hearth", the gateway of Hearth's subnet, optionally NATed to
// the uplink) or a per-VLAN bridge that carries layer-2 traffic between the
// guests of one VLAN and nothing else. Attach runs between the creation of
// the guest's init and its start; the guest's ends of the veths vanish with
// its namespace, and Detach removes the host ends should they remain.
//
// Everything it creates on the host carries a "hearth" prefix and is derived
// from the Hearth instance and the guest id or VLAN (see Names), so a
// restarted Hearth finds (and tears down) what an earlier process created
// without keeping any state of its own, and never what another Hearth on
// the host did:
//
//   - host end of NIC n: "hearth" + 8 hex digits of sha256(ID) + n;
//   - VLAN bridge: "hearthv" + the first 8 hex digits of the VLAN UUID
//     (both hashed with the instance's name for an instance but "hearth").
//
// A DHCPv4 server (github.com/insomniacslk/dhcp) listens on the public
// bridge alone (a socket bound to it with SO_BINDTODEVICE, never to every
// interface) from New to Close. It answers only the MACs of the NICs Attach
// joined to that bridge, each with its NIC's address, subnet mask, router
// (the NIC's gateway), the DNS servers (WithDNS, default the host's
// reachable resolvers), the NIC's host name and the lease time, with the
// bridge's gateway address as server identifier; anyone else gets no
// answer, a REQUEST for another address a NAK. VLAN bridges get no DHCP, as
// on ElasticHosts. The address is configured in the guest's namespace as
// well, for images without a DHCP client, but for a full VM's NIC, whose
// guest end is bridged to the tap of QEMU's card (tap.go): the VM asks DHCP
// itself, or is configured with its address. Attach registers a guest's leases,
// Detach drops them, and Adopt registers again those of a guest an earlier
// Hearth attached (from the NICs its backend recorded).
//
// Filtering (filter.go, rules.go) goes through nftables over netlink
// (github.com/google/nftables), in two tables of the instance's name
// (WithFilterTable): per NIC, anti-spoofing on its host veth (bridge
// family) and its nic:N:firewall:* keys on the traffic to it (inet
// family, forward, where br_netfilter gives bridged traffic conntrack);
// per bridge, the host closed but for DHCP, ICMP and, if WithGuestAPI
// opens it, the API port (inet family, input). A NIC's rules are loaded
// before its veth is up, replaced by SetFirewall, loaded again by Adopt
// and removed by Detach (found by the NIC's owner tag as their comment);
// they outlive a stopped Hearth with its guests. The iptables rules of
// firewall.go (VLAN isolation from routing, NAT) stay as they were.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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
	// Hostname is the DHCP host name option of a NIC on the public bridge:
	// the guest's host name, one DNS label; "" = none.
	Hostname string
	// Firewall filters the traffic to the NIC (nic:N:firewall:*).
	Firewall Firewall `json:",omitzero"`
	// Model is nic:N:model, the card a full VM emulates on the NIC
	// (e1000, rtl8139, virtio); a container ignores it.
	Model string `json:",omitempty"`
	// Tap makes the NIC a full VM's: Attach bridges its guest end to a
	// tap device for the emulated card instead of configuring it (tap.go).
	Tap bool `json:",omitempty"`
}

// NICCounters are a NIC's traffic as seen by the GUEST (package vmm aliases this type).
type NICCounters struct{ RxBytes, RxPackets, TxBytes, TxPackets uint64 }

// Option configures a Switch.
type Option func(*Switch)

// WithBridge names the public bridge (default: the instance's, see Names).
func WithBridge(name string) Option { return func(m *Switch) { m.bridge = name } }

// WithInstance names the Hearth instance whose devices the Switch makes and
// finds (default "hearth"): see Names.
func WithInstance(name string) Option { return func(m *Switch) { m.names = NamesOf(name) } }

// WithGateway sets the public bridge's address and prefix, i.e. the guests'
// gateway and Hearth's subnet (default 10.73.0.1/16).
func WithGateway(p netip.Prefix) Option { return func(m *Switch) { m.gateway = p } }

// WithNAT turns outbound NAT for the subnet on (default off).
func WithNAT(on bool) Option { return func(m *Switch) { m.nat = on } }

// WithLogger sets where the Switch logs (default: nowhere).
func WithLogger(log *slog.Logger) Option { return func(m *Switch) { m.log = log } }

// WithFilterTable names the instance's nftables tables, one of the bridge
// and one of the inet family (default DefaultFilterTable). Two Hearths on
// one host need two names.
func WithFilterTable(name string) Option { return func(m *Switch) { m.filter.name = name } }

// WithGuestAPI opens TCP port port of the host to guests, which reach the
// host otherwise only for DHCP and ICMP (default: 0, closed).
func WithGuestAPI(port uint16) Option { return func(m *Switch) { m.filter.apiPort = port } }

// WithDNS sets the DNS servers DHCP hands guests: nil = HostResolvers (the
// default), empty = none.
func WithDNS(servers []netip.Addr) Option {
	return func(m *Switch) { m.dhcp.dns = servers }
}

// WithLeaseTime sets how long a DHCP lease lasts (default DefaultLeaseTime).
func WithLeaseTime(d time.Duration) Option {
	return func(m *Switch) { m.dhcp.leaseTime = d }
}

// Switch wires guests to Hearth's bridges: it attaches and detaches guest
// NICs and answers DHCP on the public bridge. It keeps no state a restart
// would lose but the DHCP leases, which Adopt registers again: devices are
// found again by name.
type Switch struct {
	names   Names
	bridge  string
	gateway netip.Prefix
	nat     bool
	log     *slog.Logger
	dhcp    *dhcpServer
	filter  filter

	// forwardOn: New turned ip_forward on, so Close turns it off again.
	forwardOn bool

	mu    sync.Mutex      // serialises changes, so a bridge is never deleted while a port joins it
	vlans map[string]bool // VLAN bridges used through this Switch, for Close
}

// Public bridge defaults (appliance spec §5).
const (
	DefaultBridge  = "hearth0" // of the instance "hearth"
	DefaultGateway = "10.73.0.1/16"
)

// New prepares the public bridge with the gateway address (and NAT when
// enabled, or removes a NAT left by an earlier run when not) and starts
// answering DHCP on it.
func New(opts ...Option) (_ *Switch, err error) {
	m := &Switch{
		gateway: netip.MustParsePrefix(DefaultGateway),
		log:     slog.New(slog.DiscardHandler),
		dhcp:    &dhcpServer{leaseTime: DefaultLeaseTime, leases: map[string]lease{}},
		vlans:   map[string]bool{},
		filter:  filter{name: DefaultFilterTable},
	}
	dnsSet := false
	for _, opt := range opts {
		opt(m)
		dnsSet = dnsSet || m.dhcp.dns != nil
	}
	if !dnsSet {
		m.dhcp.dns = HostResolvers()
	}
	if m.bridge == "" {
		m.bridge = m.names.PublicBridge()
	}
	m.dhcp.bridge, m.dhcp.serverID, m.dhcp.log = m.bridge, m.gateway.Addr(), m.log
	if m.dhcp.leaseTime < time.Minute || m.dhcp.leaseTime > 365*24*time.Hour {
		return nil, fmt.Errorf("%w: DHCP lease time %s (want a minute to a year)", ErrInvalid, m.dhcp.leaseTime)
	}
	for _, a := range m.dhcp.dns {
		if err := checkDNS(a); err != nil {
			return nil, err
		}
	}
	if !validIfName(m.bridge) || !strings.HasPrefix(m.bridge, prefix) || isVLANBridge(m.bridge) {
		return nil, fmt.Errorf("%w: public bridge name %q (want %q and up to 9 more characters, not starting %q)", ErrInvalid, m.bridge, prefix, vlanPrefix)
	}
	if !tableName.MatchString(m.filter.name) {
		return nil, fmt.Errorf("%w: nftables table name %q (want letters, digits, '_', '-', at most 64)", ErrInvalid, m.filter.name)
	}
	g := m.gateway
	if !g.IsValid() || !g.Addr().Is4() || g.Bits() < 8 || g.Bits() > 30 || g.Addr() == g.Masked().Addr() {
		return nil, fmt.Errorf("%w: gateway %s (want an IPv4 host address with a /8 to /30 prefix, e.g. %s)", ErrInvalid, g, DefaultGateway)
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
	if err := m.own(br); err != nil {
		return nil, err
	}
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipNet(g)}); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", g, m.bridge, err)
	}
	m.dropOtherAddresses(br)
	// Before the first guest can send: a restart keeps the rules of the
	// guests still running.
	if err := m.filter.setup(m.bridge); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_, ferr := m.filter.removeIfIdle()
			m.logIf(ferr)
		}
	}()
	m.bridgeNetfilter()
	m.startDHCP()
	defer func() {
		if err != nil {
			m.dhcp.stop()
		}
	}()
	if !m.nat {
		m.logIf(syncRules(ctx, m.bridge, nil))
		m.log.Info("network: public bridge", "bridge", m.bridge, "ip", g, "nat", false)
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
	m.log.Info("network: public bridge", "bridge", m.bridge, "ip", g, "nat", g.Masked())
	return m, nil
}

// own marks the public bridge as the instance's in its alias, refusing one
// another instance marked (two Hearths given one --bridge): each would take
// the other's gateway address away. A bridge from before instances has no
// mark and is taken.
func (m *Switch) own(br netlink.Link) error {
	owner := m.names.bridgeOwner()
	switch alias := br.Attrs().Alias; alias {
	case owner:
		return nil
	case "":
		if err := netlink.LinkSetAlias(br, owner); err != nil {
			return fmt.Errorf("mark %s as the instance's: %w", m.bridge, err)
		}
		return nil
	default:
		return fmt.Errorf("%w: public bridge %s belongs to another Hearth (%s); give each Hearth its own --bridge", ErrConflict, m.bridge, alias)
	}
}

// startDHCP (re)starts the DHCP server on the public bridge. Without it
// guests still have their address, configured in their namespace, so a
// failure (another DHCP server holding port 67 on every interface, say)
// is logged, not fatal.
func (m *Switch) startDHCP() {
	if err := m.dhcp.start(); err != nil {
		m.log.Error("network: no DHCP on the public bridge; guests keep the address configured in their namespace", "bridge", m.bridge, "err", err)
	}
}

// dropOtherAddresses removes the addresses an earlier run with another
// subnet gave the public bridge, whose routes would otherwise linger.
func (m *Switch) dropOtherAddresses(br netlink.Link) {
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		m.log.Warn("network: addresses of the public bridge", "bridge", m.bridge, "err", err)
		return
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); a.IP.Equal(m.gateway.Addr().AsSlice()) && ones == m.gateway.Bits() {
			continue
		}
		m.log.Info("network: removing an old address from the public bridge", "bridge", m.bridge, "ip", a.IPNet)
		m.logIf(netlink.AddrDel(br, &a))
	}
}

func (m *Switch) logIf(err error) {
	if err != nil {
		m.log.Warn("network: " + err.Error())
	}
}

// Attach wires guest id's NICs into the network namespace of its init, pid:
// per NIC a veth whose guest end, ethINDEX with the NIC's MAC, is created
// in that namespace and whose host end joins the NIC's bridge (a missing
// VLAN bridge is created). Inside it configures the address and the default
// route via the gateway (host root may: its user namespace is the
// ancestor of the guest's) and brings lo up; a Tap NIC's guest end is
// bridged to the tap device TapName(Index) instead, owned by the guest's
// root (tap.go). NICs on the public bridge with an address get it (and
// their Hostname) from DHCP too. Call it after the
// runtime created the init and before it runs. A host end left by an earlier
// incarnation of the guest (whose namespace is still going away) is
// replaced; on failure whatever this call created is removed again.
func (m *Switch) Attach(ctx context.Context, id string, pid uint32, nics []NIC) (err error) {
	if err := checkID(id); err != nil {
		return err
	}
	macs, err := m.checkNICs(nics)
	if err != nil {
		return err
	}
	ns, err := guestNamespace(pid)
	if err != nil {
		return fmt.Errorf("guest %s: %w", id, err)
	}
	defer ns.Close()
	inside, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("guest %s: netlink in its namespace: %w", id, err)
	}
	defer inside.Close()

	var root owner
	if slices.ContainsFunc(nics, func(n NIC) bool { return n.Tap }) {
		if root, err = guestRoot(pid); err != nil {
			return fmt.Errorf("guest %s: %w", id, err)
		}
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
	for i, nic := range nics {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.attachNIC(ctx, inside, ns, id, nic, macs[i], root, &undo); err != nil {
			return fmt.Errorf("guest %s nic:%d: %w", id, nic.Index, err)
		}
	}
	lo, err := inside.LinkByName("lo")
	if err == nil {
		err = inside.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("guest %s loopback: %w", id, err)
	}
	m.dhcp.register(id, nics, macs)
	return nil
}

// guestNamespace opens the network namespace of process pid, refusing the
// host's own: a guest that shares it would have its NICs made on the host.
func guestNamespace(pid uint32) (netns.NsHandle, error) {
	ns, err := netns.GetFromPid(int(pid))
	if err != nil {
		return ns, fmt.Errorf("%w: network namespace of process %d: %v", ErrNotFound, pid, err)
	}
	var guest, host unix.Stat_t
	if err := unix.Fstat(int(ns), &guest); err != nil {
		ns.Close()
		return ns, fmt.Errorf("network namespace of process %d: %w", pid, err)
	}
	if unix.Stat("/proc/self/ns/net", &host) == nil && guest.Dev == host.Dev && guest.Ino == host.Ino {
		ns.Close()
		return ns, fmt.Errorf("%w: process %d has no network namespace of its own", ErrInvalid, pid)
	}
	return ns, nil
}

// Adopt registers the DHCP leases of a guest an earlier Hearth attached,
// which kept running across the restart, from the NICs its backend
// recorded, and loads its NICs' filter rules again (which the tables kept
// unless the host lost them: this converges either way).
func (m *Switch) Adopt(id string, nics []NIC) error {
	if err := checkID(id); err != nil {
		return err
	}
	macs, err := m.checkNICs(nics)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, nic := range nics {
		if err := m.filterPort(id, nic, macs[i]); err != nil {
			return fmt.Errorf("guest %s nic:%d: %w", id, nic.Index, err)
		}
		if isVLANBridge(nic.Bridge) { // so that Detach and Close remove it once idle
			m.vlans[nic.Bridge] = true
		}
	}
	m.dhcp.register(id, nics, macs)
	return nil
}

// SetFirewall changes the firewall of a running guest's NIC at once; nic is
// the NIC as attached, with the new Firewall.
func (m *Switch) SetFirewall(id string, nic NIC) error {
	if err := checkID(id); err != nil {
		return err
	}
	macs, err := m.checkNICs([]NIC{nic})
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	name := m.names.hostVeth(id, nic.Index)
	if l, err := netlink.LinkByName(name); err != nil || l.Attrs().Alias != m.names.vethOwner(id, nic.Index) {
		return fmt.Errorf("%w: guest %s nic:%d (%s)", ErrNotFound, id, nic.Index, name)
	}
	return m.filterPort(id, nic, macs[0])
}

// filterPort loads the rules of one NIC and closes the host to its bridge.
// Tables someone removed (nft flush ruleset) are made again first.
func (m *Switch) filterPort(id string, nic NIC, mac net.HardwareAddr) error {
	load := func() error {
		if err := m.filter.closeHost(nic.Bridge); err != nil {
			return err
		}
		return m.filter.setPort(m.names.vethOwner(id, nic.Index), m.names.hostVeth(id, nic.Index), nic, mac, nic.Bridge == m.bridge)
	}
	err := load()
	if err != nil && m.filter.setup(m.bridge) == nil {
		m.log.Warn("network: filter tables made again", "table", m.filter.name, "after", err)
		err = load()
	}
	return err
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
		if nic.Hostname != "" && !validHostname(nic.Hostname) {
			return nil, fmt.Errorf("%w: nic:%d hostname %q (want one DNS label: letters, digits, inner '-', at most 63)", ErrInvalid, nic.Index, nic.Hostname)
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

// attachNIC makes one veth pair, adding to undo what it creates (what it
// makes inside the guest's namespace goes with the namespace).
func (m *Switch) attachNIC(ctx context.Context, inside *netlink.Handle, ns netns.NsHandle, id string, nic NIC, mac net.HardwareAddr, root owner, undo *[]func() error) error {
	br, created, err := ensureBridge(ctx, nic.Bridge)
	if err != nil {
		return err
	}
	if created {
		*undo = append(*undo, func() error { return deleteBridge(context.WithoutCancel(ctx), nic.Bridge) })
	}
	if created && nic.Bridge == m.bridge { // someone deleted it under us
		m.log.Warn("network: the public bridge was gone; created it again", "bridge", m.bridge)
		m.logIf(m.own(br))
		if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipNet(m.gateway)}); err != nil {
			return fmt.Errorf("address %s on %s: %w", m.gateway, m.bridge, err)
		}
		m.startDHCP() // the old socket was bound to the bridge that went
	}
	if isVLANBridge(nic.Bridge) {
		m.vlans[nic.Bridge] = true
	}
	name, owner, guestName := m.names.hostVeth(id, nic.Index), m.names.vethOwner(id, nic.Index), fmt.Sprintf("eth%d", nic.Index)
	old, err := netlink.LinkByName(name)
	switch {
	case err == nil && old.Attrs().Alias != owner:
		return fmt.Errorf("%w: %s belongs to %q", ErrConflict, name, old.Attrs().Alias)
	case err == nil:
		// The guest's earlier namespace is still being freed (the kernel
		// does that after its last process is gone).
		if err := netlink.LinkDel(old); err != nil && !errors.As(err, &netlink.LinkNotFoundError{}) {
			return fmt.Errorf("delete a leftover %s: %w", name, err)
		}
	case !errors.As(err, &netlink.LinkNotFoundError{}):
		return fmt.Errorf("look up veth %s: %w", name, err)
	}
	guestMAC := mac
	if nic.Tap {
		guestMAC = randomHardwareAddr()
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: name},
		PeerName:         guestName,
		PeerHardwareAddr: guestMAC,
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
	host, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up veth %s: %w", name, err)
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("join %s to %s: %w", name, nic.Bridge, err)
	}
	// Filtered before it carries a frame.
	if err := m.filterPort(id, nic, mac); err != nil {
		return err
	}
	*undo = append(*undo, func() error { return m.filter.dropPorts(owner) })
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}

	guest, err := inside.LinkByName(guestName)
	if err != nil {
		return fmt.Errorf("%s in the guest's namespace: %w", guestName, err)
	}
	if nic.Tap {
		return bridgeTap(ns, inside, guest, nic.Index, root)
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

// Detach drops the guest's DHCP leases and removes the host ends of its
// veths that remain (the guest's namespace takes them along when it goes)
// and the VLAN bridges this Switch used (Attach, Adopt) that have no port
// left. Idempotent; it works for guests attached by an earlier Hearth
// process.
func (m *Switch) Detach(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dhcp.unregister(id)

	// Its veths may have gone with its namespace already; its rules not.
	errs := []error{m.filter.dropPorts(m.names.ownerPrefix(id))}
	links, err := listLinks()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	bridges := map[int]bool{}
	stem := m.names.vethStem(id)
	for _, l := range links {
		a := l.Attrs()
		if len(a.Name) != len(stem)+1 || !strings.HasPrefix(a.Name, stem) {
			continue
		}
		if !strings.HasPrefix(a.Alias, m.names.ownerPrefix(id)) {
			m.log.Warn("network: detach keeps a veth of another guest", "server", id, "veth", a.Name, "owner", a.Alias)
			continue
		}
		bridges[a.MasterIndex] = true
		if err := netlink.LinkDel(l); err != nil && !errors.As(err, &netlink.LinkNotFoundError{}) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", a.Name, err))
		}
	}
	for index := range bridges {
		br, err := netlink.LinkByIndex(index)
		if err != nil || !isVLANBridge(br.Attrs().Name) {
			continue
		}
		m.vlans[br.Attrs().Name] = true
	}
	// A guest that ended took its veths along before Detach: its VLAN
	// bridges are found among those this Switch used.
	for name := range m.vlans {
		errs = append(errs, m.deleteIdleVLAN(ctx, name))
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
	return errors.Join(deleteBridge(ctx, name), m.filter.forgetBridge(name))
}

// Counters reports NIC index of guest id as the guest sees it: what the
// host end transmits, the guest receives.
func (m *Switch) Counters(id string, index int) (NICCounters, error) {
	if err := checkID(id); err != nil {
		return NICCounters{}, err
	}
	name := m.names.hostVeth(id, index)
	l, err := netlink.LinkByName(name)
	if err != nil || l.Attrs().Alias != m.names.vethOwner(id, index) || l.Attrs().Statistics == nil {
		return NICCounters{}, fmt.Errorf("%w: guest %s nic:%d (%s)", ErrNotFound, id, index, name)
	}
	s := l.Attrs().Statistics
	return NICCounters{RxBytes: s.TxBytes, RxPackets: s.TxPackets, TxBytes: s.RxBytes, TxPackets: s.RxPackets}, nil
}

// Close stops the DHCP server and removes the VLAN bridges used through
// this Switch that have no port left, and, when no guest uses the public
// bridge, the bridge with its NAT rules (turning ip_forward off again if New
// turned it on). Running guests keep their network across a Hearth restart.
func (m *Switch) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dhcp.stop()
	ctx := context.Background()
	var errs []error
	for name := range m.vlans {
		errs = append(errs, m.deleteIdleVLAN(ctx, name))
	}
	// The rules stay as long as a guest has some: guests outlive Hearth.
	if removed, err := m.filter.removeIfIdle(); err != nil || !removed {
		errs = append(errs, err)
		m.log.Info("network: guests still run: keeping their filter rules", "table", m.filter.name)
	}
	busy, err := hasPorts(m.bridge)
	if err != nil || busy {
		if busy {
			m.log.Info("network: guests still use the public bridge: keeping it and its rules", "bridge", m.bridge)
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

// bridgeNetfilter makes the bridges hand IPv4 and IPv6 to the inet hooks
// (br_netfilter), where conntrack lets the firewall keys tell a guest's
// replies from new connections. Without it, the keys stop only what is
// routed to guests, not what other guests on the bridge send them.
func (m *Switch) bridgeNetfilter() {
	for _, key := range []string{"bridge/bridge-nf-call-iptables", "bridge/bridge-nf-call-ip6tables"} {
		v, err := os.ReadFile("/proc/sys/net/" + key)
		if err != nil {
			m.log.Error("network: no br_netfilter: firewall keys do not filter traffic between guests of one bridge", "err", err)
			return
		}
		if strings.TrimSpace(string(v)) == "1" {
			continue
		}
		if err := setSysctl(key, "1"); err != nil {
			m.log.Error("network: firewall keys do not filter traffic between guests of one bridge", "err", err)
			continue
		}
		m.log.Info("network: turned on " + key + " for the firewall keys")
	}
}

// Bridge is the public bridge's name.
func (m *Switch) Bridge() string { return m.bridge }

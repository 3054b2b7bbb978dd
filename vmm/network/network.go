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
	"context"
	"errors"
	"net/netip"
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

// Option configures a Manager.
type Option func(*Manager)

// WithBridge names the public bridge (default "hearth0").
func WithBridge(name string) Option { return func(m *Manager) { m.bridge = name } }

// WithGateway sets the public bridge's address and prefix, i.e. the guests'
// gateway and Hearth's subnet (default 10.73.0.1/16).
func WithGateway(p netip.Prefix) Option { return func(m *Manager) { m.gateway = p } }

// WithNAT turns outbound NAT for the subnet on (default off).
func WithNAT(on bool) Option { return func(m *Manager) { m.nat = on } }

// WithLogger sets where the Manager logs (default: nowhere).
func WithLogger(logf func(format string, args ...any)) Option {
	return func(m *Manager) { m.logf = logf }
}

// Manager sets up and tears down guest networks.
type Manager struct {
	dir     string // DATA/run/netns
	bridge  string
	gateway netip.Prefix
	nat     bool
	logf    func(string, ...any)
}

// New prepares the public bridge (and NAT when enabled) and returns a Manager
// keeping namespaces under dataDir/run/netns.
func New(dataDir string, opts ...Option) (*Manager, error) { panic("todo") }

// Setup creates the guest's network namespace with one veth per NIC joined to
// its bridge and configured inside; it returns the namespace path.
func (m *Manager) Setup(ctx context.Context, id string, nics []NIC) (string, error) { panic("todo") }

// Teardown removes the guest's namespace and veths; idempotent.
func (m *Manager) Teardown(ctx context.Context, id string) error { panic("todo") }

// Counters reports NIC index of guest id as the guest sees it.
func (m *Manager) Counters(id string, index int) (NICCounters, error) { panic("todo") }

// Close removes the NAT rules and the bridges when no guest uses them any
// more; running guests keep their network across a Hearth restart.
func (m *Manager) Close() error { panic("todo") }

// Bridge is the public bridge's name.
func (m *Manager) Bridge() string { return m.bridge }

// VLANBridge is the name of the bridge of VLAN vlan (a UUID).
func VLANBridge(vlan string) string { panic("todo") }

// RandomMAC returns a random locally administered unicast MAC.
func RandomMAC() string { panic("todo") }

// ValidMAC checks that mac is a unicast aa:bb:cc:dd:ee:ff address.
func ValidMAC(mac string) error { panic("todo") }

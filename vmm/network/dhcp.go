package network

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// DefaultLeaseTime is how long a DHCP lease lasts unless WithLeaseTime says
// otherwise; a guest renews after half of it.
const DefaultLeaseTime = time.Hour

// lease is what the DHCP server tells the guest owning one NIC.
type lease struct {
	guest    string       // guest id, logged as server= and used to unregister
	address  netip.Prefix // yiaddr and subnet mask
	gateway  netip.Addr   // router option; zero = none
	hostname string       // host name option; "" = none
}

// dhcpServer answers DHCPv4 on the public bridge, only for the MACs Attach
// registered there, each with its NIC's own address: there is no pool, the
// addresses are Hearth's (leases or static nic:0:dhcp IPs) and already
// configured in the guest's namespace.
type dhcpServer struct {
	bridge    string
	serverID  netip.Addr // the bridge's gateway address
	dns       []netip.Addr
	leaseTime time.Duration
	log       *slog.Logger

	mu     sync.Mutex
	leases map[string]lease // by MAC, as net.HardwareAddr.String() writes it
	srv    *server4.Server
	served chan struct{} // closed when srv's Serve has returned
}

// start (re)opens the server's socket, bound to the bridge alone
// (SO_BINDTODEVICE), so that no other interface of the host answers DHCP.
// The bridge must exist: a socket follows the bridge's interface index, so
// a bridge created again needs start again.
func (d *dhcpServer) start() error {
	d.stop()
	srv, err := server4.NewServer(d.bridge, &net.UDPAddr{Port: dhcpv4.ServerPort}, d.handle)
	if err != nil {
		return fmt.Errorf("DHCP server on %s: %w", d.bridge, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(); err != nil && !errors.Is(err, net.ErrClosed) {
			d.log.Error("dhcp: server stopped", "bridge", d.bridge, "err", err)
		}
	}()
	d.mu.Lock()
	d.srv, d.served = srv, served
	d.mu.Unlock()
	d.log.Info("dhcp: serving", "bridge", d.bridge, "ip", d.serverID, "dns", d.dns, "lease", d.leaseTime)
	return nil
}

// stop closes the socket and waits for the server to return; stopped is fine.
func (d *dhcpServer) stop() {
	d.mu.Lock()
	srv, served := d.srv, d.served
	d.srv, d.served = nil, nil
	d.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	<-served
}

// register makes nics guest id's leases, replacing those it had. Only NICs
// on the public bridge with an address get one: VLANs have no DHCP.
func (d *dhcpServer) register(id string, nics []NIC, macs []net.HardwareAddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unregisterLocked(id)
	for i, nic := range nics {
		if nic.Bridge != d.bridge || !nic.Address.IsValid() {
			continue
		}
		mac := macs[i].String()
		if other, ok := d.leases[mac]; ok {
			d.log.Warn("dhcp: MAC moves to another guest", "mac", mac, "server", id, "previous", other.guest)
		}
		d.leases[mac] = lease{guest: id, address: nic.Address, gateway: nic.Gateway, hostname: nic.Hostname}
	}
}

// unregister drops guest id's leases; absent is fine.
func (d *dhcpServer) unregister(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unregisterLocked(id)
}

func (d *dhcpServer) unregisterLocked(id string) {
	for mac, l := range d.leases {
		if l.guest == id {
			delete(d.leases, mac)
		}
	}
}

// handle sends reply's answer to the client. NAKs are broadcast, as RFC
// 2131 §4.3.2 asks; the rest go where server4 says: the client's address
// when it has one, else broadcast.
func (d *dhcpServer) handle(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	resp := d.reply(req)
	if resp == nil {
		return
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		peer = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	if _, err := conn.WriteTo(resp.ToBytes(), peer); err != nil {
		d.log.Warn("dhcp: send", "mac", req.ClientHWAddr, "ip", resp.YourIPAddr, "type", resp.MessageType(), "to", peer, "err", err)
	}
}

// reply is the answer to req, nil for none: an unknown MAC, a message a
// server does not answer, or a REQUEST for another server's offer.
func (d *dhcpServer) reply(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil
	}
	mac := req.ClientHWAddr.String()
	d.mu.Lock()
	l, ok := d.leases[mac]
	d.mu.Unlock()
	if !ok {
		d.log.Debug("dhcp: ignoring unknown MAC", "mac", mac, "type", req.MessageType())
		return nil
	}
	log := d.log.With("mac", mac, "ip", l.address.Addr(), "server", l.guest)
	ip := net.IP(l.address.Addr().AsSlice())
	var mods []dhcpv4.Modifier
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mods = d.leaseOptions(l, dhcpv4.MessageTypeOffer)
	case dhcpv4.MessageTypeRequest:
		if id := req.ServerIdentifier(); id != nil && !id.Equal(d.serverID.AsSlice()) {
			log.Debug("dhcp: client chose another server", "other", id)
			return nil
		}
		want := req.RequestedIPAddress()
		if want == nil { // renewing or rebinding: the address it holds
			want = req.ClientIPAddr
		}
		if !want.Equal(ip) {
			log.Info("dhcp: NAK", "requested", want)
			mods = []dhcpv4.Modifier{
				dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverID.AsSlice())),
			}
			break
		}
		mods = d.leaseOptions(l, dhcpv4.MessageTypeAck)
	case dhcpv4.MessageTypeInform: // configured by hand, wants the rest: no address, no lease time
		mods = append(d.configOptions(l, dhcpv4.MessageTypeAck), dhcpv4.WithClientIP(req.ClientIPAddr))
	case dhcpv4.MessageTypeRelease:
		log.Info("dhcp: guest released its address (Hearth keeps it configured in the namespace)")
		return nil
	case dhcpv4.MessageTypeDecline:
		log.Warn("dhcp: guest declined its address: another host on the bridge answers ARP for it")
		return nil
	default:
		return nil
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		log.Error("dhcp: build reply", "err", err)
		return nil
	}
	log.Debug("dhcp: answer", "type", resp.MessageType())
	return resp
}

// leaseOptions hand out l's address for the lease time.
func (d *dhcpServer) leaseOptions(l lease, typ dhcpv4.MessageType) []dhcpv4.Modifier {
	return append(d.configOptions(l, typ),
		dhcpv4.WithYourIP(l.address.Addr().AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(d.leaseTime)))
}

// configOptions are everything but the address: subnet mask, router, DNS
// servers, host name, and this server's identifier.
func (d *dhcpServer) configOptions(l lease, typ dhcpv4.MessageType) []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverID.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(l.address.Bits(), 32)),
	}
	if l.gateway.IsValid() {
		mods = append(mods, dhcpv4.WithRouter(l.gateway.AsSlice()))
	}
	if len(d.dns) > 0 {
		servers := make([]net.IP, len(d.dns))
		for i, a := range d.dns {
			servers[i] = a.AsSlice()
		}
		mods = append(mods, dhcpv4.WithDNS(servers...))
	}
	if l.hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(l.hostname)))
	}
	return mods
}

// ParseDNS reads a --dns list, "IP[,IP...]": IPv4 addresses a guest can
// reach (not loopback). "" is no list, nil.
func ParseDNS(list string) ([]netip.Addr, error) {
	var servers []netip.Addr
	for _, field := range strings.Split(list, ",") {
		if field = strings.TrimSpace(field); field == "" {
			continue
		}
		a, err := netip.ParseAddr(field)
		if err != nil {
			return nil, fmt.Errorf("%w: DNS server %q is not an IP address", ErrInvalid, field)
		}
		if err := checkDNS(a); err != nil {
			return nil, err
		}
		servers = append(servers, a)
	}
	return servers, nil
}

func checkDNS(a netip.Addr) error {
	if !a.Is4() || a.IsLoopback() || a.IsUnspecified() {
		return fmt.Errorf("%w: DNS server %s (want an IPv4 address a guest can reach)", ErrInvalid, a)
	}
	return nil
}

// HostResolvers are the IPv4 name servers of the host's /etc/resolv.conf
// that a guest can reach. Loopback ones (systemd-resolved's 127.0.0.53)
// answer only the host; when they are all there is, systemd-resolved's own
// list of upstream servers is used instead.
func HostResolvers() []netip.Addr {
	if servers := resolvers("/etc/resolv.conf"); len(servers) > 0 {
		return servers
	}
	return resolvers("/run/systemd/resolve/resolv.conf")
}

// resolvers reads the non-loopback IPv4 nameserver lines of a resolv.conf;
// a missing file has none.
func resolvers(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var servers []netip.Addr
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err == nil && checkDNS(a) == nil {
			servers = append(servers, a)
		}
	}
	return servers
}

// validHostname checks a host name option: one DNS label, as Hearth names
// guests.
func validHostname(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

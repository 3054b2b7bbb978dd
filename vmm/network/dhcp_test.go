package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netns"
)

// A public NIC, a VLAN NIC and an address-less public NIC of one guest, on a
// server whose bridge is hearthd0.
func testLeases(t *testing.T) (*dhcpServer, []NIC) {
	t.Helper()
	d := &dhcpServer{
		bridge:    "hearthd0",
		serverID:  netip.MustParseAddr("10.9.0.1"),
		dns:       []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("198.51.100.53")},
		leaseTime: 30 * time.Minute,
		log:       slog.New(slog.DiscardHandler),
		leases:    map[string]lease{},
	}
	nics := []NIC{
		{Index: 0, MAC: "02:00:00:00:00:07", Address: netip.MustParsePrefix("10.9.0.7/24"), Gateway: netip.MustParseAddr("10.9.0.1"), Bridge: "hearthd0", Hostname: "web1"},
		{Index: 1, MAC: "02:00:00:00:00:08", Address: netip.MustParsePrefix("192.168.5.8/24"), Bridge: "hearthv12345678", Hostname: "web1"},
		{Index: 2, MAC: "02:00:00:00:00:09", Bridge: "hearthd0"},
	}
	macs := make([]net.HardwareAddr, len(nics))
	for i, n := range nics {
		macs[i], _ = net.ParseMAC(n.MAC)
	}
	d.register("guest-1", nics, macs)
	return d, nics
}

func discover(t *testing.T, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	m, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertLease checks that resp hands out the public NIC's configuration.
func assertLease(t *testing.T, resp *dhcpv4.DHCPv4, typ dhcpv4.MessageType) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no answer, want %s", typ)
	}
	ones, _ := resp.SubnetMask().Size()
	got := fmt.Sprintf("%s yiaddr=%s mask=/%d router=%v dns=%v hostname=%s lease=%s server=%s",
		resp.MessageType(), resp.YourIPAddr, ones, resp.Router(), resp.DNS(), resp.HostName(),
		resp.IPAddressLeaseTime(0), resp.ServerIdentifier())
	want := fmt.Sprintf("%s yiaddr=10.9.0.7 mask=/24 router=[10.9.0.1] dns=[192.0.2.53 198.51.100.53] hostname=web1 lease=30m0s server=10.9.0.1", typ)
	if got != want {
		t.Errorf("answer\n got %s\nwant %s", got, want)
	}
}

func TestDHCPAnswersOnlyRegisteredPublicNICs(t *testing.T) {
	d, nics := testLeases(t)

	offer := d.reply(discover(t, nics[0].MAC))
	assertLease(t, offer, dhcpv4.MessageTypeOffer)
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	ack := d.reply(req)
	assertLease(t, ack, dhcpv4.MessageTypeAck)
	if ack.TransactionID != req.TransactionID || ack.ClientHWAddr.String() != nics[0].MAC {
		t.Errorf("ACK xid %s chaddr %s, want the request's %s %s", ack.TransactionID, ack.ClientHWAddr, req.TransactionID, nics[0].MAC)
	}

	// Renewing: no requested-address option, the held address in ciaddr.
	renew, _ := dhcpv4.New(dhcpv4.WithReply(ack), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(ack.YourIPAddr))
	renew.OpCode = dhcpv4.OpcodeBootRequest
	assertLease(t, d.reply(renew), dhcpv4.MessageTypeAck)

	for name, mac := range map[string]string{"unknown MAC": "02:00:00:00:00:99", "VLAN NIC": nics[1].MAC, "NIC without address": nics[2].MAC} {
		if resp := d.reply(discover(t, mac)); resp != nil {
			t.Errorf("%s: answered %s, want silence", name, resp.MessageType())
		}
	}

	if resp := d.reply(offer); resp != nil { // a reply is no request
		t.Errorf("answered a BOOTREPLY with %s", resp.MessageType())
	}
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline} {
		m, _ := dhcpv4.NewReplyFromRequest(ack, dhcpv4.WithMessageType(typ))
		m.OpCode = dhcpv4.OpcodeBootRequest
		if resp := d.reply(m); resp != nil {
			t.Errorf("answered %s with %s", typ, resp.MessageType())
		}
	}
}

func TestDHCPNaksAnotherAddressAndIgnoresAnotherServersOffer(t *testing.T) {
	d, nics := testLeases(t)
	offer := d.reply(discover(t, nics[0].MAC))

	wrong, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 9, 0, 8))))
	nak := d.reply(wrong)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("REQUEST for another address: %v, want NAK", nak)
	}
	if !nak.YourIPAddr.IsUnspecified() || !nak.ServerIdentifier().Equal(net.IPv4(10, 9, 0, 1)) || nak.IPAddressLeaseTime(0) != 0 {
		t.Errorf("NAK yiaddr %s server %s lease %s, want 0.0.0.0, 10.9.0.1, none", nak.YourIPAddr, nak.ServerIdentifier(), nak.IPAddressLeaseTime(0))
	}

	other, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 0, 254))))
	if resp := d.reply(other); resp != nil {
		t.Errorf("REQUEST for another server's offer answered %s, want silence", resp.MessageType())
	}
}

func TestDHCPForgetsWhatDetachAndAttachReplace(t *testing.T) {
	d, nics := testLeases(t)
	moved := nics[0]
	moved.MAC, moved.Address = "02:00:00:00:00:17", netip.MustParsePrefix("10.9.0.17/24")
	hw, _ := net.ParseMAC(moved.MAC)
	d.register("guest-1", []NIC{moved}, []net.HardwareAddr{hw})
	if resp := d.reply(discover(t, nics[0].MAC)); resp != nil {
		t.Errorf("old MAC of a set-up-again guest answered %s", resp.MessageType())
	}
	if resp := d.reply(discover(t, moved.MAC)); resp == nil || resp.YourIPAddr.String() != "10.9.0.17" {
		t.Errorf("new MAC answered %v, want an offer of 10.9.0.17", resp)
	}
	d.unregister("guest-1")
	if resp := d.reply(discover(t, moved.MAC)); resp != nil {
		t.Errorf("torn-down guest answered %s", resp.MessageType())
	}
}

func TestInformGetsConfigurationWithoutALease(t *testing.T) {
	d, nics := testLeases(t)
	hw, _ := net.ParseMAC(nics[0].MAC)
	inform, err := dhcpv4.NewInform(hw, net.IPv4(10, 9, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	ack := d.reply(inform)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INFORM answered %v, want ACK", ack)
	}
	if !ack.YourIPAddr.IsUnspecified() || ack.IPAddressLeaseTime(0) != 0 || ack.HostName() != "web1" || len(ack.DNS()) != 2 {
		t.Errorf("INFORM ACK yiaddr %s lease %s hostname %q dns %v, want no address, no lease, web1 and 2 servers",
			ack.YourIPAddr, ack.IPAddressLeaseTime(0), ack.HostName(), ack.DNS())
	}
}

func TestResolversSkipWhatAGuestCannotReach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# systemd-resolved\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\nnameserver 2001:db8::1\n" +
		"search example.org\n nameserver 198.51.100.2 \nnameserver 0.0.0.0\noptions edns0\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got := resolvers(path)
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2")}
	if !slices.Equal(got, want) {
		t.Errorf("resolvers = %v, want %v", got, want)
	}
	if got := resolvers(filepath.Join(t.TempDir(), "absent")); got != nil {
		t.Errorf("missing file: %v, want none", got)
	}
}

func TestAttachRefusesABadHostname(t *testing.T) {
	m := &Switch{bridge: DefaultBridge}
	for _, name := range []string{"-web", "web-", "a.b", "web 1", strings.Repeat("a", 64), "wéb"} {
		nic := NIC{Index: 0, MAC: "02:00:00:00:00:01", Bridge: DefaultBridge, Hostname: name}
		if _, err := m.checkNICs([]NIC{nic}); !errors.Is(err, ErrInvalid) {
			t.Errorf("hostname %q: %v, want ErrInvalid", name, err)
		}
	}
	nic := NIC{Index: 0, MAC: "02:00:00:00:00:01", Bridge: DefaultBridge, Hostname: "Web-1"}
	if _, err := m.checkNICs([]NIC{nic}); err != nil {
		t.Errorf("hostname Web-1: %v", err)
	}
}

// udhcpcScript prints what udhcpc got, one line per bound lease.
const udhcpcScript = `#!/bin/sh
[ "$1" = bound ] && echo "LEASE ip=$ip subnet=$subnet router=$router dns=$dns hostname=$hostname lease=$lease serverid=$serverid"
exit 0
`

// udhcpc runs busybox's DHCP client on dev in the namespace at path, asking
// tries times a second apart, and returns its LEASE line ("" = none).
func udhcpc(t *testing.T, path, dev string, tries int) (string, error) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := inNetns(path, "/bin/busybox", "udhcpc", "-i", dev, "-n", "-q", "-f", "-t", fmt.Sprint(tries), "-T", "1", "-s", script)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "LEASE ") {
			return line, err
		}
	}
	return "", fmt.Errorf("%v: %s", err, out)
}

// Not parallel: it checks that this process keeps no DHCP socket after
// Close, which other tests' Switches would hold.
func TestDHCPClientInTheGuestGetsItsNIC(t *testing.T) {
	dns := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("198.51.100.53")}
	tn := newTestNet(t, WithBridge(fmt.Sprintf("hearthd%08x", rand.Uint32())), WithDNS(dns), WithLeaseTime(20*time.Minute))
	if dhcpSockets(t) == 0 {
		t.Fatal("New opened no DHCP socket")
	}
	id, vlan := tn.newID(), tn.newVLAN()
	public := tn.public(30)
	public.Hostname = "guest30"
	path := tn.attach(id, public, NIC{Index: 1, MAC: RandomMAC(), Address: netip.MustParsePrefix("192.168.77.30/24"), Bridge: vlan, Hostname: "guest30"})

	got, err := udhcpc(t, path, "eth0", 5)
	want := fmt.Sprintf("LEASE ip=%s subnet=255.255.255.0 router=%s dns=192.0.2.53 198.51.100.53 hostname=guest30 lease=1200 serverid=%s",
		public.Address.Addr(), tn.gateway(), tn.gateway())
	if got != want {
		t.Errorf("udhcpc on eth0:\n got %q (%v)\nwant %q", got, err, want)
	}

	if got, err := udhcpc(t, path, "eth1", 2); got != "" || err == nil {
		t.Errorf("udhcpc on the VLAN NIC got %q, want no lease", got)
	}

	// Another MAC on the same veth: not a NIC Attach registered.
	inside := netlinkIn(t, path)
	defer inside.Close()
	eth0, err := inside.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := net.ParseMAC(RandomMAC())
	if err := inside.LinkSetHardwareAddr(eth0, stranger); err != nil {
		t.Fatal(err)
	}
	if got, err := udhcpc(t, path, "eth0", 2); got != "" || err == nil {
		t.Errorf("udhcpc from unregistered MAC %s got %q, want no lease", stranger, got)
	}

	tn.detach(id)
	tn.close()
	if n := dhcpSockets(t); n != 0 {
		t.Errorf("%d DHCP sockets still open after Close", n)
	}
}

func TestGoDHCPClientInTheGuestGetsItsNICAndANak(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t, WithBridge(fmt.Sprintf("hearthd%08x", rand.Uint32())), WithDNS([]netip.Addr{netip.MustParseAddr("192.0.2.7")}))
	id := tn.newID()
	public := tn.public(40)
	public.Hostname = "guest40"
	path := tn.attach(id, public)

	var client *nclient4.Client
	err := inNamespace(path, func() (err error) {
		client, err = nclient4.New("eth0", nclient4.WithTimeout(time.Second), nclient4.WithRetry(5))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	lease, err := client.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ack := lease.ACK
	ones, _ := ack.SubnetMask().Size()
	got := fmt.Sprintf("ip=%s/%d router=%v dns=%v hostname=%s lease=%s server=%s", ack.YourIPAddr, ones, ack.Router(), ack.DNS(), ack.HostName(), ack.IPAddressLeaseTime(0), ack.ServerIdentifier())
	want := fmt.Sprintf("ip=%s router=[%s] dns=[192.0.2.7] hostname=guest40 lease=%s server=%s", public.Address, tn.gateway(), DefaultLeaseTime, tn.gateway())
	if got != want {
		t.Errorf("ACK\n got %s\nwant %s", got, want)
	}

	other := lease.Offer.YourIPAddr.To4()
	other[3]++
	stolen := *lease.Offer
	stolen.YourIPAddr = other
	var nak *nclient4.ErrNak
	if _, err := client.RequestFromOffer(ctx, &stolen); !errors.As(err, &nak) {
		t.Errorf("REQUEST for %s: %v, want a NAK", other, err)
	}
}

// testNetns is the network namespace the tests started in, where the
// Switches open their sockets, held open so that no thread's later moves
// (inNamespace) can change what it names.
var testNetns = func() string {
	ns, err := netns.Get()
	if err != nil {
		return "/proc/self/ns/net"
	}
	return fmt.Sprintf("/proc/self/fd/%d", int(ns))
}()

// dhcpSockets counts this process's UDP sockets on port 67.
func dhcpSockets(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, "socket:[") {
			mine[strings.Trim(target, "socket:[]")] = true
		}
	}
	var udp []byte
	if err := inNamespace(testNetns, func() (err error) {
		udp, err = os.ReadFile("/proc/thread-self/net/udp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(udp), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", dhcpv4.ServerPort)) && mine[f[9]] {
			n++
		}
	}
	return n
}

func TestParseDNS(t *testing.T) {
	got, err := ParseDNS(" 192.0.2.1, 198.51.100.2 ")
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseDNS = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"127.0.0.53", "2001:db8::1", "0.0.0.0", "dns.example", "192.0.2.1,x"} {
		if _, err := ParseDNS(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDNS(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

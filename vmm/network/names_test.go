package network

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestRandomMACIsLocalUnicastAndValid(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		mac := RandomMAC()
		if err := ValidMAC(mac); err != nil {
			t.Fatal(err)
		}
		hw, _ := net.ParseMAC(mac)
		if hw[0]&0x01 != 0 || hw[0]&0x02 == 0 {
			t.Fatalf("%s: want a locally administered unicast address", mac)
		}
		if seen[mac] {
			t.Fatalf("%s generated twice", mac)
		}
		seen[mac] = true
	}
}

func TestValidMAC(t *testing.T) {
	for _, mac := range []string{"02:00:00:00:00:01", "AA:BB:CC:DD:EE:F0", "00:16:3e:12:34:56"} {
		if err := ValidMAC(mac); err != nil {
			t.Errorf("ValidMAC(%q) = %v, want nil", mac, err)
		}
	}
	for _, mac := range []string{"", "02:00:00:00:00", "02-00-00-00-00-01", "0200.0000.0001", "01:00:5e:00:00:01",
		"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:00:00:00:00:0g", "02:00:00:00:00:00:00:01"} {
		err := ValidMAC(mac)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), mac) {
			t.Errorf("ValidMAC(%q) = %v, want ErrInvalid naming it", mac, err)
		}
	}
}

func TestDeviceNames(t *testing.T) {
	legacy := NamesOf("hearth")
	if legacy != (Names{}) {
		t.Errorf("the instance hearth has names %+v, want the zero Names (those before instances)", legacy)
	}
	if got := legacy.VLANBridge("5CA19F42-1111-4222-8333-444455556666"); got != "hearthv5ca19f42" {
		t.Errorf("VLANBridge = %q, want hearthv5ca19f42", got)
	}
	if got := legacy.PublicBridge(); got != DefaultBridge {
		t.Errorf("PublicBridge of the instance hearth = %q, want %q", got, DefaultBridge)
	}
	id := "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	v0, v1 := legacy.hostVeth(id, 0), legacy.hostVeth(id, 1)
	if len(v0) != 15 || !strings.HasPrefix(v0, "hearth") || v0[:14] != v1[:14] || v0 == v1 || v0[14] != '0' {
		t.Errorf("host veths %q, %q: want hearth + 8 hex digits + index, 15 characters", v0, v1)
	}
	if legacy.hostVeth(id, 0) != v0 || legacy.hostVeth("another", 0) == v0 {
		t.Error("host veth names must be a function of the id")
	}
	if legacy.hostVeth(id, 0) != "hearth"+hash8(id)+"0" || legacy.vethOwner(id, 0) != "hearth:"+id+":0" {
		t.Errorf("the instance hearth's veth %s (%s) changed from before instances", v0, legacy.vethOwner(id, 0))
	}
	if isVLANBridge(v0) || isVLANBridge(DefaultBridge) || !isVLANBridge(legacy.VLANBridge(id)) {
		t.Error("veth and public bridge names must not look like VLAN bridges")
	}
}

// TestInstanceNames: every name an instance derives is a valid device
// name of at most 15 characters, stable, of its own family (public bridge,
// VLAN bridge, veth), and different from every other instance's.
func TestInstanceNames(t *testing.T) {
	instances := []string{"hearth", "a", "test", "e2e-1", "abcd1234", "abcd12345", "0123456789abcdef0123456789abcdef", "8f3a9c01"}
	id, vlan := "3fa85f64-5717-4562-b3fc-2c963f66afa6", "5ca19f42-1111-4222-8333-444455556666"
	seen := map[string]string{}
	for _, inst := range instances {
		n := NamesOf(inst)
		if NamesOf(inst) != n || n.PublicBridge() != NamesOf(inst).PublicBridge() {
			t.Errorf("%s: names are not stable", inst)
		}
		names := map[string]string{
			"public bridge": n.PublicBridge(),
			"VLAN bridge":   n.VLANBridge(vlan),
			"veth 0":        n.hostVeth(id, 0),
			"veth 9":        n.hostVeth(id, maxNICs-1),
		}
		for what, name := range names {
			if !validIfName(name) || len(name) > 15 || !strings.HasPrefix(name, "hearth") {
				t.Errorf("%s: %s %q: want a device name of at most 15 characters starting hearth", inst, what, name)
			}
			if other, dup := seen[name]; dup {
				t.Errorf("%s: %s %q is also %s", inst, what, name, other)
			}
			seen[name] = inst + " " + what
		}
		if br := n.PublicBridge(); isVLANBridge(br) || len(br) == 15 && br[6] != '-' {
			t.Errorf("%s: public bridge %q could be taken for a VLAN bridge or a veth", inst, br)
		}
		if v := n.hostVeth(id, 0); isVLANBridge(v) || v[6] == '-' {
			t.Errorf("%s: veth %q could be taken for a bridge", inst, v)
		}
		if !isVLANBridge(n.VLANBridge(vlan)) {
			t.Errorf("%s: VLAN bridge %q is not named like one", inst, n.VLANBridge(vlan))
		}
		if inst != "hearth" && strings.HasPrefix(n.vethOwner(id, 0), NamesOf("hearth").ownerPrefix(id)) {
			t.Errorf("%s: veth owner %q would pass for the instance hearth's", inst, n.vethOwner(id, 0))
		}
	}
	if got := NamesOf("test").PublicBridge(); got != "hearth-test" {
		t.Errorf("public bridge of the instance test = %q, want hearth-test (readable where it fits)", got)
	}
}

func TestBadInputIsRefusedNamingIt(t *testing.T) {
	for _, id := range []string{"", "../etc", "a/b", ".hidden", strings.Repeat("x", 129), "sp ace"} {
		if err := checkID(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkID(%q) = %v, want ErrInvalid", id, err)
		}
	}
	m := &Switch{bridge: DefaultBridge}
	addr := netip.MustParsePrefix("10.73.0.5/16")
	gw := netip.MustParseAddr("10.73.0.1")
	good := NIC{Index: 0, MAC: "02:00:00:00:00:01", Address: addr, Gateway: gw, Bridge: DefaultBridge}
	if _, err := m.checkNICs([]NIC{good, {Index: 1, MAC: "02:00:00:00:00:02", Bridge: "hearthv01234567"}}); err != nil {
		t.Errorf("valid NICs refused: %v", err)
	}
	for _, c := range []struct {
		name string
		nic  func(NIC) NIC
		want string
	}{
		{"index", func(n NIC) NIC { n.Index = 10; return n }, "index 10"},
		{"MAC", func(n NIC) NIC { n.MAC = "01:00:00:00:00:01"; return n }, "01:00:00:00:00:01"},
		{"foreign bridge", func(n NIC) NIC { n.Bridge = "docker0"; return n }, `"docker0"`},
		{"long bridge", func(n NIC) NIC { n.Bridge = "hearthv0123456789"; return n }, "hearthv0123456789"},
		{"gateway outside", func(n NIC) NIC { n.Gateway = netip.MustParseAddr("10.74.0.1"); return n }, "10.74.0.1"},
		{"gateway is the guest", func(n NIC) NIC { n.Gateway = addr.Addr(); return n }, "10.73.0.5"},
		{"gateway without address", func(n NIC) NIC { n.Address = netip.Prefix{}; return n }, "gateway 10.73.0.1"},
	} {
		_, err := m.checkNICs([]NIC{c.nic(good)})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid naming %s", c.name, err, c.want)
		}
	}
	if _, err := m.checkNICs([]NIC{good, good}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate index: %v, want ErrInvalid", err)
	}
}

func TestNewRefusesBadOptionsBeforeTouchingTheHost(t *testing.T) {
	for _, c := range []struct {
		opt  Option
		want string
	}{
		{WithBridge("eth0"), `"eth0"`},
		{WithBridge("hearthv1"), `"hearthv1"`},
		{WithBridge("hearth0123456789"), "hearth0123456789"},
		{WithGateway(netip.MustParsePrefix("10.73.0.0/16")), "10.73.0.0/16"},
		{WithGateway(netip.MustParsePrefix("10.73.0.1/32")), "10.73.0.1/32"},
		{WithGateway(netip.MustParsePrefix("fd00::1/64")), "fd00::1/64"},
	} {
		if _, err := New(c.opt); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with %s: %v, want ErrInvalid naming it", c.want, err)
		}
	}
}

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
	if got := VLANBridge("5CA19F42-1111-4222-8333-444455556666"); got != "hearthv5ca19f42" {
		t.Errorf("VLANBridge = %q, want hearthv5ca19f42", got)
	}
	id := "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	v0, v1 := hostVeth(id, 0), hostVeth(id, 1)
	if len(v0) != 15 || !strings.HasPrefix(v0, "hearth") || v0[:14] != v1[:14] || v0 == v1 || v0[14] != '0' {
		t.Errorf("host veths %q, %q: want hearth + 8 hex digits + index, 15 characters", v0, v1)
	}
	if hostVeth(id, 0) != v0 || hostVeth("another", 0) == v0 {
		t.Error("host veth names must be a function of the id")
	}
	if isVLANBridge(v0) || isVLANBridge(DefaultBridge) || !isVLANBridge(VLANBridge(id)) {
		t.Error("veth and public bridge names must not look like VLAN bridges")
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

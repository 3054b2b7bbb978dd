package eh

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

const (
	drive1 = "b6049e7a-aa0b-4d2e-9d6f-3e1f8e2c9a01"
	drive2 = "853bb98a-4fff-4c2f-a265-97c363f19ea5"
	vlan1  = "6e2d1f6a-03c4-4c5e-b2a6-5f1a0c7a9e11"
)

// minimal is the smallest valid create body.
func minimal(extra Props) Props {
	p := Props{"name": "web", "cpu": "2000", "mem": "1024"}
	maps.Copy(p, extra)
	return p
}

func TestNewServer(t *testing.T) {
	tests := []struct {
		name string
		in   Props
		want Props // keys checked (besides the minimal ones); "" = must be absent
	}{
		{"defaults", minimal(nil), Props{"smp": "auto", "persistent": "false", "type": "container"}},
		{"type VM", minimal(Props{"type": "VM"}), Props{"type": "vm"}},
		{"smp count", minimal(Props{"smp": "4"}), Props{"smp": "4"}},
		{"smp AUTO", minimal(Props{"smp": "AUTO"}), Props{"smp": "auto"}},
		{"persistent TRUE", minimal(Props{"persistent": "TRUE"}), Props{"persistent": "true"}},
		{"numbers normalised", minimal(Props{"cpu": "0500", "mem": "+256"}), Props{"cpu": "500", "mem": "256"}},
		{"drive UUID lower-cased", minimal(Props{"ide:0:0": strings.ToUpper(drive1)}), Props{"ide:0:0": drive1}},
		{"all device kinds", minimal(Props{"ide:1:1": drive1, "scsi:0:7": drive2, "block:7": vlan1, "ata:0:5": "00000000-0000-0000-0000-000000000001"}), Props{"ide:1:1": drive1, "scsi:0:7": drive2}},
		{"media", minimal(Props{"ide:0:1": drive1, "ide:0:1:media": "CDROM"}), Props{"ide:0:1:media": "cdrom"}},
		{"boot normalised", minimal(Props{"ide:0:0": drive1, "ide:1:0": drive2, "boot": " ide:0:0   ide:1:0 "}), Props{"boot": "ide:0:0 ide:1:0"}},
		{"vnc:ip auto stored as vnc", minimal(Props{"vnc:ip": "auto"}), Props{"vnc": "auto", "vnc:ip": ""}},
		{"vnc:ip address stored as vnc", minimal(Props{"vnc:ip": "192.0.2.7"}), Props{"vnc": "192.0.2.7"}},
		{"vnc and vnc:ip agreeing", minimal(Props{"vnc": "auto", "vnc:ip": "AUTO"}), Props{"vnc": "auto"}},
		{"vnc:password stored as password", minimal(Props{"vnc:password": "HfHzVmLT"}), Props{"password": "HfHzVmLT", "vnc:password": ""}},
		{"password of 8", minimal(Props{"password": "12345678"}), Props{"password": "12345678"}},
		{"both password keys agreeing", minimal(Props{"password": "x", "vnc:password": "x"}), Props{"password": "x"}},
		{"vnc:tls off", minimal(Props{"vnc:tls": "off"}), Props{"vnc:tls": "off"}},
		{"shutdown:signal named", minimal(Props{"shutdown:signal": "sigrtmin+4"}), Props{"shutdown:signal": "SIGRTMIN+4"}},
		{"shutdown:signal number", minimal(Props{"shutdown:signal": "30"}), Props{"shutdown:signal": "SIGPWR"}},
		{"nics", minimal(Props{"nic:0:model": "VIRTIO", "nic:0:dhcp": "auto", "nic:1:model": "rtl8139", "nic:1:vlan": strings.ToUpper(vlan1)}),
			Props{"nic:0:model": "virtio", "nic:1:vlan": vlan1}},
		{"static address", minimal(Props{"nic:0:model": "e1000", "nic:0:dhcp": "192.0.2.10"}), Props{"nic:0:dhcp": "192.0.2.10"}},
		{"macs normalised", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "6A-CC-D6-A2-8E-E3", "nic:1:model": "e1000", "nic:1:mac": "02:00:00:00:00:01"}),
			Props{"nic:0:mac": "6a:cc:d6:a2:8e:e3", "nic:1:mac": "02:00:00:00:00:01"}},
		{"firewall", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:policy": "reject", "nic:0:firewall:accept": "TCP/22  tcp/80 udp/1000-2000 icmp"}),
			Props{"nic:0:firewall:accept": "tcp/22 tcp/80 udp/1000-2000 icmp"}},
		{"block list", minimal(Props{"nic:0:block": "tcp/21 tcp/22 udp/5060"}), Props{"nic:0:block": "tcp/21 tcp/22 udp/5060"}},
		{"tags and user keys", minimal(Props{"tags": "a  b", "user:basingse": "42", "user:x:y": "z"}), Props{"tags": "a b", "user:basingse": "42", "user:x:y": "z"}},
		{"avoid", minimal(Props{"avoid:drives": drive1 + " " + drive2, "avoid:servers": strings.ToUpper(vlan1)}), Props{"avoid:servers": vlan1}},
		{"parent type description use", minimal(Props{"parent": drive1, "type": "vm", "description": "two\nlines", "use": "general dbserver"}), Props{"type": "vm"}},
		{"empty values are absent", minimal(Props{"vnc": "", "ide:0:0": "", "tags": ""}), Props{"vnc": "", "ide:0:0": "", "tags": ""}},
		{"name with spaces", minimal(Props{"name": "test api node"}), Props{"name": "test api node"}},
		{"vnc ipv6", minimal(Props{"vnc": "2001:DB8::1"}), Props{"vnc": "2001:db8::1"}},
		{"vnc mapped ipv4", minimal(Props{"vnc": "::ffff:192.0.2.1"}), Props{"vnc": "192.0.2.1"}},
		{"ranges inclusive", minimal(Props{"cpu": "100", "mem": "32", "smp": "128"}), Props{"cpu": "100"}},
		{"ranges inclusive top", minimal(Props{"cpu": "100000", "mem": "1048576", "smp": "1"}), Props{"mem": "1048576"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in.Clone()
			got, err := NewServer(tt.in)
			if err != nil {
				t.Fatalf("NewServer(%q): %v", tt.in, err)
			}
			if !maps.Equal(in, tt.in) {
				t.Errorf("NewServer modified its input: %q", tt.in)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %q)", k, got[k], v, got)
				}
			}
			for k, v := range got {
				if v == "" {
					t.Errorf("result holds empty %s", k)
				}
			}
		})
	}
}

func TestNewServerRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   Props
		msg  string
	}{
		{"no cpu", Props{"name": "x", "mem": "1024"}, "key cpu is required"},
		{"no mem", Props{"name": "x", "cpu": "1000"}, "key mem is required"},
		{"unknown key", minimal(Props{"colour": "blue"}), "unknown server key colour"},
		{"keys are case sensitive", minimal(Props{"CPU": "1000"}), "unknown server key CPU"},
		{"cpu too low", minimal(Props{"cpu": "99"}), "key cpu: 99 is out of range 100–100000 MHz"},
		{"cpu too high", minimal(Props{"cpu": "100001"}), "key cpu: 100001 is out of range"},
		{"cpu not a number", minimal(Props{"cpu": "2GHz"}), `key cpu: "2GHz" is not a whole number of MHz`},
		{"cpu fraction", minimal(Props{"cpu": "2000.0"}), "not a whole number"},
		{"cpu huge", minimal(Props{"cpu": "99999999999999999999"}), "not a whole number"},
		{"mem too low", minimal(Props{"mem": "31"}), "key mem: 31 is out of range 32–1048576 MB"},
		{"mem negative", minimal(Props{"mem": "-1024"}), "key mem: -1024 is out of range"},
		{"smp zero", minimal(Props{"smp": "0"}), "key smp: 0 is out of range 1–128 vCPUs (or auto)"},
		{"smp word", minimal(Props{"smp": "many"}), "key smp:"},
		{"persistent yes", minimal(Props{"persistent": "yes"}), `key persistent: "yes" is not one of true, false`},
		{"password of 9", minimal(Props{"password": "123456789"}), "key password: 9 characters; VNC passwords are at most 8"},
		{"vnc:password of 9", minimal(Props{"vnc:password": "testvncpass"}), "key vnc:password: 11 characters"},
		{"password multibyte over 8 bytes", minimal(Props{"password": "ééééé"}), "key password: 10 characters"},
		{"password keys disagree", minimal(Props{"password": "a", "vnc:password": "b"}), "keys password and vnc:password disagree"},
		{"vnc keys disagree", minimal(Props{"vnc": "auto", "vnc:ip": "192.0.2.1"}), "keys vnc and vnc:ip disagree"},
		{"vnc bad", minimal(Props{"vnc": "yes"}), `key vnc: "yes" is not an IP address (or auto)`},
		{"vnc zone", minimal(Props{"vnc": "fe80::1%eth0"}), "is not an IP address"},
		{"vnc unspecified", minimal(Props{"vnc": "::"}), "is not a host address"},
		{"vnc multicast", minimal(Props{"vnc:ip": "224.0.0.1"}), "key vnc:ip: 224.0.0.1 is not a host address"},
		{"description too long", minimal(Props{"description": strings.Repeat("d", MaxTextLength+1)}), "key description: longer than 65536 bytes"},
		{"uuid with a non-hex digit", minimal(Props{"parent": "g6049e7a-aa0b-4d2e-9d6f-3e1f8e2c9a01"}), "is not a UUID"},
		{"uuid without dashes", minimal(Props{"parent": "b6049e7aaa0b4d2e9d6f3e1f8e2c9a0100000"}), "is not a UUID"},
		{"vnc:tls bad", minimal(Props{"vnc:tls": "maybe"}), "key vnc:tls"},
		{"vnc:tls on is a promise Hearth does not keep", minimal(Props{"vnc:tls": "on"}), `key vnc:tls: "on" is not supported`},
		{"shutdown:signal bad", minimal(Props{"shutdown:signal": "SIGFOO"}), `key shutdown:signal: "SIGFOO" is no signal`},
		{"shutdown:signal kill", minimal(Props{"shutdown:signal": "9"}), "key shutdown:signal: SIGKILL asks the guest nothing"},
		{"ide bus 2", minimal(Props{"ide:2:0": drive1}), "key ide:2:0: no such device; devices are ide:B:U with B and U 0–1"},
		{"ide unit 2", minimal(Props{"ide:0:2": drive1}), "key ide:0:2: no such device"},
		{"scsi bus 1", minimal(Props{"scsi:1:0": drive1}), "key scsi:1:0: no such device; devices are scsi:0:U with U 0–7"},
		{"scsi unit 8", minimal(Props{"scsi:0:8": drive1}), "no such device"},
		{"block 8", minimal(Props{"block:8": drive1}), "key block:8: no such device; devices are block:N with N 0–7"},
		{"block two digits", minimal(Props{"block:07": drive1}), "no such device"},
		{"ata unit 6", minimal(Props{"ata:0:6": drive1}), "devices are ata:0:U with U 0–5"},
		{"block:0:N is not a device", minimal(Props{"block:0:1": drive1}), "unknown server key block:0:1"},
		{"device not a uuid", minimal(Props{"ide:0:0": "disk1"}), `key ide:0:0: "disk1" is not a UUID`},
		{"media bad", minimal(Props{"ide:0:0": drive1, "ide:0:0:media": "floppy"}), `key ide:0:0:media: "floppy" is not one of disk, cdrom`},
		{"media without drive", minimal(Props{"ide:0:1:media": "cdrom"}), "key ide:0:1:media: no drive is attached as ide:0:1"},
		{"media of a bad device", minimal(Props{"ide:5:0:media": "cdrom"}), "key ide:5:0:media: no such device"},
		{"boot not attached", minimal(Props{"ide:0:0": drive1, "boot": "ide:0:0 ide:1:0"}), "key boot: no drive is attached as ide:1:0"},
		{"boot not a device", minimal(Props{"boot": "hd0"}), `key boot: "hd0" is not a device`},
		{"boot twice", minimal(Props{"ide:0:0": drive1, "boot": "ide:0:0 ide:0:0"}), "key boot: ide:0:0 is listed twice"},
		{"drive twice", minimal(Props{"ide:0:0": drive1, "block:0": strings.ToUpper(drive1)}), "drive " + drive1 + " is attached twice (ide:0:0 and block:0)"},
		{"nic model bad", minimal(Props{"nic:0:model": "ne2k"}), `key nic:0:model: "ne2k" is not one of e1000, rtl8139, virtio`},
		{"nic 2", minimal(Props{"nic:2:model": "e1000"}), "unknown server key nic:2:model"},
		{"dhcp without model", minimal(Props{"nic:0:dhcp": "auto"}), "key nic:0:dhcp needs nic:0:model"},
		{"dhcp ipv6", minimal(Props{"nic:0:model": "e1000", "nic:0:dhcp": "2001:db8::1"}), "is not an IPv4 address"},
		{"dhcp broadcast", minimal(Props{"nic:0:model": "e1000", "nic:0:dhcp": "255.255.255.255"}), "is not a host address"},
		{"dhcp garbage", minimal(Props{"nic:0:model": "e1000", "nic:0:dhcp": "1.2.3"}), `key nic:0:dhcp: "1.2.3" is not an IPv4 address (or auto)`},
		{"dhcp on nic 1", minimal(Props{"nic:1:model": "e1000", "nic:1:dhcp": "auto"}), "unknown server key nic:1:dhcp"},
		{"vlan on nic 0", minimal(Props{"nic:0:model": "e1000", "nic:0:vlan": vlan1}), "unknown server key nic:0:vlan"},
		{"vlan not uuid", minimal(Props{"nic:1:model": "e1000", "nic:1:vlan": "vlan1"}), `key nic:1:vlan: "vlan1" is not a UUID`},
		{"mac multicast", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "01:00:5e:00:00:01"}), "is a multicast address"},
		{"mac broadcast", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "ff:ff:ff:ff:ff:ff"}), "is a multicast address"},
		{"mac zero", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "00:00:00:00:00:00"}), "not a usable MAC"},
		{"mac bad", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "aa:bb:cc"}), "is not an Ethernet MAC address"},
		{"mac eui64", minimal(Props{"nic:0:model": "e1000", "nic:0:mac": "02:00:00:00:00:00:00:01"}), "is not an Ethernet MAC address"},
		{"same mac twice", minimal(Props{"nic:0:model": "e1000", "nic:1:model": "e1000", "nic:0:mac": "02:00:00:00:00:01", "nic:1:mac": "02-00-00-00-00-01"}), "nic:0:mac and nic:1:mac are both"},
		{"firewall policy", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:policy": "drop"}), "not one of accept, reject"},
		{"firewall port 0", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:accept": "tcp/0"}), "ports must be 1–65535"},
		{"firewall port range backwards", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:reject": "tcp/80-22"}), "ports must be"},
		{"firewall port too high", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:accept": "udp/65536"}), "ports must be"},
		{"firewall proto", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:accept": "sctp/5"}), "is not tcp/PORT"},
		{"firewall icmp port", minimal(Props{"nic:0:model": "e1000", "nic:0:firewall:accept": "icmp/8"}), "icmp has no ports"},
		{"firewall without nic", minimal(Props{"nic:0:firewall:policy": "accept"}), "needs nic:0:model"},
		{"avoid not uuids", minimal(Props{"avoid:drives": drive1 + " nope"}), `key avoid:drives: "nope" is not a UUID`},
		{"parent not uuid", minimal(Props{"parent": "x"}), "key parent"},
		{"type", minimal(Props{"type": "kvm"}), `key type: "kvm" is not one of container, vm`},
		{"name with newline", minimal(Props{"name": "a\nb"}), "key name: must be one line"},
		{"name too long", minimal(Props{"name": strings.Repeat("n", 257)}), "key name: longer than 256 bytes"},
		{"user: alone", minimal(Props{"user:": "x"}), "unknown server key user:"},
		{"read-only server", minimal(Props{"server": drive1}), "key server is read-only"},
		{"read-only status", minimal(Props{"status": "active"}), "key status is read-only"},
		{"read-only counter", minimal(Props{"ide:0:0:read:bytes": "5"}), "key ide:0:0:read:bytes is read-only"},
		{"read-only runtime address", minimal(Props{"nic:0:dhcp:ip": "1.2.3.4"}), "key nic:0:dhcp:ip is read-only"},
		{"read-only rx", minimal(Props{"rx": "5"}), "key rx is read-only"},
		{"read-only smp:cores", minimal(Props{"smp:cores": "1"}), "key smp:cores is read-only"},
		{"read-only cpu:usage", minimal(Props{"cpu:usage": "1"}), "key cpu:usage is read-only"},
		{"read-only mem:usage", minimal(Props{"mem:usage": "1"}), "key mem:usage is read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewServer(tt.in)
			if err == nil {
				t.Fatalf("NewServer(%q) = %q, want an error", tt.in, got)
			}
			if got != nil {
				t.Errorf("NewServer returned %q with its error", got)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error %v is not usage", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func stored(t *testing.T, extra Props) Props {
	t.Helper()
	p, err := NewServer(minimal(extra))
	if err != nil {
		t.Fatal(err)
	}
	p["server"], p["user"], p["status"] = "55559c30-1f11-4363-ac54-000000000001", "2164ce57-591c-43ee-ade5-e2fe0ee13c3e", "stopped"
	return p
}

func TestUpdateServerStopped(t *testing.T) {
	base := Props{"ide:0:0": drive1, "ide:0:0:media": "disk", "ide:1:0": drive2, "boot": "ide:0:0",
		"nic:0:model": "e1000", "nic:0:dhcp": "auto", "nic:0:mac": "02:00:00:00:00:01", "nic:0:firewall:policy": "accept",
		"password": "secret", "vnc": "auto", "tags": "a"}
	tests := []struct {
		name    string
		in      Props
		changed Props
		absent  []string
	}{
		{"nothing", Props{}, Props{}, nil},
		{"same values are no change", Props{"cpu": "2000", "ide:0:0": strings.ToUpper(drive1), "vnc:ip": "auto", "vnc:password": "secret"}, Props{}, nil},
		{"any config key", Props{"mem": "4096", "smp": "2", "boot": "ide:1:0 ide:0:0", "nic:0:model": "virtio"},
			Props{"mem": "4096", "smp": "2", "boot": "ide:1:0 ide:0:0", "nic:0:model": "virtio"}, nil},
		{"remove a key", Props{"tags": ""}, Props{"tags": ""}, []string{"tags"}},
		{"remove an absent key", Props{"vnc:tls": ""}, Props{}, nil},
		{"detach drops media", Props{"ide:0:0": "", "boot": "ide:1:0"}, Props{"ide:0:0": "", "ide:0:0:media": "", "boot": "ide:1:0"}, []string{"ide:0:0", "ide:0:0:media"}},
		{"detach without media", Props{"ide:1:0": ""}, Props{"ide:1:0": ""}, []string{"ide:1:0"}},
		{"removing the nic removes its keys", Props{"nic:0:model": ""},
			Props{"nic:0:model": "", "nic:0:dhcp": "", "nic:0:mac": "", "nic:0:firewall:policy": ""}, []string{"nic:0:dhcp", "nic:0:mac"}},
		{"remove vnc through its alias", Props{"vnc:ip": ""}, Props{"vnc": ""}, []string{"vnc"}},
		{"removing smp restores auto", Props{"smp": ""}, Props{}, nil},
		{"password through its alias", Props{"vnc:password": "new"}, Props{"password": "new"}, nil},
		{"echoed output keys ignored", Props{"server": "55559c30-1f11-4363-ac54-000000000001", "status": "stopped", "name": "renamed"}, Props{"name": "renamed"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := stored(t, base)
			before := cur.Clone()
			next, changed, err := UpdateServer(cur, tt.in, false)
			if err != nil {
				t.Fatalf("UpdateServer(%q): %v", tt.in, err)
			}
			if !maps.Equal(cur, before) {
				t.Errorf("UpdateServer modified current")
			}
			if !maps.Equal(changed, tt.changed) {
				t.Errorf("changed = %q, want %q", changed, tt.changed)
			}
			for k, v := range changed {
				if next[k] != v {
					t.Errorf("next[%s] = %q, changed says %q", k, next[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := next[k]; ok {
					t.Errorf("%s still in next", k)
				}
			}
			for k, v := range cur {
				if _, ch := changed[k]; !ch && next[k] != v {
					t.Errorf("unchanged key %s went from %q to %q", k, v, next[k])
				}
			}
		})
	}
}

func TestUpdateWithoutCurrent(t *testing.T) {
	// A nil current is an empty stored object, not a creation: a missing
	// required key is reported as an update would report it.
	next, changed, err := UpdateServer(nil, Props{"name": "x"}, false)
	if err == nil || !strings.Contains(err.Error(), "key cpu cannot be removed") {
		t.Errorf("UpdateServer(nil, name) = %q, %q, %v; want the missing cpu reported as an update", next, changed, err)
	}
	next, changed, err = UpdateResource(nil, Props{"name": "x"})
	if err != nil || next["name"] != "x" || changed["name"] != "x" {
		t.Errorf("UpdateResource(nil) = %q, %q, %v", next, changed, err)
	}
}

func TestUpdateServerDefaults(t *testing.T) {
	cur := stored(t, Props{"smp": "4", "persistent": "true", "type": "vm"})
	next, changed, err := UpdateServer(cur, Props{"smp": "", "persistent": "", "type": ""}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Props{"smp": "auto", "persistent": "false", "type": "container"}
	if !maps.Equal(changed, want) || next["smp"] != "auto" || next["persistent"] != "false" || next["type"] != "container" {
		t.Errorf("removing smp and persistent: changed %q, next %q; want the defaults back", changed, next)
	}
}

func TestUpdateServerRefuses(t *testing.T) {
	base := Props{"ide:0:0": drive1, "boot": "ide:0:0", "nic:0:model": "e1000", "password": "secret"}
	tests := []struct {
		name   string
		in     Props
		active bool
		err    error
		msg    string
	}{
		{"detach the boot drive", Props{"ide:0:0": ""}, false, ErrUsage, "key boot: no drive is attached as ide:0:0"},
		{"remove required cpu", Props{"cpu": ""}, false, ErrUsage, "key cpu cannot be removed: every server has one"},
		{"remove required mem", Props{"mem": ""}, false, ErrUsage, "key mem cannot be removed"},
		{"unknown key", Props{"name": "x", "colour": "red"}, false, ErrUsage, "unknown server key colour"},
		{"bad value", Props{"cpu": "fast"}, false, ErrUsage, "key cpu"},
		{"changed server id", Props{"server": drive2}, false, ErrUsage, "key server is read-only"},
		{"runtime counter", Props{"cpu:usage": "5"}, true, ErrUsage, "key cpu:usage is read-only"},
		{"active: mem", Props{"mem": "2048"}, true, ErrBusy, "key mem cannot be changed while the server is active; stop it first"},
		{"active: smp", Props{"smp": "2"}, true, ErrBusy, "key smp cannot be changed"},
		{"active: type", Props{"type": "vm"}, true, ErrBusy, "key type cannot be changed while the server is active"},
		{"stopped: bad type", Props{"type": "lxc"}, false, ErrUsage, `key type: "lxc" is not one of container, vm`},
		{"active: shutdown:signal", Props{"shutdown:signal": "SIGPWR"}, true, ErrBusy, "key shutdown:signal cannot be changed"},
		{"active: drive", Props{"ide:0:1": drive2}, true, ErrBusy, "key ide:0:1 cannot be changed"},
		{"active: vnc through alias", Props{"vnc:ip": "auto"}, true, ErrBusy, "key vnc:ip cannot be changed"},
		{"active: live and non-live mixed", Props{"name": "x", "nic:0:model": "virtio"}, true, ErrBusy, "key nic:0:model"},
		{"active: bad live value is usage", Props{"cpu": "1"}, true, ErrUsage, "key cpu: 1 is out of range"},
		{"active: long password", Props{"vnc:password": "123456789"}, true, ErrUsage, "key vnc:password: 9 characters"},
		{"active: unknown key is usage", Props{"colour": "red"}, true, ErrUsage, "unknown server key colour"},
		{"active: bad firewall list is usage", Props{"nic:0:firewall:accept": "tcp/22 ssh"}, true, ErrUsage, "key nic:0:firewall:accept"},
		{"active: bad block list is usage", Props{"nic:0:block": "tcp/25 smtp"}, true, ErrUsage, "key nic:0:block"},
		{"firewall of a NIC that is not there", Props{"nic:1:firewall:policy": "reject"}, false, ErrUsage, "needs nic:1:model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := stored(t, base)
			before := cur.Clone()
			next, changed, err := UpdateServer(cur, tt.in, tt.active)
			if err == nil {
				t.Fatalf("UpdateServer(%q) = %q, %q; want an error", tt.in, next, changed)
			}
			if next != nil || changed != nil {
				t.Errorf("results returned with the error")
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want %v containing %q", err, tt.err, tt.msg)
			}
			if !maps.Equal(cur, before) {
				t.Errorf("current modified by a refused update")
			}
		})
	}
}

// TestUpdateServerFirewallLive: the firewall keys of either NIC change on
// an active server (the guest layer applies them at once).
func TestUpdateServerFirewallLive(t *testing.T) {
	cur := stored(t, Props{"ide:0:0": drive1, "nic:0:model": "e1000", "nic:1:model": "e1000"})
	in := Props{"nic:0:firewall:policy": "reject", "nic:0:firewall:accept": "TCP/22 udp/53-53 icmp", "nic:1:firewall:reject": "tcp"}
	_, changed, err := UpdateServer(cur, in, true)
	if err != nil {
		t.Fatalf("firewall keys on an active server: %v", err)
	}
	want := Props{"nic:0:firewall:policy": "reject", "nic:0:firewall:accept": "tcp/22 udp/53 icmp", "nic:1:firewall:reject": "tcp"}
	if !maps.Equal(changed, want) {
		t.Errorf("changed = %q, want %q", changed, want)
	}
}

func TestUpdateServerActive(t *testing.T) {
	cur := stored(t, Props{"ide:0:0": drive1, "password": "secret", "tags": "a"})
	cur["status"] = "active"
	in := Props{"name": "renamed", "cpu": "3000", "persistent": "true", "tags": "b c", "user:x": "1",
		"vnc:password": "newpass", "mem": "1024", "ide:0:0": drive1, "status": "active"}
	next, changed, err := UpdateServer(cur, in, true)
	if err != nil {
		t.Fatalf("live keys (and unchanged others) on an active server: %v", err)
	}
	want := Props{"name": "renamed", "cpu": "3000", "persistent": "true", "tags": "b c", "user:x": "1", "password": "newpass"}
	if !maps.Equal(changed, want) {
		t.Errorf("changed = %q, want %q", changed, want)
	}
	if next["password"] != "newpass" || next["mem"] != "1024" {
		t.Errorf("next = %q", next)
	}
	for _, k := range []string{"name", "cpu", "persistent", "tags", "user:anything", "password", "vnc:password"} {
		if !LiveServerKey(k) {
			t.Errorf("LiveServerKey(%s) = false", k)
		}
	}
	for _, k := range []string{"mem", "smp", "boot", "ide:0:0", "vnc", "vnc:ip", "nic:0:model", "server", "nonsense"} {
		if LiveServerKey(k) {
			t.Errorf("LiveServerKey(%s) = true", k)
		}
	}
}

func TestErrorKey(t *testing.T) {
	cur := stored(t, Props{"ide:0:0": drive1, "boot": "ide:0:0"})
	for _, tt := range []struct {
		in     Props
		active bool
		key    string
	}{
		{Props{"cpu": "1"}, false, "cpu"},
		{Props{"colour": "red"}, false, "colour"},
		{Props{"vnc:password": "123456789"}, false, "vnc:password"},
		{Props{"ide:0:0": ""}, false, "boot"},
		{Props{"mem": "2048"}, true, "mem"},
		{Props{"cpu": ""}, false, "cpu"},
		{Props{"nic:0:dhcp": "auto"}, false, "nic:0:dhcp"},
	} {
		_, _, err := UpdateServer(cur, tt.in, tt.active)
		if got := AsError(err).Key; err == nil || got != tt.key {
			t.Errorf("UpdateServer(%q): error %v with Key %q, want Key %q", tt.in, err, got, tt.key)
		}
	}
	_, err := ParseProps(strings.NewReader("name a\\nb\nname c"), 0)
	if got := AsError(err).Key; got != "name" {
		t.Errorf("duplicate key error has Key %q", got)
	}
}

func TestServerOutputKey(t *testing.T) {
	info := ServerInfo(stored(t, Props{"ide:0:0": drive1, "password": "pw", "vnc": "auto", "nic:0:model": "e1000"}),
		Props{"started": "1", "nic:0:ip": "10.1.0.2", "nic:0:mac": "02:00:00:00:00:01", "nic:0:rx:bytes": "1", "nic:0:tx:bytes": "1",
			"nic:0:rx:packets": "1", "nic:0:tx:packets": "1", "ide:0:0:read:bytes": "1", "smp:cores": "1", "vnc:ip": "10.0.0.1", "vnc:port": "5900",
			"cpu:usage": "1", "mem:usage": "1", "hdb:read:bytes": "1"})
	for k := range info {
		_, err := serverRule(k)
		isConfig := err == nil && k != "vnc:password" && k != "vnc:ip"
		if ServerOutputKey(k) == isConfig {
			t.Errorf("ServerOutputKey(%s) = %v, but %s is a configuration key: %v", k, ServerOutputKey(k), k, isConfig)
		}
	}
}

// A name may be missing on create (real clients create nameless servers,
// drives and VLANs) but never given empty, nor removed by set; a client
// echoing back the empty name of a nameless object changes nothing.
func TestNameGivenNeverEmpty(t *testing.T) {
	creates := map[string]func(Props) (Props, error){
		"server":   func(p Props) (Props, error) { p["cpu"], p["mem"] = "500", "256"; return NewServer(p) },
		"drive":    func(p Props) (Props, error) { p["size"] = "1G"; return NewDrive(p) },
		"resource": NewResource,
	}
	updates := map[string]func(cur, in Props) (Props, Props, error){
		"server":   func(cur, in Props) (Props, Props, error) { return UpdateServer(cur, in, false) },
		"drive":    UpdateDrive,
		"resource": UpdateResource,
	}
	for kind, create := range creates {
		if _, err := create(Props{}); err != nil {
			t.Errorf("%s without a name: %v", kind, err)
		}
		for _, empty := range []string{"", "   "} {
			_, err := create(Props{"name": empty})
			if !errors.Is(err, ErrUsage) || AsError(err).Key != "name" || !strings.Contains(err.Error(), "key name cannot be empty") {
				t.Errorf("%s with name %q: %v, want usage naming key name", kind, empty, err)
			}
		}
		cur, err := create(Props{"name": "web1"})
		if err != nil {
			t.Fatalf("%s named web1: %v", kind, err)
		}
		update := updates[kind]
		if _, _, err := update(cur, Props{"name": ""}); !errors.Is(err, ErrUsage) || AsError(err).Key != "name" {
			t.Errorf("%s renamed to empty: %v, want usage naming key name", kind, err)
		}
		if _, changed, err := update(cur, Props{"name": "web2"}); err != nil || changed["name"] != "web2" {
			t.Errorf("%s renamed to web2: %v %v", kind, changed, err)
		}
		nameless, err := create(Props{})
		if err != nil {
			t.Fatal(err)
		}
		if _, changed, err := update(nameless, Props{"name": ""}); err != nil || len(changed) != 0 {
			t.Errorf("%s: echoing an empty name back: changed %v, %v", kind, changed, err)
		}
	}
}

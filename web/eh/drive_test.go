package eh

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestNewDrive(t *testing.T) {
	tests := []struct {
		name string
		in   Props
		want Props
	}{
		{"size only", Props{"size": "10000000"}, Props{"size": "10000000", "tier": "disk", "encryption:cipher": "none"}},
		{"size suffix", Props{"name": "downloads", "size": "8G", "encryption:cipher": "none"},
			Props{"name": "downloads", "size": "8589934592", "tier": "disk", "encryption:cipher": "none"}},
		{"jclouds create_drive.txt", Props{"name": "Ubuntu 10.10 Server Edition Linux 64bit Preinstalled System", "size": "8589934592",
			"claim:type": "shared", "readers": AllUsers, "tags": "tag1 tag2", "user:foo": "bar", "user:baz": "raz",
			"avoid": drive1, "encryption:cipher": "none"},
			Props{"name": "Ubuntu 10.10 Server Edition Linux 64bit Preinstalled System", "size": "8589934592",
				"claim:type": "shared", "readers": AllUsers, "tags": "tag1 tag2", "user:foo": "bar", "user:baz": "raz",
				"avoid": drive1, "encryption:cipher": "none", "tier": "disk"}},
		{"upload tool tier", Props{"name": "img", "size": "4M", "tier": "SSD"}, Props{"name": "img", "size": "4194304", "tier": "ssd", "encryption:cipher": "none"}},
		{"CS-1 clone body", Props{"name": "n", "size": "20G", "driveType": "hdd"}, Props{"name": "n", "size": "21474836480", "tier": "disk", "encryption:cipher": "none"}},
		{"CS-1 metadata", Props{"size": "1G", "type": "cdrom", "os": "Linux", "bits": "64", "use": "general dbserver",
			"drive_type": "installcd, livecd", "free": "none", "favourite": "false", "install_notes": "a\nb", "media": "cdrom"},
			Props{"size": "1073741824", "type": "cdrom", "os": "linux", "bits": "64", "use": "general dbserver",
				"drive_type": "installcd,livecd", "free": "none", "favourite": "false", "install_notes": "a\nb", "media": "cdrom",
				"tier": "disk", "encryption:cipher": "none"}},
		{"readers lower-cased", Props{"size": "1", "readers": strings.ToUpper(drive1) + " " + AllUsers},
			Props{"size": "1", "readers": drive1 + " " + AllUsers, "tier": "disk", "encryption:cipher": "none"}},
		{"largest", Props{"size": "16T"}, Props{"size": "17592186044416", "tier": "disk", "encryption:cipher": "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewDrive(tt.in)
			if err != nil {
				t.Fatalf("NewDrive(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("NewDrive(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewDriveRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   Props
		msg  string
	}{
		{"no size", Props{"name": "x"}, "key size is required to create a drive"},
		{"zero size", Props{"size": "0"}, "key size: a drive holds at least 1 byte"},
		{"too large", Props{"size": "17T"}, "key size: 17 TiB is too large: the largest drive is 16 TiB"},
		{"bad size", Props{"size": "10 GB"}, `key size: "10 GB" is not a size: expected bytes`},
		{"negative size", Props{"size": "-1"}, "must not be negative"},
		{"claim type", Props{"size": "1", "claim:type": "mine"}, "key claim:type"},
		{"readers not uuids", Props{"size": "1", "readers": "everyone"}, `key readers: "everyone" is not a UUID`},
		{"cipher", Props{"size": "1", "encryption:cipher": "rot13"}, `key encryption:cipher: "rot13" is not supported`},
		{"cipher Hearth does not apply", Props{"size": "1", "encryption:cipher": "aes-xts-plain"}, `key encryption:cipher: "aes-xts-plain" is not supported: Hearth does not encrypt drives`},
		{"tier", Props{"size": "1", "tier": "tape"}, "key tier"},
		{"driveType", Props{"size": "1", "driveType": "tape"}, "key driveType"},
		{"tier and driveType disagree", Props{"size": "1", "tier": "ssd", "driveType": "hdd"}, "keys driveType and tier disagree"},
		{"unknown", Props{"size": "1", "colour": "red"}, "unknown drive key colour"},
		{"server key", Props{"size": "1", "cpu": "1000"}, "unknown drive key cpu"},
		{"read-only drive", Props{"size": "1", "drive": drive1}, "key drive is read-only"},
		{"read-only imaging", Props{"size": "1", "imaging": "50%"}, "key imaging is read-only"},
		{"read-only claimed", Props{"size": "1", "claimed": "x"}, "key claimed is read-only"},
		{"read-only counter", Props{"size": "1", "write:bytes": "4096"}, "key write:bytes is read-only"},
		{"name newline", Props{"size": "1", "name": "a\nb"}, "key name: must be one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewDrive(tt.in)
			if err == nil {
				t.Fatalf("NewDrive(%q) = %q, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want usage containing %q", err, tt.msg)
			}
		})
	}
}

func TestUpdateDrive(t *testing.T) {
	cur, err := NewDrive(Props{"name": "d", "size": "1G", "tags": "a", "encryption:cipher": "none"})
	if err != nil {
		t.Fatal(err)
	}
	cur["drive"], cur["user"], cur["status"], cur["read:bytes"] = drive1, drive2, "active", "4096"

	next, changed, err := UpdateDrive(cur, Props{"size": "2G", "name": "renamed", "tags": "", "drive": drive1,
		"encryption:cipher": "none", "read:bytes": "4096"})
	if err != nil {
		t.Fatalf("resize, rename, untag with echoed read-only keys: %v", err)
	}
	if want := (Props{"size": "2147483648", "name": "renamed", "tags": ""}); !maps.Equal(changed, want) {
		t.Errorf("changed = %q, want %q", changed, want)
	}
	if _, ok := next["tags"]; ok || next["drive"] != drive1 || next["read:bytes"] != "4096" {
		t.Errorf("next = %q", next)
	}

	for _, tt := range []struct {
		in  Props
		msg string
	}{
		{Props{"encryption:cipher": "aes-xts-plain"}, `key encryption:cipher: "aes-xts-plain" is not supported`},
		{Props{"avoid": drive2}, "key avoid can only be chosen when the drive is created"},
		{Props{"size": ""}, "key size cannot be removed"},
		{Props{"drive": drive2}, "key drive is read-only"},
		{Props{"read:bytes": "0"}, "key read:bytes is read-only"},
	} {
		if _, _, err := UpdateDrive(cur, tt.in); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("UpdateDrive(%q): %v, want %q", tt.in, err, tt.msg)
		}
	}
}

func TestResources(t *testing.T) {
	got, err := NewResource(Props{})
	if err != nil || len(got) != 0 {
		t.Errorf("CS-1 empty ip create: %q, %v", got, err)
	}
	got, err = NewResource(Props{"name": "My VLAN1", "tags": "x", "user:a": "b"})
	if err != nil || got["name"] != "My VLAN1" {
		t.Errorf("vlan create: %q, %v", got, err)
	}
	for _, in := range []Props{{"netmask": "255.0.0.0"}, {"colour": "red"}, {"name": "a\nb"}} {
		if _, err := NewResource(in); !errors.Is(err, ErrUsage) {
			t.Errorf("NewResource(%q): %v, want usage", in, err)
		}
	}
	cur := Props{"resource": "192.0.2.4", "type": "ip", "user": drive1, "netmask": "255.255.255.0", "gateway": "192.0.2.1", "nameserver": "192.0.2.1"}
	next, changed, err := UpdateResource(cur, Props{"name": "web", "type": "ip", "resource": "192.0.2.4"})
	if err != nil || !maps.Equal(changed, Props{"name": "web"}) || next["netmask"] != "255.255.255.0" {
		t.Errorf("UpdateResource: %q %q %v", next, changed, err)
	}
	if _, _, err := UpdateResource(cur, Props{"gateway": "192.0.2.254"}); err == nil || !strings.Contains(err.Error(), "key gateway is read-only") {
		t.Errorf("changing the gateway: %v", err)
	}
}

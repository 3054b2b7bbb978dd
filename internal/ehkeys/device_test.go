package ehkeys

import (
	"strings"
	"testing"
)

func TestDevicesAndBoot(t *testing.T) {
	p := map[string]string{"block:0": "b0", "ide:1:0": "i10", "ide:0:1": "i01", "scsi:0:3": "s3", "ata:0:0": "a0",
		"ide:0:1:media": "cdrom", "ide:0:0:read:bytes": "5", "name": "x"}
	var keys []string
	for _, d := range Devices(p) {
		keys = append(keys, d.Key+"="+d.Drive+"/"+d.Media)
	}
	if got, want := strings.Join(keys, " "), "ide:0:1=i01/cdrom ide:1:0=i10/disk ata:0:0=a0/disk scsi:0:3=s3/disk block:0=b0/disk"; got != want {
		t.Errorf("Devices = %s, want %s", got, want)
	}
	if d, ok := BootDevice(p); !ok || d.Key != "ide:1:0" {
		t.Errorf("BootDevice without boot = %v %v, want the first disk ide:1:0", d, ok)
	}
	p["boot"] = "scsi:0:3 ide:0:1"
	if d, ok := BootDevice(p); !ok || d.Key != "scsi:0:3" || d.Drive != "s3" {
		t.Errorf("BootDevice = %v %v, want scsi:0:3", d, ok)
	}
	p["boot"] = "block:5"
	if d, ok := BootDevice(p); ok {
		t.Errorf("BootDevice of a detached boot device = %v", d)
	}
	if d, ok := BootDevice(map[string]string{"ide:0:0": "x", "ide:0:0:media": "cdrom"}); ok {
		t.Errorf("BootDevice with only a cdrom = %v", d)
	}
}

func TestGuestDeviceName(t *testing.T) {
	for key, want := range map[string]string{
		"ide:0:0": "hda", "ide:0:1": "hdb", "ide:1:0": "hdc", "ide:1:1": "hdd",
		"ata:0:0": "sda", "ata:0:5": "sdf", "scsi:0:7": "sdh", "block:0": "vda", "block:7": "vdh",
	} {
		if got, ok := GuestDeviceName(key); !ok || got != want {
			t.Errorf("GuestDeviceName(%s) = %q %v, want %s", key, got, ok, want)
		}
	}
	for _, key := range []string{"ide:2:0", "block:8", "nic:0:model", "scsi:0"} {
		if got, ok := GuestDeviceName(key); ok {
			t.Errorf("GuestDeviceName(%s) = %q, want none", key, got)
		}
	}
}

func TestLetters(t *testing.T) {
	for i, want := range map[int]string{0: "a", 25: "z", 26: "aa", 27: "ab", 701: "zz", 702: "aaa"} {
		if got := letters(i); got != want {
			t.Errorf("letters(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestDeviceAddress(t *testing.T) {
	for key, want := range map[string]Address{
		"ide:1:0": {"ide", 1, 0}, "ata:0:5": {"ata", 0, 5}, "scsi:0:7": {"scsi", 0, 7}, "block:3": {"block", 0, 3},
	} {
		if got, err := DeviceAddress(key); err != nil || got != want {
			t.Errorf("DeviceAddress(%s) = %+v, %v; want %+v", key, got, err, want)
		}
	}
	for _, key := range []string{"ide:2:0", "ata:1:0", "scsi:0:8", "block:8", "nic:0", "ide:0", ""} {
		if got, err := DeviceAddress(key); err == nil {
			t.Errorf("DeviceAddress(%q) = %+v, want an error", key, got)
		}
	}
	if CompareDeviceKeys("block:0", "ide:1:1") <= 0 || CompareDeviceKeys("ide:0:1", "ide:1:0") >= 0 {
		t.Error("CompareDeviceKeys does not order ide before block, bus before unit")
	}
}

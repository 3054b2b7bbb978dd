// Package ehkeys is the ElasticHosts key model shared by the API (web/eh) and
// the guest layer (vmm): the grammar of a server's drive device keys
// (ide:B:U, ata:0:U, scsi:0:U, block:N), which device a server boots from,
// and the name each device gets under /dev in the guest; and the signal
// names of shutdown:signal (signal.go). Keys and values are
// plain strings (a server's stored configuration); web/eh adds the wire
// format on top.
package ehkeys

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Device is one drive attachment of a server.
type Device struct {
	Key   string // ide:B:U, ata:0:U, scsi:0:U or block:N
	Drive string // drive UUID
	Media string // disk or cdrom
}

// deviceBuses lists the device kinds in attachment order with their ranges:
// ide:B:U (B, U 0–1), ata:0:U (U 0–5), scsi:0:U (U 0–7), block:N (N 0–7).
// guestPrefix and perBus name the device in the guest the way a PC would:
// ide:B:U → hda…hdd, scsi/ata:0:U → sda…, block:N → vda….
var deviceBuses = []struct {
	prefix      string
	maxBus      int // -1: no bus number (block:N)
	maxUnit     int
	grammar     string
	guestPrefix string
	perBus      int // units per bus in the guest's numbering
}{
	{"ide", 1, 1, "ide:B:U with B and U 0–1", "hd", 2},
	{"ata", 0, 5, "ata:0:U with U 0–5", "sd", 16},
	{"scsi", 0, 7, "scsi:0:U with U 0–7", "sd", 16},
	{"block", -1, 7, "block:N with N 0–7", "vd", 0},
}

// deviceKey is a parsed device key.
type deviceKey struct {
	kind      int // index into deviceBuses
	bus, unit int
}

// order sorts devices: ide, ata, scsi, block; by bus and unit.
func (d deviceKey) order() int { return d.kind*100 + d.bus*10 + d.unit }

// ParseDevice checks a device key: ok is false when key is not a device key
// at all, err set when it names a device bus with out-of-range numbers.
func ParseDevice(key string) (ok bool, err error) {
	_, ok, err = parseDevice(key)
	return ok, err
}

func parseDevice(key string) (d deviceKey, ok bool, err error) {
	for i, b := range deviceBuses {
		rest, found := strings.CutPrefix(key, b.prefix+":")
		if !found {
			continue
		}
		parts := strings.Split(rest, ":")
		want := 2
		if b.maxBus < 0 {
			want = 1
		}
		if len(parts) != want {
			return d, false, nil
		}
		nums := make([]int, len(parts))
		for j, p := range parts {
			n, convErr := strconv.Atoi(p)
			if convErr != nil || len(p) != 1 {
				return d, true, fmt.Errorf("no such device; devices are %s", b.grammar)
			}
			nums[j] = n
		}
		d = deviceKey{kind: i, unit: nums[len(nums)-1]}
		if b.maxBus >= 0 {
			d.bus = nums[0]
		}
		if (b.maxBus >= 0 && d.bus > b.maxBus) || d.unit > b.maxUnit {
			return deviceKey{}, true, fmt.Errorf("no such device; devices are %s", b.grammar)
		}
		return d, true, nil
	}
	return d, false, nil
}

// Address is where a device key attaches its drive: the bus kind (ide, ata,
// scsi or block), the bus number (0 for ata, scsi and block) and the unit
// (block:N's N).
type Address struct {
	Kind      string
	Bus, Unit int
}

// DeviceAddress parses a device key into its Address; the error names the
// grammar of the bus, or says key is no device key at all.
func DeviceAddress(key string) (Address, error) {
	d, ok, err := parseDevice(key)
	switch {
	case err != nil:
		return Address{}, err
	case !ok:
		return Address{}, fmt.Errorf("not a device key; devices are ide:B:U, ata:0:U, scsi:0:U or block:N")
	}
	return Address{Kind: deviceBuses[d.kind].prefix, Bus: d.bus, Unit: d.unit}, nil
}

// CompareDeviceKeys orders two valid device keys as Devices does (ide, ata,
// scsi, block; by bus and unit): negative when a comes first.
func CompareDeviceKeys(a, b string) int {
	da, _, _ := parseDevice(a)
	db, _, _ := parseDevice(b)
	return da.order() - db.order()
}

// IsDeviceKey reports whether key names a drive device within range:
// ide:B:U (B, U 0–1), ata:0:U (U 0–5), scsi:0:U (U 0–7) or block:N (N 0–7).
func IsDeviceKey(key string) bool {
	_, ok, err := parseDevice(key)
	return ok && err == nil
}

// Devices returns the server's attached drives in a stable order (ide, ata,
// scsi, block; by bus and unit).
func Devices(config map[string]string) []Device {
	var ds []Device
	for k, v := range config {
		if IsDeviceKey(k) && v != "" {
			media := config[k+":media"]
			if media == "" {
				media = "disk"
			}
			ds = append(ds, Device{Key: k, Drive: v, Media: media})
		}
	}
	slices.SortFunc(ds, func(a, b Device) int { return CompareDeviceKeys(a.Key, b.Key) })
	return ds
}

// BootDevice returns the device the server boots from: the first device of
// boot, or where boot is unset the first attached disk (not cdrom).
func BootDevice(config map[string]string) (Device, bool) {
	ds := Devices(config)
	if first, _, _ := strings.Cut(strings.TrimSpace(config["boot"]), " "); first != "" {
		for _, d := range ds {
			if d.Key == first {
				return d, true
			}
		}
		return Device{}, false
	}
	for _, d := range ds {
		if d.Media == "disk" {
			return d, true
		}
	}
	return Device{}, false
}

// GuestDeviceName is the name under /dev the guest sees a device key's
// drive as, the way a PC would name it: ide:B:U → hda…hdd, scsi/ata:0:U →
// sda…, block:N → vda…; ok is false for a key that is no device key.
func GuestDeviceName(key string) (name string, ok bool) {
	d, ok, err := parseDevice(key)
	if !ok || err != nil {
		return "", false
	}
	b := deviceBuses[d.kind]
	return b.guestPrefix + letters(d.bus*b.perBus+d.unit), true
}

// letters is a, b, …, z, aa, ab, … like Linux disk names.
func letters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

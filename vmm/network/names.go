package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// prefix starts the name of every device and firewall rule Hearth owns.
	prefix = "hearth"
	// vlanPrefix starts the names of VLAN bridges, which Hearth creates on demand.
	vlanPrefix = prefix + "v"
	// maxNICs bounds NIC indices so that a host veth name stays within IFNAMSIZ.
	maxNICs = 10
)

// Names derives the names of one Hearth instance's devices on the host from
// the instance's name, so that several Hearths on one host never take (or
// tear down) each other's bridges and veths. Every name starts "hearth" and
// stays within the kernel's 15 characters:
//
//   - public bridge (the default; --bridge overrides it): "hearth0" for the
//     instance "hearth", else "hearth-" + the instance name when that fits,
//     else "hearth-" + 8 hex digits of sha256(instance);
//   - VLAN bridge: "hearthv" + 8 hex digits: the VLAN UUID's first 8 for the
//     instance "hearth" (an administrator can tell the VLAN), else those of
//     sha256(instance/VLAN);
//   - host end of NIC n: "hearth" + 8 hex digits of sha256(ID) (instance
//     "hearth") or of sha256(instance/ID) (any other) + n, with the owner
//     written in its alias ("hearth:ID:n", "hearth:instance/ID:n") so that a
//     hash collision is detected, never a takeover.
//
// The instance "hearth" (the zero Names too) keeps the names every Hearth
// used before instances existed, so an upgraded appliance finds its running
// guests' devices again.
type Names struct{ instance string }

// legacyInstance is the instance whose names are those of Hearth before instances.
const legacyInstance = "hearth"

// NamesOf returns the names of instance's devices ("" is the instance "hearth").
func NamesOf(instance string) Names {
	if instance == legacyInstance {
		instance = ""
	}
	return Names{instance: instance}
}

// PublicBridge is the default name of the instance's public bridge.
func (n Names) PublicBridge() string {
	switch {
	case n.instance == "":
		return DefaultBridge
	case len(prefix)+1+len(n.instance) < unix.IFNAMSIZ:
		return prefix + "-" + n.instance
	}
	return prefix + "-" + hash8(n.instance)
}

// VLANBridge is the name of the bridge of VLAN vlan (a UUID).
func (n Names) VLANBridge(vlan string) string {
	if n.instance != "" {
		return vlanPrefix + hash8(n.instance+"/"+vlan)
	}
	hexDigits := strings.ToLower(strings.ReplaceAll(vlan, "-", ""))
	if len(hexDigits) > 8 {
		hexDigits = hexDigits[:8]
	}
	return vlanPrefix + hexDigits
}

// hostVeth is the host end of NIC index of guest id: the stem and the
// index, 15 characters.
func (n Names) hostVeth(id string, index int) string {
	return n.vethStem(id) + fmt.Sprint(index)
}

func (n Names) vethStem(id string) string {
	return prefix + hash8(n.qualified(id))
}

// vethOwner is the alias written on a host veth so that a hash collision
// between two ids is detected instead of one guest taking over another's NIC.
func (n Names) vethOwner(id string, index int) string {
	return n.ownerPrefix(id) + fmt.Sprint(index)
}

func (n Names) ownerPrefix(id string) string { return prefix + ":" + n.qualified(id) + ":" }

// bridgeOwner is the alias that marks the instance's public bridge.
func (n Names) bridgeOwner() string {
	if n.instance == "" {
		return prefix + ":" + legacyInstance
	}
	return prefix + ":" + n.instance
}

// qualified is id prefixed with the instance ("/" is in no guest id).
func (n Names) qualified(id string) string {
	if n.instance == "" {
		return id
	}
	return n.instance + "/" + id
}

// hash8 is 8 hex digits of s's SHA-256.
func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// tableName is what WithFilterTable accepts: safe in nft's syntax unquoted.
var tableName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: guest id %q (want letters, digits, '.', '_', '-', at most 128)", ErrInvalid, id)
	}
	return nil
}

// RandomMAC returns a random locally administered unicast MAC in the form
// aa:bb:cc:dd:ee:ff. Uniqueness across servers is the caller's to check.
func RandomMAC() string {
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = b[0]&^0x01 | 0x02 // unicast, locally administered
	return net.HardwareAddr(b).String()
}

// ValidMAC checks that mac is a unicast Ethernet address written
// aa:bb:cc:dd:ee:ff (either case), as the guest's NIC can carry it.
func ValidMAC(mac string) error {
	_, err := parseMAC(mac)
	return err
}

func parseMAC(mac string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || len(mac) != 17 || strings.Contains(mac, "-") {
		return nil, fmt.Errorf("%w: MAC %q (want aa:bb:cc:dd:ee:ff)", ErrInvalid, mac)
	}
	if hw[0]&0x01 != 0 {
		return nil, fmt.Errorf("%w: MAC %q is a multicast address", ErrInvalid, mac)
	}
	if string(hw) == "\x00\x00\x00\x00\x00\x00" {
		return nil, fmt.Errorf("%w: MAC %q is all zeros", ErrInvalid, mac)
	}
	return hw, nil
}

// validIfName checks a device name against the kernel's rules.
func validIfName(name string) bool {
	return name != "" && len(name) < unix.IFNAMSIZ && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/: \t\n")
}

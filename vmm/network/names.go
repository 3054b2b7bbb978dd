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

// VLANBridge is the name of the bridge of VLAN vlan (a UUID): "hearthv" and
// the UUID's first 8 hex digits, so an administrator can tell which VLAN a
// bridge belongs to.
func VLANBridge(vlan string) string {
	hexDigits := strings.ToLower(strings.ReplaceAll(vlan, "-", ""))
	if len(hexDigits) > 8 {
		hexDigits = hexDigits[:8]
	}
	return vlanPrefix + hexDigits
}

// hostVeth is the host end of NIC index of guest id: "hearth", 8 hex digits
// of the id's SHA-256 and the index, 15 characters (the kernel's limit).
func hostVeth(id string, index int) string {
	return vethStem(id) + fmt.Sprint(index)
}

func vethStem(id string) string {
	sum := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(sum[:4])
}

// vethOwner is the alias written on a host veth so that a hash collision
// between two ids is detected instead of one guest taking over another's NIC.
func vethOwner(id string, index int) string {
	return ownerPrefix(id) + fmt.Sprint(index)
}

func ownerPrefix(id string) string { return prefix + ":" + id + ":" }

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

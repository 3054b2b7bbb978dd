package eh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"hearth/internal/ehkeys"
	"hearth/internal/units"
)

// A check validates one value and returns its canonical form; its error says
// what is wrong with the value, the caller adds the key.
type check func(v string) (string, error)

func oneOf(words ...string) check {
	return func(v string) (string, error) {
		lv := strings.ToLower(v)
		for _, w := range words {
			if lv == w {
				return w, nil
			}
		}
		return "", fmt.Errorf("%s is not one of %s", quote(v), strings.Join(words, ", "))
	}
}

func intRange(min, max int64, unit string) check {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%s is not a whole number of %s", quote(v), unit)
		}
		if n < min || n > max {
			return "", fmt.Errorf("%d is out of range %d–%d %s", n, min, max, unit)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func either(word string, c check) check {
	return func(v string) (string, error) {
		if strings.EqualFold(v, word) {
			return word, nil
		}
		n, err := c(v)
		if err != nil {
			return "", fmt.Errorf("%w (or %s)", err, word)
		}
		return n, nil
	}
}

// line is free text on one line, at most max bytes.
func line(max int) check {
	return func(v string) (string, error) {
		if strings.Contains(v, "\n") {
			return "", errors.New("must be one line")
		}
		if len(v) > max {
			return "", fmt.Errorf("longer than %d bytes", max)
		}
		return v, nil
	}
}

// text is free text, newlines allowed, at most max bytes.
func text(max int) check {
	return func(v string) (string, error) {
		if len(v) > max {
			return "", fmt.Errorf("longer than %d bytes", max)
		}
		return v, nil
	}
}

// words is a space-separated list of items each passing item (nil: any word),
// normalised to single spaces.
func words(item check) check {
	return func(v string) (string, error) {
		fields := strings.Fields(v)
		for i, f := range fields {
			if item == nil {
				continue
			}
			n, err := item(f)
			if err != nil {
				return "", err
			}
			fields[i] = n
		}
		return strings.Join(fields, " "), nil
	}
}

// checkUUID accepts the 8-4-4-4-12 hex form in any case and returns it in lower case.
func checkUUID(v string) (string, error) {
	if !IsUUID(v) {
		return "", fmt.Errorf("%s is not a UUID", quote(v))
	}
	return strings.ToLower(v), nil
}

// IsUUID reports whether s has the UUID form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX (hex, any case).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// checkIPv4 accepts a host IPv4 address (not unspecified, multicast or broadcast).
func checkIPv4(v string) (string, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return "", fmt.Errorf("%s is not an IPv4 address", quote(v))
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "", fmt.Errorf("%s is not a host address", v)
	}
	return a.String(), nil
}

// checkIP accepts any host IPv4 or IPv6 address.
func checkIP(v string) (string, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%s is not an IP address", quote(v))
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return "", fmt.Errorf("%s is not a host address", v)
	}
	return a.Unmap().String(), nil
}

// checkMAC accepts a unicast Ethernet address in any common notation and
// returns it as lower-case aa:bb:cc:dd:ee:ff.
func checkMAC(v string) (string, error) {
	hw, err := net.ParseMAC(v)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%s is not an Ethernet MAC address", quote(v))
	}
	if hw[0]&1 != 0 {
		return "", fmt.Errorf("%s is a multicast address; a NIC needs a unicast one", v)
	}
	if string(hw) == "\x00\x00\x00\x00\x00\x00" {
		return "", errors.New("00:00:00:00:00:00 is not a usable MAC address")
	}
	return hw.String(), nil
}

// checkPortRule accepts a firewall/block item: tcp/PORT, udp/PORT (or a
// PORT-PORT range), or a bare protocol tcp, udp or icmp.
func checkPortRule(v string) (string, error) {
	r, err := ehkeys.ParsePortRule(v)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

func checkSize(v string) (string, error) {
	n, err := ParseSize(v)
	if err != nil {
		return "", errors.New(AsError(err).Message)
	}
	if n < 1 {
		return "", errors.New("a drive holds at least 1 byte")
	}
	if n > MaxDriveSize {
		return "", fmt.Errorf("%s is too large: the largest drive is %s", units.Size(n), units.Size(MaxDriveSize))
	}
	return strconv.FormatInt(n, 10), nil
}

// checkPassword enforces the VNC limit: DES authentication uses at most 8
// bytes, and a longer password is refused rather than silently cut.
func checkPassword(v string) (string, error) {
	if len(v) > MaxPasswordLength {
		return "", fmt.Errorf("%d characters; VNC passwords are at most %d (never cut)", len(v), MaxPasswordLength)
	}
	return v, nil
}

package eh

import (
	"fmt"
	"slices"
	"strings"

	"hearth/internal/ehkeys"
)

// nicKey splits nic:N:REST for N 0 or 1.
func nicKey(key string) (n int, rest string, ok bool) {
	s, found := strings.CutPrefix(key, "nic:")
	if !found || len(s) < 2 || s[1] != ':' || (s[0] != '0' && s[0] != '1') {
		return 0, "", false
	}
	return int(s[0] - '0'), s[2:], true
}

var (
	checkBool     = oneOf("true", "false")
	checkMedia    = oneOf("disk", "cdrom")
	checkNICModel = oneOf("e1000", "rtl8139", "virtio")
	checkVNC      = either("auto", checkIP)
)

// checkVNCTLS refuses vnc:tls on: Hearth's VNC ports speak plain RFB with
// VNC authentication (the websocket console rides the dashboard's HTTPS), so
// a server must not record a TLS promise it would not keep.
func checkVNCTLS(v string) (string, error) {
	if v != "off" {
		return "", fmt.Errorf("%s is not supported: Hearth's VNC ports do not speak VeNCrypt (use off, or the dashboard's console over HTTPS)", quote(v))
	}
	return v, nil
}

// checkSignal stores a shutdown:signal as Hearth names it (SIGRTMIN+4).
func checkSignal(v string) (string, error) {
	sig, err := ehkeys.ShutdownSignal(v)
	if err != nil {
		return "", err
	}
	return ehkeys.SignalName(sig), nil
}

func checkBoot(v string) (string, error) {
	fields := strings.Fields(v)
	for i, f := range fields {
		if !ehkeys.IsDeviceKey(f) {
			return "", fmt.Errorf("%s is not a device (ide:B:U, ata:0:U, scsi:0:U, block:N)", quote(f))
		}
		if slices.Contains(fields[:i], f) {
			return "", fmt.Errorf("%s is listed twice", f)
		}
	}
	return strings.Join(fields, " "), nil
}

// serverRule is the server key schema (reference §4.2 and the seed); live
// keys are the seed's list of keys settable on an active server.
func serverRule(key string) (rule, error) {
	switch key {
	case "name":
		return rule{check: line(MaxNameLength), live: true, nonEmpty: true}, nil
	case "cpu":
		return rule{check: intRange(MinCPU, MaxCPU, "MHz"), live: true}, nil
	case "persistent":
		return rule{check: checkBool, live: true}, nil
	case "tags":
		return rule{check: words(nil), live: true}, nil
	case "password":
		return rule{check: checkPassword, live: true}, nil
	case "vnc:password":
		return rule{check: checkPassword, live: true, canonical: "password"}, nil
	case "smp":
		return rule{check: either("auto", intRange(1, MaxSMP, "vCPUs"))}, nil
	case "mem":
		return rule{check: intRange(MinMem, MaxMem, "MB")}, nil
	case "boot":
		return rule{check: checkBoot}, nil
	case "vnc":
		return rule{check: checkVNC}, nil
	case "vnc:ip":
		return rule{check: checkVNC, canonical: "vnc"}, nil
	case "vnc:tls":
		return rule{check: checkVNCTLS}, nil
	case "shutdown:signal":
		return rule{check: checkSignal}, nil
	case "avoid:drives", "avoid:servers":
		return rule{check: words(checkUUID)}, nil
	case "parent":
		return rule{check: checkUUID}, nil
	case "type": // Hearth's guest type; EH's servers were all "vm"
		return rule{check: oneOf(TypeContainer, TypeVM)}, nil
	case "description":
		return rule{check: text(MaxTextLength)}, nil
	case "use":
		return rule{check: words(nil)}, nil
	}
	if userKey(key) {
		return rule{check: text(MaxTextLength), live: true}, nil
	}
	if dev, ok := strings.CutSuffix(key, ":media"); ok {
		if isDev, err := ehkeys.ParseDevice(dev); isDev {
			if err != nil {
				return rule{}, err
			}
			return rule{check: checkMedia}, nil
		}
	}
	if isDev, err := ehkeys.ParseDevice(key); isDev {
		if err != nil {
			return rule{}, err
		}
		return rule{check: checkUUID}, nil
	}
	if n, rest, ok := nicKey(key); ok {
		switch {
		case rest == "model":
			return rule{check: checkNICModel}, nil
		case rest == "mac":
			return rule{check: checkMAC}, nil
		case n == 0 && rest == "dhcp":
			return rule{check: either("auto", checkIPv4)}, nil
		// The firewall is applied live (Guests.Set), on either NIC.
		case rest == "firewall:policy":
			return rule{check: oneOf("accept", "reject"), live: true}, nil
		case rest == "firewall:accept" || rest == "firewall:reject":
			return rule{check: words(checkPortRule), live: true}, nil
		case n == 0 && rest == "block": // enforced like the firewall keys, before them
			return rule{check: words(checkPortRule), live: true}, nil
		case n == 1 && rest == "vlan":
			return rule{check: checkUUID}, nil
		}
	}
	return rule{}, errUnknownKey
}

// Hearth's keys of server info for a passing state, beside a status that
// stays one of the reference's for existing clients.
const (
	// KeyState is what is happening to the server now: starting (its
	// status is still stopped or dead) or shutting-down (still active).
	KeyState = "hearth:state"
	// KeyDeadline is, while shutting down, when a guest still running is
	// killed: Unix seconds, like started.
	KeyDeadline = "hearth:deadline"
)

// serverPassing lists the keys of a passing state: a client may echo them
// back with whatever value it last saw.
func serverPassing(key string) bool { return key == KeyState || key == KeyDeadline }

// serverReadOnly lists the output keys of server info (§4.3 and the aliases).
func serverReadOnly(key string) bool {
	switch key {
	case "server", "started", "error", "host", "smp:cores", "vnc:port", "cpu:usage", "mem:usage", KeyState, KeyDeadline,
		"rx", "tx", "rx:bytes", "tx:bytes", "rx:packets", "tx:packets":
		return true
	}
	if commonReadOnly(key) {
		return true
	}
	if _, rest, ok := nicKey(key); ok {
		switch rest {
		case "ip", "dhcp:ip", "rx:bytes", "rx:packets", "tx:bytes", "tx:packets":
			return true
		}
	}
	for _, c := range []string{":read:bytes", ":read:requests", ":write:bytes", ":write:requests"} {
		if dev, ok := strings.CutSuffix(key, c); ok && ehkeys.IsDeviceKey(dev) {
			return true
		}
	}
	return false
}

// serverCleanup: detaching a device drops its media; removing a NIC's model
// (the NIC itself) drops the NIC's other keys.
func serverCleanup(removed string, next Props) []string {
	if ehkeys.IsDeviceKey(removed) {
		return []string{removed + ":media"}
	}
	if n, rest, ok := nicKey(removed); ok && rest == "model" {
		var deps []string
		prefix := fmt.Sprintf("nic:%d:", n)
		for k := range next {
			if strings.HasPrefix(k, prefix) {
				deps = append(deps, k)
			}
		}
		return deps
	}
	return nil
}

func serverConsistent(p Props) *Error {
	drives := map[string]string{}
	for _, d := range ehkeys.Devices(p) {
		if prev, dup := drives[d.Drive]; dup {
			return usageKey(d.Key, "drive %s is attached twice (%s and %s)", d.Drive, prev, d.Key)
		}
		drives[d.Drive] = d.Key
	}
	for _, k := range p.Keys() {
		if dev, ok := strings.CutSuffix(k, ":media"); ok && ehkeys.IsDeviceKey(dev) && p[dev] == "" {
			return usageKey(k, "key %s: no drive is attached as %s", k, dev)
		}
		if n, rest, ok := nicKey(k); ok && rest != "model" && rest != "block" {
			if p[fmt.Sprintf("nic:%d:model", n)] == "" {
				return usageKey(k, "key %s needs nic:%d:model (the NIC itself)", k, n)
			}
		}
	}
	for _, dev := range strings.Fields(p["boot"]) {
		if p[dev] == "" {
			return usageKey("boot", "key boot: no drive is attached as %s", dev)
		}
	}
	if m0, m1 := p["nic:0:mac"], p["nic:1:mac"]; m0 != "" && m0 == m1 {
		return usageKey("nic:1:mac", "keys nic:0:mac and nic:1:mac are both %s", m0)
	}
	return nil
}

var servers = &schema{
	kind:       "server",
	rule:       serverRule,
	readOnly:   serverReadOnly,
	passing:    serverPassing,
	required:   []string{"cpu", "mem"}, // not name: basingse (EH-2, 2014) creates servers without one
	defaults:   Props{"smp": "auto", "persistent": "false", "type": TypeContainer},
	cleanup:    serverCleanup,
	consistent: serverConsistent,
}

// NewServer validates the body of /servers/create[/stopped] and returns the
// configuration to store: canonical keys (password, vnc), normalised values
// (lower-case UUIDs and MACs), defaults smp auto and persistent false. cpu and
// mem are required; name may be missing (a real EH-2 client created servers
// without one, so the caller should give nameless servers a name such as
// their UUID) but not given empty.
// Errors are usage errors naming the key.
func NewServer(in Props) (Props, error) {
	return servers.create(in)
}

// UpdateServer validates a /servers/SERVER/set body against the stored
// configuration current and returns the configuration to store and the keys
// that changed (value "" = removed, for Guests.Set). On an active server
// only name, cpu, persistent, tags, user:*, password/vnc:password and nic:N:firewall:* may
// change; any other changed key is a busy error naming it (a key sent with
// its current value is not a change). current and in are not modified.
func UpdateServer(current, in Props, active bool) (next, changed Props, err error) {
	return servers.update(current, in, active)
}

// ServerOutputKey reports whether key is one server info emits that is not
// stored configuration: identity, status and runtime keys, counters, and the
// output aliases vnc:password and vnc:ip (stored as password and vnc). Any
// key that is no configuration key counts, so a runtime key the schema does
// not list is never taken for something a client could set.
func ServerOutputKey(key string) bool {
	if key == "vnc:password" || key == "vnc:ip" || serverReadOnly(key) {
		return true
	}
	_, err := serverRule(key)
	return err != nil
}

// LiveServerKey reports whether key may be set on an active server.
func LiveServerKey(key string) bool {
	r, err := serverRule(key)
	return err == nil && r.live
}

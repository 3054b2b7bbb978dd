package eh

import (
	"errors"
	"strings"
)

// Values of the server key type: what kind of guest runs the server.
const (
	TypeContainer = "container" // a system container (runc, or Kata's VM around it): the default
	TypeVM        = "vm"        // a full virtual machine (QEMU): firmware, bootloader, VGA
)

// Validation ranges (the reference gives none; clients used 500–20000 MHz and
// 256–24576 MB, these bounds leave room on both sides).
const (
	MinCPU            = 100      // cpu, MHz of core time
	MaxCPU            = 100_000  // cpu, MHz
	MinMem            = 32       // mem, MB
	MaxMem            = 1 << 20  // mem, MB (1 TiB)
	MaxSMP            = 128      // smp, virtual CPUs
	MaxDriveSize      = 1 << 44  // size, bytes (16 TiB, the ext4 file limit)
	MaxPasswordLength = 8        // password / vnc:password, bytes (VNC DES)
	MaxNameLength     = 256      // name, bytes
	MaxTextLength     = 64 << 10 // user:*, description, install_notes, url, bytes
)

// A rule says how one input key is checked and stored.
type rule struct {
	check      check
	canonical  string // stored under this key instead (an input alias); "" = the key itself
	live       bool   // may change while the server is active
	createOnly bool   // may be given at creation only (a later equal value is accepted)
	// nonEmpty: when given, the value must not be empty. Missing is still
	// accepted on create (real clients create nameless objects, which are
	// named by their UUID), but an empty name given on purpose, or a name
	// removed by set, is refused: it leaves an object nobody can tell apart.
	nonEmpty bool
}

// A schema is the key set of one object type.
type schema struct {
	kind       string                                    // "server", "drive", "resource", for messages
	rule       func(key string) (rule, error)            // errUnknownKey when the key is not known at all
	readOnly   func(key string) bool                     // output keys a client may echo back unchanged
	passing    func(key string) bool                     // output keys of a passing state: echoed back with any value, ignored
	required   []string                                  // present on creation, never removed
	defaults   Props                                     // filled in on creation and when removed
	cleanup    func(removed string, next Props) []string // dependent keys that go with a removed key
	consistent func(p Props) *Error                      // whole-object checks on the result
}

var errUnknownKey = errors.New("unknown key")

// create validates a creation body.
func (s *schema) create(in Props) (Props, error) {
	next, _, err := s.apply(nil, in, false)
	return next, err
}

// update validates a set body against the stored properties current.
func (s *schema) update(current, in Props, active bool) (next, changed Props, err error) {
	if current == nil {
		current = Props{} // an update is never a creation
	}
	return s.apply(current, in, active)
}

// apply validates in against current (nil when creating) and returns the
// resulting properties and the keys that changed ("" = removed). It never
// modifies current or in; on error nothing is returned.
func (s *schema) apply(current, in Props, active bool) (next, changed Props, err error) {
	creating := current == nil
	values := make(map[string]string, len(in)) // canonical key → normalised value
	given := make(map[string]string, len(in))  // canonical key → the input key that set it
	for _, k := range in.Keys() {
		v := in[k]
		r, err := s.rule(k)
		if errors.Is(err, errUnknownKey) {
			if s.readOnly(k) {
				if current != nil && (current[k] == v || s.passing != nil && s.passing(k)) {
					continue // echoing an output key back unchanged is harmless (a passing state may have passed since)
				}
				return nil, nil, usageKey(k, "key %s is read-only", k)
			}
			return nil, nil, usageKey(k, "unknown %s key %s", s.kind, k)
		}
		if err != nil {
			return nil, nil, usageKey(k, "key %s: %v", k, err)
		}
		ck := k
		if r.canonical != "" {
			ck = r.canonical
		}
		nv := ""
		if v != "" {
			if nv, err = r.check(v); err != nil {
				return nil, nil, usageKey(k, "key %s: %v", k, err)
			}
		}
		if r.nonEmpty && strings.TrimSpace(nv) == "" && (creating || current[ck] != "") {
			return nil, nil, usageKey(k, "key %s cannot be empty: give the %s a %s", k, s.kind, k)
		}
		if prev, ok := given[ck]; ok && values[ck] != nv {
			return nil, nil, usageKey(k, "keys %s and %s disagree (%s vs %s)", prev, k, quote(values[ck]), quote(nv))
		}
		values[ck], given[ck] = nv, k
	}

	next = current.Clone()
	if next == nil {
		next = Props{}
	}
	changed = Props{}
	for _, ck := range Props(values).Keys() {
		nv := values[ck]
		if nv == current[ck] {
			continue
		}
		r, _ := s.rule(ck)
		if !creating && r.createOnly {
			return nil, nil, usageKey(given[ck], "key %s can only be chosen when the %s is created", given[ck], s.kind)
		}
		if active && !r.live {
			e := Busyf("key %s cannot be changed while the %s is active; stop it first", given[ck], s.kind)
			e.Key = given[ck]
			return nil, nil, e
		}
		changed[ck] = nv
		if nv != "" {
			next[ck] = nv
			continue
		}
		delete(next, ck)
		if s.cleanup == nil {
			continue
		}
		for _, dep := range s.cleanup(ck, next) {
			if _, explicit := values[dep]; !explicit && next[dep] != "" {
				delete(next, dep)
				changed[dep] = ""
			}
		}
	}
	for k, v := range s.defaults { // removing a defaulted key restores its default
		if next[k] == "" {
			next[k] = v
			if current[k] == v {
				delete(changed, k)
			} else if !creating {
				changed[k] = v
			}
		}
	}
	for _, k := range s.required {
		if next[k] != "" {
			continue
		}
		if creating {
			return nil, nil, usageKey(k, "key %s is required to create a %s", k, s.kind)
		}
		return nil, nil, usageKey(k, "key %s cannot be removed: every %s has one", k, s.kind)
	}
	if s.consistent != nil {
		if err := s.consistent(next); err != nil {
			return nil, nil, err
		}
	}
	return next, changed, nil
}

// commonReadOnly lists read-only keys every object type carries.
func commonReadOnly(key string) bool {
	switch key {
	case "user", "status", "claimed":
		return true
	}
	return false
}

// userKey accepts user:NAME (user-defined metadata) with a non-empty NAME.
func userKey(key string) bool {
	name, ok := strings.CutPrefix(key, "user:")
	return ok && name != ""
}

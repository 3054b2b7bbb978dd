// Package guest is the vocabulary the Manager (package vmm) and a hypervisor
// backend (such as vmm/containerd) share: what a guest is made of (Spec),
// what state it is in (Status), what it reports (Exit, Counters, Usage), its
// console stream, and the sentinel errors every guest error wraps. It
// imports nothing of Hearth but vmm/network's NIC type.
package guest

import (
	"fmt"
	"regexp"

	"hearth/vmm/network"
)

// NIC is one guest network interface; the network package owns the type so it
// need not import this one.
type NIC = network.NIC

// Firewall is a NIC's nic:N:firewall:* keys, enforced on its inbound traffic.
type Firewall = network.Firewall

// NICCounters are a NIC's traffic as seen by the guest.
type NICCounters = network.NICCounters

// Spec is what a guest is made of. A backend records it with the guest, so
// a restarted Hearth knows every guest it adopts.
type Spec struct {
	ID       string `json:"id"`             // container id: the server UUID
	Type     Type   `json:"type,omitempty"` // what runs the guest; "" (a guest an older Hearth recorded) = TypeContainer
	Hostname string `json:"hostname"`       // DNS-safe; empty = ID
	CPU      int    `json:"cpu"`            // MHz of host CPU time
	SMP      int    `json:"smp"`            // vCPUs; 0 = CPU / core MHz, rounded up
	Mem      int64  `json:"mem"`            // memory limit in MiB; 0 = none
	Boot     Disk   `json:"boot"`           // root filesystem (ext4, xfs, btrfs, or a partitioned disk); Device only names its counters
	Disks    []Disk `json:"disks"`          // further drives, block devices in the guest
	NICs     []NIC  `json:"nics"`
	// BootOrder is the server's boot key, device keys in order: a VM's
	// firmware tries them in turn (empty = the first disk).
	BootOrder []string `json:"bootorder,omitempty"`
	// IDSlot is the server's block of host ids (storage.Store.IDSlot): the
	// backend maps the guest's user namespace to it, so two servers' guests
	// never share a host id and a server's files keep their owners.
	IDSlot int `json:"idslot"`
	// IDMap is the host ids the guest's ids 0…Size-1 are, as the backend
	// resolved IDSlot at start (recorded with the guest, so a re-adopting
	// Hearth with another id base keeps what the guest runs with). Zero for
	// a guest without a user namespace (Kata: the VM is the boundary).
	IDMap IDMap `json:"idmap"`
}

// Type is what kind of guest a server runs: the server key type.
type Type string

const (
	TypeContainer Type = "container" // a system container: the guest's root is a drive's filesystem
	TypeVM        Type = "vm"        // a full virtual machine: QEMU boots the drives itself
)

// VM reports whether the guest is a full virtual machine.
func (g Spec) VM() bool { return g.Type == TypeVM }

// How a backend runs VM guests (vmm.Backend's Accelerator).
const (
	AccelKVM = "kvm" // hardware virtualisation through /dev/kvm
	AccelTCG = "tcg" // QEMU's software emulation: works anywhere, several times slower
)

// IDRange is the number of user and group ids each guest gets: the 16-bit
// range a stock distribution uses (as Incus's isolated idmaps).
const IDRange = 65536

// IDMap maps a guest's ids 0…Size-1 to host ids HostID…HostID+Size-1.
type IDMap struct {
	HostID uint32 `json:"host"`
	Size   uint32 `json:"size"`
}

// Disk is a drive image attached to a guest.
type Disk struct {
	Device   string `json:"dev"`             // name under /dev in the guest, e.g. "sdb"
	Key      string `json:"key,omitempty"`   // the server's device key, e.g. "ide:0:1": what its counters are named by
	Image    string `json:"img"`             // image file on the host
	ReadOnly bool   `json:"ro"`              // e.g. a cdrom
	CDROM    bool   `json:"cdrom,omitempty"` // :media cdrom: a VM sees a CD drive
}

// CounterKey is what the disk's counters are named by in server info: its
// device key (ide:0:1), or, for a guest an older Hearth recorded without
// one, its device name.
func (d Disk) CounterKey() string {
	if d.Key != "" {
		return d.Key
	}
	return d.Device
}

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$`)
	devicePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	hostPattern   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// Validate names the first field at fault (wrapping ErrInvalid or ErrBootDrive).
func (g Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
	}
	switch {
	case !idPattern.MatchString(g.ID):
		return bad("id %q: letters, digits, '_', '.', '-' only, at most 76", g.ID)
	case g.Type != "" && g.Type != TypeContainer && g.Type != TypeVM:
		return bad("type %q: container or vm", g.Type)
	case g.Hostname != "" && !hostPattern.MatchString(g.Hostname):
		return bad("hostname %q is not DNS-safe", g.Hostname)
	case g.CPU < 0:
		return bad("cpu %d: negative", g.CPU)
	case g.SMP < 0:
		return bad("smp %d: negative", g.SMP)
	case g.Mem < 0:
		return bad("mem %d: negative", g.Mem)
	case g.IDSlot < 0:
		return bad("id slot %d: negative", g.IDSlot)
	case g.Boot.Image == "":
		return fmt.Errorf("guest %s has no boot drive: %w", g.ID, ErrBootDrive)
	}
	seen := map[string]bool{}
	for _, d := range g.Disks {
		if !devicePattern.MatchString(d.Device) {
			return bad("disk device %q: a name under /dev like sdb", d.Device)
		}
		if seen[d.Device] {
			return bad("disk device %q used twice", d.Device)
		}
		seen[d.Device] = true
		if d.Image == "" {
			return bad("disk %s has no image", d.Device)
		}
	}
	nics := map[int]bool{}
	for _, n := range g.NICs {
		if n.Index < 0 || n.Index > 9 || nics[n.Index] {
			return bad("nic index %d: out of range or used twice", n.Index)
		}
		nics[n.Index] = true
	}
	return nil
}

// ValidID reports whether id can name a guest.
func ValidID(id string) bool { return idPattern.MatchString(id) }

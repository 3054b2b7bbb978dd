package containerd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// guestDevice is a device node as the guest sees it: a drive, or one of the
// character devices every guest gets.
type guestDevice struct {
	Path         string // in the guest, e.g. /dev/sdb
	Type         string // "b" (block) or "c" (character)
	Major, Minor int64
	ReadOnly     bool
	// Node is the node Hearth made for this guest on the host, owned by
	// guest root and bind-mounted at Path. Empty where the runtime creates
	// the node itself (Kata, inside its VM).
	Node string
}

// mode is the node's permission bits: 0666 for tun and fuse (any guest
// user opens them, as on a host), 0660 for a drive, 0440 for a read-only
// one.
func (d guestDevice) mode() uint32 {
	switch {
	case d.Type == "c":
		return 0o666
	case d.ReadOnly:
		return 0o440
	}
	return 0o660
}

// access is the devices cgroup access the guest gets.
func (d guestDevice) access() string {
	if d.ReadOnly {
		return "r"
	}
	return "rwm"
}

// guestCharDevices are the character devices beyond runc's defaults that a
// system container's services expect (VPNs, FUSE filesystems).
var guestCharDevices = []guestDevice{
	tunDevice,
	{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
}

// tunDevice opens tun and tap devices: a VM's QEMU attaches its NICs'
// taps through it.
var tunDevice = guestDevice{Path: "/dev/net/tun", Type: "c", Major: 10, Minor: 200}

// makeNodes creates each device's node in dir, owned by owner (the host id
// of guest root), and records it in the device's Node. In a user namespace
// runc would bind-mount the host's own node, which keeps its host owner
// and mode and so reads as nobody's, unusable by guest root.
func makeNodes(dir string, devices []guestDevice, owner uint32) error {
	// Only guest root reaches the nodes: the directory is its, 0700.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(dir, int(owner), int(owner)); err != nil {
		return err
	}
	for i := range devices {
		d := &devices[i]
		kind := uint32(unix.S_IFBLK)
		if d.Type == "c" {
			kind = unix.S_IFCHR
		}
		node := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(d.Path, "/dev/"), "/", "-"))
		os.Remove(node) // left by an earlier start of the guest
		if err := unix.Mknod(node, kind|d.mode(), int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("device node for %s: %w", d.Path, err)
		}
		// mknod applies the umask; the mode must be exact.
		if err := unix.Chmod(node, d.mode()); err != nil {
			return fmt.Errorf("device node for %s: %w", d.Path, err)
		}
		if err := os.Lchown(node, int(owner), int(owner)); err != nil {
			return fmt.Errorf("device node for %s: %w", d.Path, err)
		}
		d.Node = node
	}
	return nil
}

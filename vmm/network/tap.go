package network

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A full VM's NIC (NIC.Tap) is bridged rather than configured: its guest
// end ethN carries the frames of the card QEMU emulates, as KubeVirt's
// bridge binding does. Inside the guest's namespace Attach joins ethN and a
// tap device tapN (QEMU's end of the card) on a bridge brN; ethN has no
// address or route and a random MAC of its own, for the card's MAC on the
// bridge's own port would make the bridge take the frames sent to the VM
// for itself. Everything the host does stays as for a container: the host
// end of the veth is filtered for the NIC's MAC and address, and DHCP
// answers the NIC's MAC with its address, which the VM asks for. tapN
// belongs to guest root (owner and group), so QEMU, running as guest root
// without capabilities, opens it through /dev/net/tun; the devices vanish
// with the namespace when QEMU, its last process, ends.

// TapName is the tap device of NIC index in a VM guest's namespace: QEMU's
// -netdev tap,ifname=.
func TapName(index int) string { return "tap" + strconv.Itoa(index) }

// tapBridgeName is the bridge joining ethINDEX and TapName(index).
func tapBridgeName(index int) string { return "br" + strconv.Itoa(index) }

// owner is the host ids of a guest's root, which its tap devices belong to.
type owner struct{ uid, gid uint32 }

// guestRoot reads the host ids that uid and gid 0 of process pid are (the
// same for a process without a user namespace of its own).
func guestRoot(pid uint32) (owner, error) {
	uid, err := hostIDOfRoot(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		return owner{}, err
	}
	gid, err := hostIDOfRoot(fmt.Sprintf("/proc/%d/gid_map", pid))
	return owner{uid: uid, gid: gid}, err
}

// hostIDOfRoot finds id 0 in a uid_map or gid_map ("inside outside count"
// per line).
func hostIDOfRoot(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: guest root: %v", ErrNotFound, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var inside, outside, count uint32
		if _, err := fmt.Sscan(s.Text(), &inside, &outside, &count); err == nil && inside == 0 && count > 0 {
			return outside, nil
		}
	}
	return 0, fmt.Errorf("%w: guest root: id 0 is not mapped in %s", ErrNotFound, path)
}

// bridgeTap joins the guest end eth of NIC index and a new tap device
// owned by root on a new bridge in the guest's namespace ns (inside's),
// all up, with IPv6 off in the namespace: its own stack has nothing to say
// on the VM's network, and the host would drop it.
func bridgeTap(ns netns.NsHandle, inside *netlink.Handle, eth netlink.Link, index int, root owner) error {
	tap := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: TapName(index)},
		Mode:      netlink.TUNTAP_MODE_TAP,
		Flags:     netlink.TUNTAP_NO_PI, // QEMU sets its own flags as it attaches
		Owner:     root.uid,
		Group:     root.gid,
	}
	err := runIn(ns, func() error {
		for _, conf := range []string{"all", "default"} {
			if err := setSysctl("ipv6/conf/"+conf+"/disable_ipv6", "1"); err != nil {
				return err
			}
		}
		// The ioctl makes the tap in the namespace of the thread.
		if err := inside.LinkAdd(tap); err != nil {
			return fmt.Errorf("create %s: %w", tap.Name, err)
		}
		for _, f := range tap.Fds { // persistent: QEMU opens it again by name
			f.Close()
		}
		return nil
	})
	if err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: tapBridgeName(index)}}
	if err := inside.LinkAdd(br); err != nil {
		return fmt.Errorf("create %s: %w", br.Name, err)
	}
	for _, port := range []netlink.Link{eth, tap} {
		if err := inside.LinkSetMaster(port, br); err != nil {
			return fmt.Errorf("join %s to %s: %w", port.Attrs().Name, br.Name, err)
		}
	}
	for _, l := range []netlink.Link{br, tap, eth} {
		if err := inside.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring up %s: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// randomHardwareAddr is a random locally administered unicast MAC.
func randomHardwareAddr() net.HardwareAddr {
	mac, _ := net.ParseMAC(RandomMAC())
	return mac
}

// runIn runs fn on a thread of its own in network namespace ns: what fn
// opens there (sockets, /proc/sys/net, /dev/net/tun) belongs to ns. The
// thread returns to its namespace before other goroutines may use it (the
// main thread, parked for good if left locked, would otherwise keep the
// guest's namespace alive and be what /proc/self/ns/net names); one that
// cannot return ends locked, with the goroutine.
func runIn(ns netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("network namespace of this thread: %w", err)
			return
		}
		defer back.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter the guest's network namespace: %w", err)
			return
		}
		err = fn()
		if netns.Set(back) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

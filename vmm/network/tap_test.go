package network

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestVMNICBridgedToATap: a full VM's NIC is, in the guest's namespace
// (owned by a user namespace, as runc makes it), eth0 with a MAC of its own
// and no address, bridged with tap0, which belongs to guest root. Frames
// written to tap0 (what QEMU's card sends) reach the host as the NIC's:
// DHCP answers the NIC's MAC through tap0, and the host's filter drops any
// other MAC. tap0 and br0 go with the namespace.
func TestVMNICBridgedToATap(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t)
	id := tn.newID()
	nic := tn.public(61)
	nic.Tap = true
	rootID := 2_000_000_000 + rand.IntN(1000)*65536
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: rootID, Size: 65536}}
	pid, path := tn.startGuest(&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids})
	if err := tn.Attach(context.Background(), id, pid, []NIC{nic}); err != nil {
		t.Fatal(err)
	}

	inside := netlinkIn(t, path)
	defer inside.Close()
	links := map[string]netlink.Link{}
	for _, name := range []string{"eth0", "tap0", "br0"} {
		l, err := inside.LinkByName(name)
		if err != nil {
			t.Fatalf("%s in the guest's namespace: %v", name, err)
		}
		links[name] = l
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is down", name)
		}
		if addrs, _ := inside.AddrList(l, netlink.FAMILY_ALL); len(addrs) != 0 {
			t.Errorf("%s has addresses %v, want none (IPv4 is the VM's, IPv6 off)", name, addrs)
		}
	}
	br := links["br0"].Attrs().Index
	if links["eth0"].Attrs().MasterIndex != br || links["tap0"].Attrs().MasterIndex != br {
		t.Errorf("eth0 and tap0 not both on br0")
	}
	if got := links["eth0"].Attrs().HardwareAddr.String(); got == nic.MAC {
		t.Errorf("eth0 carries the VM's MAC %s: br0 would keep the VM's frames for itself", got)
	}
	tap, ok := links["tap0"].(*netlink.Tuntap)
	if !ok || tap.Mode != netlink.TUNTAP_MODE_TAP || tap.Owner != uint32(rootID) || tap.Group != uint32(rootID) || tap.NonPersist {
		t.Errorf("tap0 %+v, want a persistent tap owned by guest root (%d)", links["tap0"], rootID)
	}
	if routes, _ := inside.RouteList(nil, netlink.FAMILY_V4); len(routes) != 0 {
		t.Errorf("routes %v in the VM's namespace, want none", routes)
	}

	fd := openTap(t, path, "tap0")
	defer unix.Close(fd)
	mac, other := mustMAC(t, nic.MAC), mustMAC(t, RandomMAC())
	myIP := nic.Address.Addr()
	write := func(b []byte) error { _, err := unix.Write(fd, b); return err }
	for _, c := range []struct {
		name    string
		f       frame
		arrives bool
	}{
		{"the NIC's frame", frame{broadcast, mac, etherIPv4, udp4(myIP, bcast4, 4000, 4000)}, true},
		{"another MAC's frame", frame{broadcast, other, etherIPv4, udp4(myIP, bcast4, 4000, 4000)}, false},
		{"eth0's own MAC", frame{broadcast, links["eth0"].Attrs().HardwareAddr, etherIPv4, udp4(myIP, bcast4, 4000, 4000)}, false},
	} {
		if got := sentFrameArrives(t, "", tn.Bridge(), c.f, write); got != c.arrives {
			t.Errorf("%s from tap0: reached the host bridge %v, want %v", c.name, got, c.arrives)
		}
	}

	offer := tapDHCP(t, fd, mac)
	if offer == nil {
		t.Error("no DHCP offer through tap0 for the NIC's MAC")
	} else if got := offer.YourIPAddr.String(); got != myIP.String() {
		t.Errorf("DHCP offers %s, want %s", got, myIP)
	}

	// What the host sends to the VM's MAC reaches the tap, not br0 itself.
	hostBridge, err := net.InterfaceByName(tn.Bridge())
	if err != nil {
		t.Fatal(err)
	}
	toVM := frame{mac, hostBridge.HardwareAddr, etherIPv4, udp4(tn.gateway(), myIP, 4000, 4000)}
	if !sentFrameArrives(t, path, "tap0", toVM, func(b []byte) error {
		tx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(tx)
		return unix.Sendto(tx, b, 0, &unix.SockaddrLinklayer{Ifindex: hostBridge.Index, Halen: 6, Addr: [8]byte(append(append([]byte{}, mac...), 0, 0))})
	}) {
		t.Error("a frame from the host to the VM's MAC never reached tap0")
	}

	tapMAC, brMAC := links["tap0"].Attrs().HardwareAddr, links["br0"].Attrs().HardwareAddr
	// Nothing of the test may hold the namespace.
	unix.Close(fd)
	inside.Close()
	tn.stopGuest(pid)
	tn.waitNamespaceGone(id)
	hostLinks, err := listLinks()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range hostLinks {
		if hw := l.Attrs().HardwareAddr.String(); hw == tapMAC.String() || hw == brMAC.String() {
			t.Errorf("%s of the VM's namespace moved to the host when it went", l.Attrs().Name)
		}
	}
	tn.detach(id)
	tn.close()
	tn.assertClean()
}

// netlinkIn opens netlink in the network namespace at path (its sockets
// hold the namespace until closed).
func netlinkIn(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// openTap attaches to tap device name in the namespace at path as QEMU
// does (TUNSETIFF by name) and returns its descriptor.
func openTap(t *testing.T, path, name string) int {
	t.Helper()
	var fd int
	err := inNamespace(path, func() (err error) {
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		var req [unix.IFNAMSIZ + 64]byte
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			unix.Close(fd)
			return os.NewSyscallError("TUNSETIFF", errno)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return fd
}

// tapDHCP sends DHCP discovers from mac into tap fd, as a VM's firmware
// does, and returns the offer for mac that comes back (nil = none).
func tapDHCP(t *testing.T, fd int, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	discover, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		t.Fatal(err)
	}
	f := frame{broadcast, mac, etherIPv4, udp4(netip.IPv4Unspecified(), bcast4, dhcpv4.ClientPort, dhcpv4.ServerPort)}
	buf := make([]byte, 2048)
	for range 10 {
		if _, err := unix.Write(fd, f.bytes(discover.ToBytes())); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
			if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100); n == 0 || errors.Is(err, unix.EINTR) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			n, err := unix.Read(fd, buf)
			if err != nil {
				t.Fatal(err)
			}
			// Ethernet, IPv4 (no options), UDP from the server's port.
			b := buf[:n]
			if len(b) < 42 || b[12] != 0x08 || b[13] != 0x00 || b[23] != unix.IPPROTO_UDP || int(b[34])<<8|int(b[35]) != dhcpv4.ServerPort {
				continue
			}
			m, err := dhcpv4.FromBytes(b[42:])
			if err == nil && m.MessageType() == dhcpv4.MessageTypeOffer && slices.Equal(m.ClientHWAddr, mac) {
				return m
			}
		}
	}
	return nil
}

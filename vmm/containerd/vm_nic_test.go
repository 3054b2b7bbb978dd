package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/network"
)

// TestVMNICsTapped: a VM's NICs are attached bridged to taps, with the
// recorded model or ElasticHosts' usual e1000; the spec's own stay as
// they were.
func TestVMNICsTapped(t *testing.T) {
	nics := []guest.NIC{{Index: 0, MAC: "02:00:00:00:00:01", Model: "virtio"}, {Index: 1, MAC: "02:00:00:00:00:02"}}
	got := vmNICs(nics)
	if len(got) != 2 || !got[0].Tap || !got[1].Tap || got[0].Model != "virtio" || got[1].Model != "e1000" || got[1].MAC != nics[1].MAC {
		t.Errorf("VM NICs %+v", got)
	}
	if nics[0].Tap || nics[1].Model != "" {
		t.Errorf("the spec's NICs changed: %+v", nics)
	}
}

// TestVMNICs: a VM's NIC of each model is QEMU's card with the server's
// MAC, on the NIC's bridge through the tap Hearth made in the guest's
// namespace: the firmware's iPXE, after the blank disk fails to boot, asks
// DHCP and the Switch acknowledges its request for the NIC's address (the
// request passed the host's anti-spoofing, the offer reached the VM).
// Delete leaves no NIC behind.
func TestVMNICs(t *testing.T) {
	netm, subnet := testSwitch(t, "m")
	h, data := openTestHost(t, WithNetwork(netm))
	if err := h.canRunVMs(); err != nil {
		t.Skip(err)
	}
	disk := filepath.Join(data, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	gateway := subnet.Addr().Next()
	for i, model := range []string{"e1000", "rtl8139", "virtio"} {
		id := guestID(t, i)
		t.Run(model, func(t *testing.T) {
			addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{gateway.As4()[0], gateway.As4()[1], gateway.As4()[2], byte(10 + i)}), 24)
			nic := guest.NIC{Index: 0, MAC: network.RandomMAC(), Address: addr, Gateway: gateway, Bridge: netm.Bridge(), Model: model}
			acks := watchDHCPAcks(t, netm.Bridge())
			spec := guest.Spec{ID: id, Type: guest.TypeVM, Mem: 64, IDSlot: 1,
				Boot: guest.Disk{Device: "ide:0:0", Key: "ide:0:0", Image: disk}, NICs: []guest.NIC{nic}}
			if err := h.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			g, _ := h.lookup(id)
			pid := g.task.Pid()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if mac, err := connectQMP(ctx, t, h, id).NICMAC(ctx, 0); err != nil || mac != nic.MAC {
				t.Errorf("QEMU's %s card has MAC %q (%v), want the server's %s", model, mac, err, nic.MAC)
			}
			select {
			case ack := <-acks(ctx, nic.MAC):
				if got := ack.YourIPAddr.String(); got != addr.Addr().String() {
					t.Errorf("DHCP acknowledged %s, want %s", got, addr.Addr())
				}
			case <-ctx.Done():
				con, _ := h.Console(id)
				t.Errorf("no DHCP ACK for %s on %s; console:\n%s", nic.MAC, netm.Bridge(), con.Backlog())
			}
			if c, err := h.Counters(context.Background(), id); err != nil || c.NICs[0].TxPackets == 0 {
				t.Errorf("NIC counters %+v (%v): the VM's requests not counted", c.NICs, err)
			}
			if err := h.Delete(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("QEMU (pid %d) still there after delete: %v", pid, err)
			}
			if _, err := netm.Counters(id, 0); err == nil {
				t.Error("the VM's NIC outlived Delete")
			}
		})
	}
}

// watchDHCPAcks listens on bridge (the host's side of every guest NIC on
// it) from now on; the function it returns yields the first DHCP ACK the
// bridge carries to mac.
func watchDHCPAcks(t *testing.T, bridge string) func(ctx context.Context, mac string) <-chan *dhcpv4.DHCPv4 {
	t.Helper()
	ifi, err := net.InterfaceByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	// ETH_P_ALL (in network byte order): only such sockets see what the
	// host sends, the DHCP server's answers.
	const all = unix.ETH_P_ALL<<8 | unix.ETH_P_ALL>>8
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, all)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: all, Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
	return func(ctx context.Context, mac string) <-chan *dhcpv4.DHCPv4 {
		hw, _ := net.ParseMAC(mac)
		found := make(chan *dhcpv4.DHCPv4, 1)
		go func() {
			buf := make([]byte, 2048)
			for ctx.Err() == nil {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				// Ethernet, IPv4 without options, UDP from the server's port.
				b := buf[:max(n, 0)]
				if err != nil || n < 42 || b[12] != 0x08 || b[13] != 0x00 || b[14] != 0x45 || b[23] != unix.IPPROTO_UDP || int(b[34])<<8|int(b[35]) != dhcpv4.ServerPort {
					continue
				}
				m, err := dhcpv4.FromBytes(b[42:])
				if err == nil && m.MessageType() == dhcpv4.MessageTypeAck && slices.Equal(m.ClientHWAddr, hw) {
					found <- m
					return
				}
			}
		}()
		return found
	}
}

// TestManagerVMNIC: a server of type vm with nic:0:model rtl8139 and a
// DHCP lease runs QEMU with that card and the MAC the server records; its
// firmware gets the lease from DHCP, as a container's DHCP client does.
func TestManagerVMNIC(t *testing.T) {
	needContainerd(t)
	netm, subnet := testSwitch(t, "m")
	h, data := openTestHost(t, WithNetwork(netm))
	if err := h.canRunVMs(); err != nil {
		t.Skip(err)
	}
	f := newManagerFixtureOn(t, h, data, []storage.Option{storage.WithSubnet(subnet)}, vmm.WithPublicBridge(netm.Bridge()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := f.Server(map[string]string{"type": "vm", "ide:0:0": f.drive(true, nil), "mem": "64", "nic:0:model": "rtl8139", "nic:0:dhcp": "auto"})
	acks := watchDHCPAcks(t, netm.Bridge())
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	srv, _ := f.Store.Server(ctx, id)
	mac := srv.Config["nic:0:mac"]
	lease, err := f.Store.Lease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := f.host.lookup(id)
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", g.task.Pid())); !bytes.Contains(cmdline, []byte("\x00rtl8139,")) {
		t.Errorf("QEMU's command line has no rtl8139 card: %q", cmdline)
	}
	if got, err := connectQMP(ctx, t, f.host, id).NICMAC(ctx, 0); err != nil || got != mac {
		t.Errorf("QEMU's card has MAC %q (%v), want the server's %q", got, err, mac)
	}
	select {
	case ack := <-acks(ctx, mac):
		if ack.YourIPAddr.String() != lease.String() {
			t.Errorf("DHCP acknowledged %s, want the lease %s", ack.YourIPAddr, lease)
		}
	case <-ctx.Done():
		t.Errorf("no DHCP ACK for %s", mac)
	}
	if o, _ := f.m.Observe(ctx, id); len(o.NICs) != 1 || o.NICs[0].IP != lease || o.NICs[0].MAC != mac {
		t.Errorf("observed NICs %+v, want the lease %s and MAC %s", o.NICs, lease, mac)
	}
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
}

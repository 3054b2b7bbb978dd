package containerd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/guest"
	"hearth/vmm/network"
)

var _ Network = (*network.Switch)(nil)

// TestGuestNetwork runs a guest with nic:0 on a bridge of its own: the
// address is configured before init runs, the guest reaches its gateway,
// the counters move, a restarted Hearth answers its DHCP again, busybox
// init is found to power off on SIGUSR2, and Delete leaves no NIC behind.
func TestGuestNetwork(t *testing.T) {
	needContainerd(t)
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rand.IntN(50)), byte(rand.IntN(256)), 0}), 24)
	gateway := subnet.Addr().Next()
	table := fmt.Sprintf("hearthtest%08x", rand.Uint32()) // the test's own nftables tables
	netm, err := network.New(network.WithBridge(fmt.Sprintf("hearthq%06x", rand.Uint32()&0xffffff)),
		network.WithGateway(netip.PrefixFrom(gateway, 24)), network.WithLogger(logtest.Logger(t)), network.WithFilterTable(table))
	if err != nil {
		t.Fatal(err)
	}
	h, data := openTestHost(t, WithNetwork(netm))
	img := testguest.Image(t, 32<<20)
	id := guestID(t, 0)
	addr := netip.PrefixFrom(gateway.Next(), 24)
	nic := guest.NIC{Index: 0, MAC: network.RandomMAC(), Address: addr, Gateway: gateway, Bridge: netm.Bridge(), Hostname: "netguest"}
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}, NICs: []guest.NIC{nic}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	c.Write([]byte("ip addr show eth0\n"))
	waitConsole(t, c, addr.String())
	waitConsole(t, c, nic.MAC)
	c.Write([]byte(fmt.Sprintf("ping -c 2 -W 2 %s && echo reached-$((3+4))\n", gateway)))
	waitConsole(t, c, "reached-7")
	var cnt guest.Counters
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cnt, err = h.Counters(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if cnt.NICs[0].TxPackets >= 2 && cnt.NICs[0].RxPackets >= 2 {
			break
		}
	}
	if cnt.NICs[0].TxPackets < 2 || cnt.NICs[0].RxPackets < 2 {
		t.Errorf("guest.NIC counters did not move: %+v", cnt.NICs)
	}
	st, _ := h.Status(context.Background(), id)
	if len(st.Spec.NICs) != 1 || st.Spec.NICs[0].Address != addr {
		t.Errorf("recorded NICs %+v", st.Spec.NICs)
	}
	if st.PowerOff != syscall.SIGUSR2 {
		t.Errorf("busybox init powers off on %d, want SIGUSR2", st.PowerOff)
	}
	// udhcpc inside asks the bridge's DHCP server: only what Attach (or,
	// after a restart, adoption) registered is answered.
	udhcpc := fmt.Sprintf("udhcpc -i eth0 -n -q -t 5 -T 1 -s /bin/true && echo lease-$((%d+1))\n", 40)
	c.Write([]byte(udhcpc))
	waitConsole(t, c, "lease-41")
	h.Close()
	netm.Close()
	netm, err = network.New(network.WithBridge(netm.Bridge()), network.WithGateway(netip.PrefixFrom(gateway, 24)), network.WithLogger(logtest.Logger(t)), network.WithFilterTable(table))
	if err != nil {
		t.Fatal(err)
	}
	h, err = Open(context.Background(), data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithIDBase(h.idBase), WithNetwork(netm), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // on failure too: the guest must not outlive the test
		h.Delete(context.Background(), id)
		h.Close()
		netm.Close()
	}()
	if st, _ := h.Status(context.Background(), id); st.PowerOff != syscall.SIGUSR2 {
		t.Errorf("re-adopted guest powers off on %d, want SIGUSR2", st.PowerOff)
	}
	c, _ = h.Console(id)
	c.Write([]byte(strings.Replace(udhcpc, "40", "50", 1)))
	waitConsole(t, c, "lease-51")
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := netm.Counters(id, 0); err == nil {
		t.Error("the guest's NIC outlived Delete")
	}
}

// TestInterruptedStartReleased: what a Start had acquired when Hearth died
// before the container existed (loop devices) is released by the next Open.
// (NICs come after the container: its deletion takes them along.)
func TestInterruptedStartReleased(t *testing.T) {
	h, data := openTestHost(t)
	id := guestID(t, 0)
	disk := filepath.Join(data, "disk.img")
	os.WriteFile(disk, make([]byte, 1<<20), 0o600)
	l, hold, err := attachLoop(disk, loopConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hold.Close()
	if err := h.recordIntent(id, intent{Loops: []loopDevice{l}}); err != nil {
		t.Fatal(err)
	}
	h.Close() // as if Hearth had died here

	h2, err := Open(context.Background(), data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithIDBase(h.idBase), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if b := loopBacking(l.Device); b == disk {
		t.Errorf("loop device %s still on %s", l.Device, b)
	}
	if _, err := os.Stat(filepath.Join(data, "run", id)); !os.IsNotExist(err) {
		t.Errorf("run/%s remains: %v", id, err)
	}
}

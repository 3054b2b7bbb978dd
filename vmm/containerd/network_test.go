package containerd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/internal/testguest"
	"hearth/vmm/guest"
	"hearth/vmm/network"
	"hearth/vmm/vmmtest"
)

var _ Network = (*network.Switch)(nil)

// TestGuestNetwork runs a guest with nic:0 on a bridge of its own: the
// address is configured before init runs, the guest reaches its gateway,
// the counters move, and Delete tears the namespace down.
func TestGuestNetwork(t *testing.T) {
	needContainerd(t)
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rand.IntN(50)), byte(rand.IntN(256)), 0}), 24)
	gateway := subnet.Addr().Next()
	netm, err := network.New(t.TempDir(), network.WithBridge(fmt.Sprintf("hearthq%06x", rand.Uint32()&0xffffff)),
		network.WithGateway(netip.PrefixFrom(gateway, 24)), network.WithLogger(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netm.Close(); err != nil {
			t.Errorf("network close: %v", err)
		}
	})
	h, _ := openTestHost(t, WithNetwork(netm))
	img := testguest.Image(t, 32<<20)
	id := guestID(t, 0)
	addr := netip.PrefixFrom(gateway.Next(), 24)
	nic := guest.NIC{Index: 0, MAC: network.RandomMAC(), Address: addr, Gateway: gateway, Bridge: netm.Bridge()}
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
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptedStartReleased: what a Start had acquired when Hearth died
// before the container existed (loop devices, the network) is released by
// the next Open.
func TestInterruptedStartReleased(t *testing.T) {
	needContainerd(t)
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rand.IntN(50)), byte(rand.IntN(256)), 0}), 24)
	netm, err := network.New(t.TempDir(), network.WithBridge(fmt.Sprintf("hearthi%06x", rand.Uint32()&0xffffff)),
		network.WithGateway(netip.PrefixFrom(subnet.Addr().Next(), 24)), network.WithLogger(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netm.Close() })
	h, data := openTestHost(t, WithNetwork(netm))
	id := guestID(t, 0)
	disk := filepath.Join(data, "disk.img")
	os.WriteFile(disk, make([]byte, 1<<20), 0o600)
	l, hold, err := attachLoop(disk, loopConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hold.Close()
	nic := guest.NIC{Index: 0, MAC: network.RandomMAC(), Bridge: netm.Bridge()}
	if err := h.recordIntent(id, intent{Loops: []loopDevice{l}, Network: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := netm.Setup(context.Background(), id, []guest.NIC{nic}); err != nil {
		t.Fatal(err)
	}
	h.Close() // as if Hearth had died here

	h2, err := Open(context.Background(), data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithNetwork(netm), WithLogger(vmmtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if b := loopBacking(l.Device); b == disk {
		t.Errorf("loop device %s still on %s", l.Device, b)
	}
	if _, err := netm.Counters(id, 0); err == nil {
		t.Error("the guest's network is still there")
	}
	if _, err := os.Stat(filepath.Join(data, "run", id)); !os.IsNotExist(err) {
		t.Errorf("run/%s remains: %v", id, err)
	}
}

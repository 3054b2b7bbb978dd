package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/network"
	"hearth/vmm/vmmtest"
)

type managerFixture struct {
	*vmmtest.Servers
	t     testing.TB
	host  *Host
	m     *vmm.Manager
	image string // busybox ext4 image to copy drives from
}

func newManagerFixture(t testing.TB, opts ...vmm.ManagerOption) *managerFixture {
	h, data := openTestHost(t)
	return newManagerFixtureOn(t, h, data, nil, opts...)
}

func newManagerFixtureOn(t testing.TB, h *Host, data string, storeOpts []storage.Option, opts ...vmm.ManagerOption) *managerFixture {
	servers := vmmtest.NewServers(t, data, storeOpts...)
	m, err := vmm.NewManager(context.Background(), h, servers.Store, append([]vmm.ManagerOption{vmm.WithLogger(logtest.Logger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &managerFixture{Servers: servers, t: t, host: h, m: m, image: testguest.Image(t, 32<<20)}
}

// drive makes a drive holding the busybox guest (or blank when blank is set).
func (f *managerFixture) drive(blank bool, props map[string]string) string {
	d, err := f.Store.CreateDriveFrom(context.Background(), storage.Drive{Owner: f.Owner, Name: "d", Props: props}, func(path string) error {
		if blank {
			return os.WriteFile(path, make([]byte, 1<<20), 0o600)
		}
		src, err := os.Open(f.image)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(path)
		if err != nil {
			return err
		}
		defer dst.Close()
		_, err = io.Copy(dst, src)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d.ID
}

func TestManagerLifecycle(t *testing.T) {
	f := newManagerFixture(t, vmm.WithGracePeriod(2*time.Second))
	ctx := context.Background()
	boot := f.drive(false, nil)
	id := f.Server(map[string]string{"ide:0:0": boot, "persistent": "true", "name": "Web Server #1"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != storage.StatusActive {
		t.Fatalf("status %s after start", got)
	}
	if err := f.m.Start(ctx, id); !errors.Is(err, guest.ErrRunning) {
		t.Errorf("second start: %v", err)
	}
	c, _ := f.host.Console(id)
	c.Write([]byte("hostname\n"))
	waitConsole(t, c, "web-server-1")
	out, err := f.m.ConsoleOutput(ctx, id)
	if err != nil || !strings.Contains(string(out), "web-server-1") {
		t.Errorf("console output %q, %v", out, err)
	}
	o, ok := f.m.Observe(ctx, id)
	if !ok || o.SMP != 1 || o.Disks["ide:0:0"].ReadBytes == 0 || o.Usage == nil || o.Usage.CPUNanos == 0 || o.Usage.MemoryBytes == 0 {
		t.Errorf("observed %+v (usage %+v), %v", o, o.Usage, ok)
	}
	d, _ := f.Store.Drive(ctx, boot)
	if len(d.Claimed) != 1 {
		t.Errorf("claimed %v", d.Claimed)
	}

	// An exclusive drive in use refuses a second server.
	other := f.Server(map[string]string{"ide:0:0": boot})
	if err := f.m.Start(ctx, other); !errors.Is(err, guest.ErrBusy) {
		t.Errorf("second server on an exclusive drive: %v", err)
	}
	if got := f.Status(other); got != storage.StatusStopped {
		t.Errorf("refused server is %s", got)
	}

	if err := f.m.Pause(ctx, id); err != nil || f.Status(id) != storage.StatusPaused {
		t.Fatalf("pause: %v, %s", err, f.Status(id))
	}
	if err := f.m.Resume(ctx, id); err != nil || f.Status(id) != storage.StatusActive {
		t.Fatalf("resume: %v, %s", err, f.Status(id))
	}
	// A paused server can be stopped (the kill must not wait on the freezer).
	paused := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	if err := f.m.Start(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Stop(ctx, paused); err != nil || f.Status(paused) != storage.StatusStopped {
		t.Fatalf("stop of a paused server: %v, %s", err, f.Status(paused))
	}
	if err := f.Set(ctx, f.m, id, map[string]string{"cpu": "500"}); err != nil {
		t.Fatal(err)
	}

	before, _ := f.Store.Server(ctx, id)
	time.Sleep(1100 * time.Millisecond)
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	after, _ := f.Store.Server(ctx, id)
	if after.Status != storage.StatusActive || !after.Started.After(before.Started) {
		t.Errorf("after reset: %s started %v (before %v)", after.Status, after.Started, before.Started)
	}

	// Shutdown: busybox init powers off on SIGUSR2, the signal found from
	// its /sbin/init; persistent → stopped. Asked right after the reset's
	// start: the signal waits for init's handlers.
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(id, storage.StatusStopped)
	if d, _ := f.Store.Drive(ctx, boot); len(d.Claimed) != 0 {
		t.Errorf("claims after shutdown: %v", d.Claimed)
	}
	// Its last words stay readable.
	if out, err := f.m.ConsoleOutput(ctx, id); err != nil || !strings.Contains(string(out), "hearth-guest: shutting down") {
		t.Errorf("console after shutdown: %v\n%s", err, out)
	}

	// In the guest, reboot starts it again with a new started; poweroff
	// stops it.
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	before, _ = f.Store.Server(ctx, id)
	c, _ = f.host.Console(id)
	shellMarker(t, c, 20)
	time.Sleep(1100 * time.Millisecond) // started is kept to the second
	c.Write([]byte("reboot\n"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		now, _ := f.Store.Server(ctx, id)
		if now.Status == storage.StatusActive && now.Started.After(before.Started) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an in-guest reboot: %s started %v (before %v)", now.Status, now.Started, before.Started)
		}
	}
	c, _ = f.host.Console(id)
	shellMarker(t, c, 30)
	c.Write([]byte("poweroff\n"))
	f.WaitStatus(id, storage.StatusStopped)
	// Start again, and stop: persistent stays.
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != storage.StatusStopped {
		t.Errorf("after stop: %s", got)
	}
}

func TestManagerShutdownGrace(t *testing.T) {
	f := newManagerFixture(t, vmm.WithGracePeriod(500*time.Millisecond))
	boot := f.drive(false, nil)
	// Without init the guest is a shell, which ignores SIGTERM: killed after the grace period.
	f.image = testguest.Image(t, 32<<20, testguest.WithoutInit())
	shell := f.drive(false, nil)
	_ = boot
	id := f.Server(map[string]string{"ide:0:0": shell})
	if err := f.m.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	// Once the shell reads commands it has set its signal dispositions
	// (SIGTERM ignored); a signal before that may end it.
	c, _ := f.host.Console(id)
	shellMarker(t, c, 5)
	start := time.Now()
	if err := f.m.Shutdown(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != storage.StatusActive {
		t.Errorf("server %s right after shutdown, want active until the guest is gone", got)
	}
	// Frozen, it would never power off.
	if err := f.m.Pause(context.Background(), id); !errors.Is(err, guest.ErrBusy) {
		t.Errorf("pause while shutting down: %v, want busy", err)
	}
	f.WaitStatus(id, "destroyed")
	if time.Since(start) < 500*time.Millisecond {
		t.Error("the guest was killed before the grace period ended")
	}
}

func TestManagerGuestExitsByItself(t *testing.T) {
	f := newManagerFixture(t)
	ctx := context.Background()
	persistent := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	transient := f.Server(map[string]string{"ide:0:0": f.drive(false, nil)})
	for _, id := range []string{persistent, transient} {
		if err := f.m.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		c, _ := f.host.Console(id)
		shellMarker(t, c, 7)
		c.Write([]byte("kill -USR2 1\n")) // busybox init powers off (SIGTERM would make it reboot)
	}
	f.WaitStatus(persistent, storage.StatusStopped)
	f.WaitStatus(transient, "destroyed")
	if len(f.host.Guests(ctx)) != 0 {
		t.Error("guests left after their exit")
	}
}

func TestManagerDead(t *testing.T) {
	f := newManagerFixture(t)
	ctx := context.Background()
	blank := f.Server(map[string]string{"ide:0:0": f.drive(true, nil)})
	err := f.m.Start(ctx, blank)
	if !errors.Is(err, guest.ErrBootDrive) {
		t.Fatalf("start on a blank drive: %v", err)
	}
	s, _ := f.Store.Server(ctx, blank)
	if s.Status != storage.StatusDead || !strings.Contains(s.Error, "ext4") {
		t.Errorf("server %s, error %q", s.Status, s.Error)
	}
	none := f.Server(nil)
	if err := f.m.Start(ctx, none); !errors.Is(err, guest.ErrBootDrive) {
		t.Errorf("start without drives: %v", err)
	}
	if s, _ := f.Store.Server(ctx, none); s.Status != storage.StatusDead || s.Error == "" {
		t.Errorf("driveless server %s %q", s.Status, s.Error)
	}
}

func TestManagerReconcile(t *testing.T) {
	f := newManagerFixture(t)
	ctx := context.Background()
	running := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	gone := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	for _, id := range []string{running, gone} {
		if err := f.m.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := f.Store.Server(ctx, running)
	// The guest of "gone" disappears behind the Manager's back (as after a
	// host reboot); the database still says active.
	f.host.OnExit(nil)
	if err := f.host.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	m2, err := vmm.NewManager(ctx, f.host, f.Store, vmm.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := f.Store.Server(ctx, running)
	if !after.Started.Equal(before.Started) || after.Status != storage.StatusActive {
		t.Errorf("re-adopted server: %s started %v, was %v", after.Status, after.Started, before.Started)
	}
	if st, err := f.host.Status(ctx, gone); err != nil || st.State != guest.Running {
		t.Errorf("server recorded active was not started again: %+v %v", st, err)
	}
	for _, id := range []string{running, gone} {
		if err := m2.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestManagerNetwork(t *testing.T) {
	needContainerd(t)
	netm, subnet := testSwitch(t, "m")
	h, data := openTestHost(t, WithNetwork(netm))
	f := newManagerFixtureOn(t, h, data, []storage.Option{storage.WithSubnet(subnet)}, vmm.WithPublicBridge(netm.Bridge()))
	ctx := context.Background()
	id := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "nic:0:model": "virtio", "nic:0:dhcp": "auto"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	srv, _ := f.Store.Server(ctx, id)
	lease, err := f.Store.Lease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := f.m.Observe(ctx, id)
	if len(o.NICs) != 1 || o.NICs[0].IP != lease || o.NICs[0].MAC == "" || o.NICs[0].MAC != srv.Config["nic:0:mac"] {
		t.Errorf("observed NICs %+v, lease %s, stored mac %q", o.NICs, lease, srv.Config["nic:0:mac"])
	}
	c, _ := f.host.Console(id)
	c.Write([]byte(fmt.Sprintf("ping -c 1 -W 2 %s && echo up-$((1+1))\n", f.Store.Gateway())))
	waitConsole(t, c, "up-2")
	if o, _ := f.m.Observe(ctx, id); len(o.NICs) != 1 || o.NICs[0].Counters == nil || o.NICs[0].Counters.TxPackets == 0 {
		t.Errorf("observed NICs: %+v", o.NICs)
	}
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.Status(id); got != "destroyed" {
		t.Errorf("non-persistent server after stop: %s", got)
	}
	if _, err := f.Store.Lease(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("lease after destroy: %v", err)
	}
}

// TestManagerAfterHostReboot: guests whose tasks vanished (as after a host
// reboot: containers are still recorded, tasks are not) are started again
// when their servers were active.
func TestManagerAfterHostReboot(t *testing.T) {
	h, data := openTestHost(t)
	f := newManagerFixtureOn(t, h, data, nil)
	ctx := context.Background()
	persistent := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	transient := f.Server(map[string]string{"ide:0:0": f.drive(false, nil)})
	for _, id := range []string{persistent, transient} {
		if err := f.m.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := h.Status(ctx, persistent)
	h.Close()

	// "Reboot": the tasks go, the containers stay.
	open := func() *Host {
		h, err := Open(ctx, data, WithNamespace(h.namespace), WithRuntime(RuntimeRunc), WithIDBase(h.idBase), WithLogger(logtest.Logger(t)))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h2 := open()
	cctx := namespaces.WithNamespace(ctx, h2.namespace)
	for _, id := range []string{persistent, transient} {
		c, err := h2.client.LoadContainer(cctx, id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := c.Task(cctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := task.Delete(cctx, client.WithProcessKill); err != nil {
			t.Fatal(err)
		}
	}
	h2.Close()

	h3 := open()
	t.Cleanup(func() {
		for _, g := range h3.Guests(ctx) {
			if err := h3.Delete(ctx, g.Spec.ID); err != nil {
				t.Errorf("delete %s: %v", g.Spec.ID, err)
			}
		}
		h3.Close()
	})
	for _, g := range h3.Guests(ctx) {
		if !g.Lost || g.State != guest.Stopped {
			t.Errorf("guest %s adopted as %+v, want lost", g.Spec.ID, g)
		}
	}
	if _, err := vmm.NewManager(ctx, h3, f.Store, vmm.WithLogger(logtest.Logger(t))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{persistent, transient} {
		st, err := h3.Status(ctx, id)
		if err != nil || st.State != guest.Running {
			t.Errorf("server %s after the reboot: %+v, %v", id, st, err)
		}
		if got := f.Status(id); got != storage.StatusActive {
			t.Errorf("server %s is %s", id, got)
		}
	}
	if after, _ := h3.Status(ctx, persistent); !after.Started.After(before.Started) {
		t.Errorf("started %v, before the reboot %v", after.Started, before.Started)
	}
}

// TestManagerVLAN: two servers with nic:1 on one VLAN reach each other over
// eth1 (addresses set inside the guests, as on a private VLAN).
func TestManagerVLAN(t *testing.T) {
	needContainerd(t)
	netm, subnet := testSwitch(t, "l")
	h, data := openTestHost(t, WithNetwork(netm))
	f := newManagerFixtureOn(t, h, data, []storage.Option{storage.WithSubnet(subnet)}, vmm.WithPublicBridge(netm.Bridge()))
	ctx := context.Background()
	vlan, err := f.Store.CreateVLAN(ctx, f.Owner, map[string]string{"name": "private"})
	if err != nil {
		t.Fatal(err)
	}
	var consoles []*guest.Console
	for i := 1; i <= 2; i++ {
		id := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "nic:1:model": "virtio", "nic:1:vlan": vlan.ID})
		if err := f.m.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		c, _ := f.host.Console(id)
		c.Write([]byte(fmt.Sprintf("ip addr add 192.168.77.%d/24 dev eth1 && ip link set eth1 up && echo addr-$((%d+10))\n", i, i)))
		waitConsole(t, c, fmt.Sprintf("addr-%d", i+10))
		consoles = append(consoles, c)
	}
	consoles[0].Write([]byte("ping -c 2 -W 2 192.168.77.2 && echo vlan-$((6*7))\n"))
	waitConsole(t, consoles[0], "vlan-42")
}

// TestManagerRaces has goroutines call one server's lifecycle at once, then
// destroy it among starts and resets: every call succeeds or loses its race
// with a sentinel web/api answers 409 or 404 (never a runtime's failure),
// and no guest outlives the server's row.
func TestManagerRaces(t *testing.T) {
	f := newManagerFixture(t, vmm.WithGracePeriod(time.Second))
	ctx := context.Background()
	id := f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"start":    func() error { return f.m.Start(ctx, id) },
		"stop":     func() error { return f.m.Stop(ctx, id) },
		"reset":    func() error { return f.m.Reset(ctx, id) },
		"pause":    func() error { return f.m.Pause(ctx, id) },
		"resume":   func() error { return f.m.Resume(ctx, id) },
		"shutdown": func() error { return f.m.Shutdown(ctx, id) },
		"set":      func() error { return f.Set(ctx, f.m, id, map[string]string{"cpu": "700"}) },
	}
	var mu sync.Mutex
	answers := map[string]int{}
	call := func(name string) {
		err := calls[name]()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			answers[name+" ok"]++
		case errors.Is(err, storage.ErrNotFound):
			answers[name+" gone"]++
		case errors.Is(err, guest.ErrRunning), errors.Is(err, guest.ErrNotRunning), errors.Is(err, guest.ErrBusy):
			answers[name+" refused"]++
		default:
			t.Errorf("%s: %v", name, err)
		}
	}
	names := []string{"start", "stop", "reset", "pause", "resume", "shutdown", "set"}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 12 {
				call(names[(w*5+i*3)%len(names)])
			}
		})
	}
	wg.Wait()

	// Destroy among starts and resets, which must find the server gone
	// afterwards rather than bring its guest back; a few rounds, as the
	// window a destroy not covered by the lock leaves is narrow.
	for round := range 3 {
		if round > 0 {
			id = f.Server(map[string]string{"ide:0:0": f.drive(false, nil), "persistent": "true"})
			if err := f.m.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		destroyed := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for after := 0; after < 3; {
					select {
					case <-destroyed:
						after++
					default:
					}
					call("start")
					call("reset")
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		if err := f.m.Destroy(ctx, id); err != nil {
			t.Errorf("destroy: %v", err)
		}
		close(destroyed)
		wg.Wait()
		if got := f.Status(id); got != "destroyed" {
			t.Errorf("server is %s after its destroy", got)
		}
		if st, err := f.host.Status(ctx, id); !errors.Is(err, guest.ErrNotFound) {
			t.Errorf("guest left after its server's destroy: %s since %s", st.State, st.Started)
		}
	}
	t.Logf("answers: %v", answers)
	if answers["start ok"]+answers["reset ok"] == 0 || answers["start gone"]+answers["reset gone"] == 0 {
		t.Errorf("the calls did not race with the destroy: %v", answers)
	}
	if err := f.m.Destroy(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second destroy: %v, want not found", err)
	}
}

// TestManagerSetRacesStart sets a stopped server's boot drive and cpu while
// it starts, many times: whichever goes first, the running guest boots the
// drive its row names and holds the claim of that drive only (so another
// server cannot start on the drive the guest uses), and a cpu set that
// succeeded is what the guest runs with.
func TestManagerSetRacesStart(t *testing.T) {
	f := newManagerFixture(t)
	ctx := context.Background()
	drives := [2]string{f.drive(false, nil), f.drive(false, nil)}
	driveOf := map[string]string{f.Store.DrivePath(drives[0]): drives[0], f.Store.DrivePath(drives[1]): drives[1]}
	id := f.Server(map[string]string{"ide:0:0": drives[0], "persistent": "true"})
	other := f.Server(map[string]string{"persistent": "true"})
	answers := map[string]int{}
	for round := range 30 {
		srv, err := f.Store.Server(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		next := drives[0]
		if srv.Config["ide:0:0"] == next {
			next = drives[1]
		}
		cpu := strconv.Itoa(1000 + round)
		var startErr, driveErr, cpuErr error
		var wg sync.WaitGroup
		// Staggered at random, so either may take the server's lock first.
		jitter := func() { time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond) }
		wg.Go(func() { jitter(); startErr = f.m.Start(ctx, id) })
		wg.Go(func() { jitter(); driveErr = f.Set(ctx, f.m, id, map[string]string{"ide:0:0": next}) })
		wg.Go(func() { jitter(); cpuErr = f.Set(ctx, f.m, id, map[string]string{"cpu": cpu}) })
		wg.Wait()
		if startErr != nil || cpuErr != nil {
			t.Fatalf("round %d: start %v, set cpu %v", round, startErr, cpuErr)
		}
		switch {
		case driveErr == nil:
			answers["drive set before the start"]++
		case errors.Is(driveErr, guest.ErrBusy):
			answers["drive set refused: active"]++
		default:
			t.Fatalf("round %d: set drive: %v", round, driveErr)
		}

		srv, err = f.Store.Server(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.host.Status(ctx, id)
		if err != nil || st.State != guest.Running {
			t.Fatalf("round %d: guest after start: %v %v", round, st.State, err)
		}
		booted := driveOf[st.Spec.Boot.Image]
		if booted != srv.Config["ide:0:0"] {
			t.Errorf("round %d: guest boots drive %s, its row names %s", round, booted, srv.Config["ide:0:0"])
		}
		for _, d := range drives {
			drive, err := f.Store.Drive(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			claimed := len(drive.Claimed) > 0
			if claimed != (d == booted) {
				t.Errorf("round %d: drive %s claimed %v, booted by the guest: %v", round, d, drive.Claimed, d == booted)
			}
		}
		// No second guest may start on the drive the first one uses.
		if err := f.Set(ctx, f.m, other, map[string]string{"ide:0:0": booted}); err != nil {
			t.Fatal(err)
		}
		if err := f.m.Start(ctx, other); !errors.Is(err, guest.ErrBusy) {
			t.Errorf("round %d: a second server started on drive %s in use: %v", round, booted, err)
			f.m.Stop(ctx, other)
		}
		if srv.Config["cpu"] != cpu || st.Spec.CPU != 1000+round {
			t.Errorf("round %d: cpu set to %s: stored %s, guest runs with %d", round, cpu, srv.Config["cpu"], st.Spec.CPU)
		}
		if err := f.m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("answers: %v", answers)
}

// testSwitch is a network.Switch on a bridge of the test's own (named
// hearth + tag + random hex) with a random /24 out of 10.200-249.x.
func testSwitch(t *testing.T, tag string) (*network.Switch, netip.Prefix) {
	t.Helper()
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rand.IntN(50)), byte(rand.IntN(256)), 0}), 24)
	netm, err := network.New(network.WithBridge(fmt.Sprintf("hearth%s%06x", tag, rand.Uint32()&0xffffff)),
		network.WithGateway(netip.PrefixFrom(subnet.Addr().Next(), 24)), network.WithLogger(logtest.Logger(t)),
		network.WithFilterTable(fmt.Sprintf("hearthtest%08x", rand.Uint32())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netm.Close() })
	return netm, subnet
}

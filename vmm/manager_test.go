package vmm_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// These tests run the Manager's state machine over vmmtest's fake backend:
// no root, no containerd. vmm/containerd's manager tests run the same
// Manager over real guests.

type fixture struct {
	*vmmtest.Servers
	t       *testing.T
	backend *vmmtest.Backend
	m       *vmm.Manager
}

func newFixture(t *testing.T, opts ...vmm.ManagerOption) *fixture {
	f := newStore(t)
	f.manager(opts...)
	return f
}

// newStore is a fixture without a Manager yet: guests can be adopted first.
func newStore(t *testing.T) *fixture {
	return &fixture{Servers: vmmtest.NewServers(t, t.TempDir()), t: t, backend: vmmtest.NewBackend()}
}

func (f *fixture) manager(opts ...vmm.ManagerOption) *vmm.Manager {
	f.t.Helper()
	m, err := vmm.NewManager(context.Background(), f.backend, f.Store, append([]vmm.ManagerOption{vmm.WithLogger(logtest.Logger(f.t))}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.m = m
	return m
}

func (f *fixture) drive(props map[string]string) string {
	f.t.Helper()
	d, err := f.Store.CreateDriveFrom(context.Background(), storage.Drive{Owner: f.Owner, Name: "d", Props: props}, func(path string) error {
		return os.WriteFile(path, make([]byte, 4096), 0o600)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d.ID
}

// started is a server with a boot drive, started.
func (f *fixture) started(config map[string]string) string {
	f.t.Helper()
	cfg := map[string]string{"ide:0:0": f.drive(nil)}
	maps.Copy(cfg, config)
	id := f.Server(cfg)
	if err := f.m.Start(context.Background(), id); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) row(id string) storage.Server {
	f.t.Helper()
	s, err := f.Store.Server(context.Background(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Server{Status: "destroyed"}
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) guestState(id string) guest.State {
	st, err := f.backend.Status(context.Background(), id)
	if err != nil {
		return "none"
	}
	return st.State
}

func (f *fixture) claims(drive string) []string {
	d, err := f.Store.Drive(context.Background(), drive)
	if err != nil {
		f.t.Fatal(err)
	}
	return d.Claimed
}

func TestManagerLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	boot, data, cd := f.drive(nil), f.drive(nil), f.drive(nil)
	id := f.Server(map[string]string{"ide:0:0": boot, "ide:1:0": data, "block:1": cd, "block:1:media": "cdrom",
		"name": "Web Server 1", "cpu": "1500", "smp": "2", "mem": "256", "persistent": "true"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	srv := f.row(id)
	st, err := f.backend.Status(ctx, id)
	if err != nil || st.State != guest.Running || srv.Status != storage.StatusActive || !srv.Started.Equal(st.Started) {
		t.Fatalf("after start: row %s started %v, guest %+v %v", srv.Status, srv.Started, st, err)
	}
	spec := st.Spec
	if spec.Hostname != "web-server-1" || spec.CPU != 1500 || spec.SMP != 2 || spec.Mem != 256 || spec.Boot.Device != "ide:0:0" || spec.VM() {
		t.Errorf("spec %+v", spec)
	}
	disks := map[string]bool{} // device → read-only
	for _, d := range spec.Disks {
		disks[d.Device] = d.ReadOnly
		if d.CDROM != (d.Key == "block:1") {
			t.Errorf("disk %s: cdrom %v, want it only for block:1 (media cdrom)", d.Key, d.CDROM)
		}
	}
	if len(spec.Disks) != 2 || !maps.Equal(disks, map[string]bool{"hdc": false, "vdb": true}) {
		t.Errorf("disks %+v, want hdc and a read-only vdb", spec.Disks)
	}
	if len(f.claims(boot)) != 1 {
		t.Errorf("boot drive claims %v", f.claims(boot))
	}
	if err := f.m.Start(ctx, id); !errors.Is(err, vmm.ErrRunning) {
		t.Errorf("second start: %v, want ErrRunning", err)
	}

	if err := f.m.Pause(ctx, id); err != nil || f.Status(id) != storage.StatusPaused || f.guestState(id) != guest.Paused {
		t.Fatalf("pause: %v; %s, guest %s", err, f.Status(id), f.guestState(id))
	}
	if err := f.m.Pause(ctx, id); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("pause of a paused server: %v", err)
	}
	if err := f.m.Resume(ctx, id); err != nil || f.Status(id) != storage.StatusActive || f.guestState(id) != guest.Running {
		t.Fatalf("resume: %v; %s, guest %s", err, f.Status(id), f.guestState(id))
	}
	if err := f.m.Resume(ctx, id); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("resume of a running server: %v", err)
	}

	before := f.row(id).Started
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	if after := f.row(id); after.Status != storage.StatusActive || !after.Started.After(before) || f.guestState(id) != guest.Running {
		t.Errorf("after reset: %s started %v (was %v), guest %s", after.Status, after.Started, before, f.guestState(id))
	}

	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if f.Status(id) != storage.StatusStopped || f.guestState(id) != "none" || len(f.claims(boot)) != 0 {
		t.Errorf("after stop: %s, guest %s, claims %v", f.Status(id), f.guestState(id), f.claims(boot))
	}
	if err := f.m.Stop(ctx, id); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("stop of a stopped server: %v", err)
	}
	if err := f.m.Reset(ctx, id); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("reset of a stopped server: %v", err)
	}

	// A server that is not persistent goes with its guest; its drives stay.
	transient := f.started(nil)
	if err := f.m.Stop(ctx, transient); err != nil {
		t.Fatal(err)
	}
	if f.Status(transient) != "destroyed" {
		t.Errorf("transient server after stop: %s", f.Status(transient))
	}
	if err := f.m.Destroy(ctx, id); err != nil || f.Status(id) != "destroyed" {
		t.Errorf("destroy: %v, %s", err, f.Status(id))
	}
	if _, err := f.Store.Drive(ctx, boot); err != nil {
		t.Errorf("drive of a destroyed server: %v", err)
	}
	if err := f.m.Start(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("start of a destroyed server: %v", err)
	}
}

func TestManagerDeadAndRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// No boot drive: dead with the reason.
	none := f.Server(nil)
	if err := f.m.Start(ctx, none); !errors.Is(err, vmm.ErrBootDrive) {
		t.Errorf("start without drives: %v", err)
	}
	if s := f.row(none); s.Status != storage.StatusDead || s.Error == "" {
		t.Errorf("driveless server %s %q", s.Status, s.Error)
	}

	// The backend cannot boot the drive: dead, claims released.
	f.backend.StartErr = func(guest.Spec) error { return fmt.Errorf("no ext4 here: %w", guest.ErrBootDrive) }
	drive := f.drive(nil)
	blank := f.Server(map[string]string{"ide:0:0": drive})
	if err := f.m.Start(ctx, blank); !errors.Is(err, vmm.ErrBootDrive) {
		t.Errorf("start on an unbootable drive: %v", err)
	}
	if s := f.row(blank); s.Status != storage.StatusDead || s.Error != "no ext4 here: unusable boot drive" || len(f.claims(drive)) != 0 {
		t.Errorf("server %s %q, claims %v", s.Status, s.Error, f.claims(drive))
	}

	// No runtime: refused, the server stays as it was.
	f.backend.StartErr = func(guest.Spec) error { return guest.ErrUnavailable }
	down := f.Server(map[string]string{"ide:0:0": f.drive(nil)})
	if err := f.m.Start(ctx, down); !errors.Is(err, vmm.ErrUnavailable) || f.Status(down) != storage.StatusStopped {
		t.Errorf("start without a runtime: %v, %s", err, f.Status(down))
	}
	f.backend.StartErr = nil

	// A dead server starts again once it can.
	if err := f.m.Start(ctx, blank); err != nil || f.Status(blank) != storage.StatusActive {
		t.Errorf("start of a dead server: %v, %s", err, f.Status(blank))
	}

	// An exclusive drive in use refuses a second server, which is left alone.
	other := f.Server(map[string]string{"ide:0:0": drive})
	if err := f.m.Start(ctx, other); !errors.Is(err, vmm.ErrBusy) || !errors.Is(err, storage.ErrBusy) {
		t.Errorf("second server on an exclusive drive: %v", err)
	}
	if f.Status(other) != storage.StatusStopped || f.guestState(other) != "none" {
		t.Errorf("refused server %s, guest %s", f.Status(other), f.guestState(other))
	}
}

func TestManagerShutdown(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Hour))
	ctx := context.Background()
	id := f.started(map[string]string{"persistent": "true"})
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.backend.Signals(); len(got) != 1 || got[0] != (vmmtest.Signal{ID: id, Sig: syscall.SIGTERM}) {
		t.Errorf("signals %v, want one SIGTERM", got)
	}
	if f.Status(id) != storage.StatusActive {
		t.Errorf("server %s right after shutdown, want active until the guest is gone", f.Status(id))
	}
	// Frozen, it would never power off.
	if err := f.m.Pause(ctx, id); !errors.Is(err, vmm.ErrBusy) {
		t.Errorf("pause while shutting down: %v, want busy", err)
	}
	f.backend.Exit(id, 0) // the guest powers off
	f.WaitStatus(id, storage.StatusStopped)
	if f.guestState(id) != "none" {
		t.Errorf("guest %s after power-off", f.guestState(id))
	}
	if err := f.m.Shutdown(ctx, id); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("shutdown of a stopped server: %v", err)
	}

	// A paused guest is thawed first: frozen, it could not act on the signal.
	paused := f.started(nil)
	if err := f.m.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Shutdown(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if f.guestState(paused) != guest.Running || f.Status(paused) != storage.StatusActive {
		t.Errorf("paused server after shutdown: %s, guest %s", f.Status(paused), f.guestState(paused))
	}
}

func TestManagerShutdownGraceKills(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Millisecond), vmm.WithPowerOffSignal(syscall.SIGPWR))
	ctx := context.Background()
	id := f.started(nil) // a guest that ignores the power-off signal
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.WaitStatus(id, "destroyed")
	if f.guestState(id) != "none" {
		t.Errorf("guest %s after the grace period", f.guestState(id))
	}
	if got := f.backend.Signals(); len(got) != 1 || got[0].Sig != syscall.SIGPWR {
		t.Errorf("signals %v, want the power-off signal only (the kill deletes the guest)", got)
	}
}

// TestManagerShutdownKillsOnlyItsGuest: the kill after the grace period is
// for the incarnation asked to power off, not a guest Reset made since.
func TestManagerShutdownKillsOnlyItsGuest(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(50*time.Millisecond))
	ctx := context.Background()
	id := f.started(map[string]string{"persistent": "true"})
	if err := f.m.Shutdown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reset(ctx, id); err != nil {
		t.Fatal(err)
	}
	reset, _ := f.backend.Status(ctx, id)
	// Something that does not happen can only be waited for: well past the
	// grace period.
	time.Sleep(200 * time.Millisecond)
	if st, err := f.backend.Status(ctx, id); err != nil || !st.Started.Equal(reset.Started) || f.Status(id) != storage.StatusActive {
		t.Errorf("the reset guest was killed: %+v %v, server %s", st, err, f.Status(id))
	}
}

func TestManagerGuestExitsByItself(t *testing.T) {
	f := newFixture(t)
	persistent := f.started(map[string]string{"persistent": "true"})
	transient := f.started(nil)
	f.backend.Exit(persistent, 0)
	f.backend.Exit(transient, 1)
	f.WaitStatus(persistent, storage.StatusStopped)
	f.WaitStatus(transient, "destroyed")
	if n := len(f.backend.Guests(context.Background())); n != 0 {
		t.Errorf("%d guests left after their exit", n)
	}
}

func TestManagerSet(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.started(map[string]string{"persistent": "true"})
	if err := f.Set(ctx, f.m, id, map[string]string{"cpu": "2500"}); err != nil {
		t.Fatal(err)
	}
	if got := f.backend.CPUChanges(); len(got) != 1 || got[0] != (vmmtest.CPUChange{ID: id, CPU: 2500, SMP: 0}) {
		t.Errorf("cpu changes %v, want 2500 MHz with smp auto", got)
	}
	if err := f.Set(ctx, f.m, id, map[string]string{"mem": "512"}); !errors.Is(err, vmm.ErrBusy) {
		t.Errorf("mem of an active server: %v", err)
	}

	// A refused live change leaves nothing behind.
	f.backend.SetCPUErr = errors.New("cgroup write failed")
	if err := f.Set(ctx, f.m, id, map[string]string{"cpu": "3000"}); err == nil || err.Error() != "cgroup write failed" {
		t.Errorf("refused cpu change: %v", err)
	}
	if got := f.row(id).Config["cpu"]; got != "2500" {
		t.Errorf("cpu stored after a refused change: %s, want 2500", got)
	}
	f.backend.SetCPUErr = nil

	// A stopped server takes any key, and nothing is applied.
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.Set(ctx, f.m, id, map[string]string{"cpu": "500", "mem": "512"}); err != nil {
		t.Fatal(err)
	}
	if got := f.backend.CPUChanges(); len(got) != 1 {
		t.Errorf("cpu applied to a stopped server: %v", got)
	}
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.backend.Status(ctx, id); st.Spec.CPU != 500 || st.Spec.Mem != 512 {
		t.Errorf("restarted with %+v, want the stored cpu and mem", st.Spec)
	}
}

// TestManagerSetFirewall: firewall keys change a running guest's NIC at
// once, and a start takes them from the stored configuration.
func TestManagerSetFirewall(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.started(map[string]string{"nic:0:model": "virtio", "nic:0:firewall:policy": "reject", "nic:0:firewall:accept": "tcp/22"})
	fwOf := func() guest.Firewall {
		st, err := f.backend.Status(ctx, id)
		if err != nil || len(st.Spec.NICs) != 1 {
			t.Fatalf("status %+v %v", st, err)
		}
		return st.Spec.NICs[0].Firewall
	}
	if got := fwOf(); !got.Reject || len(got.Accept) != 1 || got.Accept[0].String() != "tcp/22" {
		t.Errorf("started with firewall %+v, want policy reject accepting tcp/22", got)
	}
	if err := f.Set(ctx, f.m, id, map[string]string{"nic:0:firewall:policy": "accept", "nic:0:firewall:reject": "udp/53 icmp"}); err != nil {
		t.Fatal(err)
	}
	if got := fwOf(); got.Reject || len(got.Refuse) != 2 || got.Refuse[1].Proto != "icmp" {
		t.Errorf("firewall after a live change %+v, want policy accept refusing udp/53 and icmp", got)
	}
	if err := f.Set(ctx, f.m, id, map[string]string{"nic:0:block": "tcp/25 tcp/5900"}); err != nil {
		t.Fatal(err)
	}
	if got := fwOf(); len(got.Block) != 2 || got.Block[0].String() != "tcp/25" {
		t.Errorf("firewall after nic:0:block %+v, want tcp/25 and tcp/5900 blocked", got)
	}
}

// TestManagerRaces runs every lifecycle call of a few servers at once: each
// answers with success or one of the sentinel errors, and afterwards every
// guest has its row and every running row its guest.
func TestManagerRaces(t *testing.T) {
	f := newFixture(t, vmm.WithGracePeriod(time.Millisecond))
	ctx := context.Background()
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, f.started(map[string]string{"persistent": "true"}))
	}
	calls := map[string]func(context.Context, string) error{
		"start": f.m.Start, "stop": f.m.Stop, "shutdown": f.m.Shutdown, "reset": f.m.Reset,
		"pause": f.m.Pause, "resume": f.m.Resume, "destroy": f.m.Destroy,
		"set": func(ctx context.Context, id string) error {
			return f.Set(ctx, f.m, id, map[string]string{"cpu": "1200"})
		},
		"exit": func(ctx context.Context, id string) error { f.backend.Exit(id, 0); return nil },
	}
	var wg sync.WaitGroup
	for round := 0; round < 20; round++ {
		for _, id := range ids {
			for name, call := range calls {
				wg.Go(func() {
					err := call(ctx, id)
					if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, vmm.ErrRunning) &&
						!errors.Is(err, vmm.ErrNotRunning) && !errors.Is(err, vmm.ErrBusy) {
						t.Errorf("%s %s: %v", name, id, err)
					}
				})
			}
		}
		wg.Wait()
	}
	// Let exits and grace-period kills finish, then check the invariants.
	for _, id := range ids {
		if err := f.m.Destroy(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("destroy %s: %v", id, err)
		}
	}
	for _, g := range f.backend.Guests(ctx) {
		t.Errorf("guest %s (%s) left without its server", g.Spec.ID, g.State)
	}
}

func TestManagerReconcile(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	spec := func(id string) guest.Spec { return guest.Spec{ID: id, Boot: guest.Disk{Device: "ide:0:0", Image: "x"}} }
	active := func(config map[string]string) (string, string) {
		drive := f.drive(nil)
		cfg := map[string]string{"ide:0:0": drive, "persistent": "true"}
		maps.Copy(cfg, config)
		id := f.Server(cfg)
		if err := f.Store.Claim(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Store.SetServerStatus(ctx, id, storage.StatusActive, time.Unix(1600000000, 0), ""); err != nil {
			t.Fatal(err)
		}
		return id, drive
	}
	running, _ := active(nil)
	adoptedAt := time.Unix(1650000000, 0)
	f.backend.Adopt(guest.Status{Spec: spec(running), State: guest.Running, Started: adoptedAt})
	paused, _ := active(nil)
	f.backend.Adopt(guest.Status{Spec: spec(paused), State: guest.Paused})
	ended, endedDrive := active(nil)
	f.backend.Adopt(guest.Status{Spec: spec(ended), State: guest.Stopped})
	lost, _ := active(nil)
	f.backend.Adopt(guest.Status{Spec: spec(lost), State: guest.Stopped, Lost: true})
	rebooted, _ := active(nil) // its guest rebooted itself while Hearth was away
	f.backend.Adopt(guest.Status{Spec: spec(rebooted), State: guest.Stopped, ExitStatus: 129})
	vanished, _ := active(nil) // its guest is gone altogether (a host reboot)
	f.backend.Adopt(guest.Status{Spec: spec("no-such-server"), State: guest.Running})
	// A start cut short: claims of a stopped server without a guest.
	cut := f.Server(map[string]string{"ide:0:0": f.drive(nil)})
	cutDrive := f.row(cut).Config["ide:0:0"]
	if err := f.Store.Claim(ctx, cut); err != nil {
		t.Fatal(err)
	}

	f.manager()
	if s := f.row(running); s.Status != storage.StatusActive || !s.Started.Equal(adoptedAt) {
		t.Errorf("re-adopted server: %s started %v, want the guest's start %v", s.Status, s.Started, adoptedAt)
	}
	if f.Status(paused) != storage.StatusPaused {
		t.Errorf("server of a paused guest: %s", f.Status(paused))
	}
	if f.Status(ended) != storage.StatusStopped || f.guestState(ended) != "none" || len(f.claims(endedDrive)) != 0 {
		t.Errorf("server whose guest ended meanwhile: %s, guest %s, claims %v", f.Status(ended), f.guestState(ended), f.claims(endedDrive))
	}
	for _, id := range []string{lost, vanished, rebooted} {
		if f.Status(id) != storage.StatusActive || f.guestState(id) != guest.Running {
			t.Errorf("server whose guest went with the host or rebooted: %s, guest %s; want started again", f.Status(id), f.guestState(id))
		}
	}
	if f.guestState("no-such-server") != "none" {
		t.Error("a guest without a server was kept")
	}
	if c := f.claims(cutDrive); len(c) != 0 {
		t.Errorf("claims of a start cut short: %v", c)
	}
}

func TestManagerObserve(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.backend.FixedCounters = &guest.Counters{
		Disks: map[string]guest.DiskCounters{"ide:0:0": {ReadBytes: 4096, WriteRequests: 3}},
		NICs:  map[int]guest.NICCounters{0: {RxBytes: 1000, TxPackets: 20}},
	}
	id := f.started(map[string]string{"nic:0:model": "virtio", "nic:0:dhcp": "auto", "smp": "2"})
	o, ok := f.m.Observe(ctx, id)
	lease, err := f.Store.Lease(ctx, id)
	if !ok || err != nil {
		t.Fatalf("observe: %v, lease %v", ok, err)
	}
	if o.SMP != 2 || o.Disks["ide:0:0"].ReadBytes != 4096 || o.Disks["ide:0:0"].WriteRequests != 3 || o.Usage != nil || o.VNC != nil {
		t.Errorf("observed %+v", o)
	}
	if len(o.NICs) != 1 || o.NICs[0].IP != lease || o.NICs[0].MAC != f.row(id).Config["nic:0:mac"] || o.NICs[0].MAC == "" ||
		o.NICs[0].Counters == nil || o.NICs[0].Counters.RxBytes != 1000 || o.NICs[0].Counters.TxPackets != 20 {
		t.Errorf("observed NICs %+v", o.NICs)
	}
	// DHCP names the guest on its public NIC as the guest names itself; a
	// VM would emulate the NIC's model.
	if st, _ := f.backend.Status(ctx, id); len(st.Spec.NICs) != 1 || st.Spec.NICs[0].Hostname != st.Spec.Hostname || st.Spec.Hostname != "test-server" {
		t.Errorf("nic:0 host name %+v, guest %q", st.Spec.NICs, st.Spec.Hostname)
	} else if st.Spec.NICs[0].Model != "virtio" {
		t.Errorf("nic:0 model %q, want the key's virtio", st.Spec.NICs[0].Model)
	}
	f.backend.FixedUsage = &guest.Usage{CPUNanos: 7, MemoryBytes: 8}
	if o, _ := f.m.Observe(ctx, id); o.Usage == nil || *o.Usage != (guest.Usage{CPUNanos: 7, MemoryBytes: 8}) {
		t.Errorf("usage %+v", o.Usage)
	}
	if err := f.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.m.Observe(ctx, id); ok {
		t.Error("a stopped server observed")
	}
}

// TestManagerGuestType: the server key type reaches the guest as its Type
// (a server without one is a container); a value the API never stores is
// refused naming the key.
func TestManagerGuestType(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for typ, want := range map[string]guest.Type{"": guest.TypeContainer, "container": guest.TypeContainer, "vm": guest.TypeVM} {
		cfg := map[string]string{"ide:0:0": f.drive(nil), "cpu": "1000", "mem": "256"}
		if typ != "" {
			cfg["type"] = typ
		}
		id := f.Server(cfg)
		if err := f.m.Start(ctx, id); err != nil {
			t.Fatalf("type %q: %v", typ, err)
		}
		if st, err := f.backend.Status(ctx, id); err != nil || st.Spec.Type != want {
			t.Errorf("type %q: guest type %q (%v), want %q", typ, st.Spec.Type, err, want)
		}
	}
	// A VM boots from a CD alone; a container needs a disk.
	for typ, want := range map[string]error{"vm": nil, "container": vmm.ErrBootDrive} {
		id := f.Server(map[string]string{"ide:0:1": f.drive(nil), "ide:0:1:media": "cdrom", "cpu": "1000", "mem": "256", "type": typ})
		err := f.m.Start(ctx, id)
		if !errors.Is(err, want) && (want != nil || err != nil) {
			t.Fatalf("type %s with only a CD: %v, want %v", typ, err, want)
		}
		if st, err := f.backend.Status(ctx, id); want == nil && (err != nil || !st.Spec.Boot.CDROM || st.Spec.Boot.Key != "ide:0:1") {
			t.Errorf("VM with only a CD: boot %+v (%v), want the CD", st.Spec.Boot, err)
		}
	}
	id := f.Server(map[string]string{"ide:0:0": f.drive(nil), "cpu": "1000", "mem": "256", "type": "lxc"})
	if err := f.m.Start(ctx, id); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "key type") {
		t.Errorf("type lxc: %v, want ErrInvalid naming the key", err)
	}
}

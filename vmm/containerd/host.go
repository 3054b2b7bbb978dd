package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"hearth/storage/rootfs"
	"hearth/vmm/guest"
)

// DefaultNamespace is the containerd namespace of Hearth's guests.
const DefaultNamespace = "hearth"

// Container labels: everything cleanup and re-adoption need.
const (
	labelSpec     = "hearth/spec"     // guest.Spec, JSON
	labelLoops    = "hearth/loops"    // []loopDevice, JSON: boot first, then Disks in order
	labelStarted  = "hearth/started"  // RFC 3339 time the guest was started
	labelPowerOff = "hearth/poweroff" // the signal number its init powers off on, as detected at start
)

// opTimeout bounds every containerd call a request waits on: a hung daemon
// must give an error, never a hung request.
const opTimeout = 60 * time.Second

// Option configures a Host.
type Option func(*Host)

// WithContainerd uses the containerd listening on socket instead of a
// private child process.
func WithContainerd(socket string) Option { return func(h *Host) { h.socket = socket } }

// WithRuntime picks the runtime: RuntimeAuto (default), RuntimeRunc or RuntimeKata.
func WithRuntime(name string) Option { return func(h *Host) { h.runtimeName = name } }

// WithNamespace sets the containerd namespace (default "hearth"; tests use
// their own), which is the instance's: it also names the guests' cgroup
// parent (/NAMESPACE) and runc's state (DATA/run/runc/NAMESPACE).
func WithNamespace(ns string) Option { return func(h *Host) { h.namespace = ns } }

// WithNetwork wires guests' NICs; without it a guest with NICs is refused.
func WithNetwork(n Network) Option { return func(h *Host) { h.network = n } }

// WithLogger sets where the Host logs (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(h *Host) { h.log = l } }

// DefaultIDBase is the first host id of guests' user namespaces: slot N
// (guest.Spec.IDSlot) maps guest ids 0…65535 to DefaultIDBase + N×65536
// onward. It lies above the ids a host hands its own users and daemons
// (and the 100000… ranges useradd puts in /etc/subuid for the first few
// users), so guest root never is a host user. It starts the instance
// "hearth"'s window of host ids; other instances' follow (hostids.go).
const DefaultIDBase = 1_000_000

// WithIDBase sets the first host id of guests' user namespaces (default
// DefaultIDBase): the start of the instance's window (ClaimIDBase); no
// guest gets a host id below it.
func WithIDBase(base uint32) Option { return func(h *Host) { h.idBase = base } }

// WithClock sets the clock that stamps start times (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Host) { h.now = now } }

// Host runs guests through containerd: it supervises the daemon (unless
// given one), re-adopts the guests an earlier Hearth left running, creates,
// signals and deletes guests, reads their consoles and counters, and reports
// their exits from containerd's events.
type Host struct {
	dataDir, runDir string
	socket          string
	namespace       string
	runtimeName     string
	driver          Driver
	network         Network
	log             *slog.Logger
	now             func() time.Time
	coreMHz         float64
	idBase          uint32
	cgroups         cgroupLayout
	checked         *rootfs.Checked // boot drives not to check again: unchanged since found clean
	userns          usernsCache     // the user namespaces idmapped roots are mounted with
	accel           string          // how VM guests run: guest.AccelKVM, AccelTCG, "" = they cannot (probeVMs)

	daemon    *daemon
	client    *client.Client
	ctx       context.Context // namespaced; cancelled by Close
	cancel    context.CancelFunc
	events    sync.WaitGroup
	closeOnce sync.Once
	kick      chan struct{} // the daemon came back: resubscribe now

	mu       sync.Mutex
	guests   map[string]*instance
	onExit   func(guest.Exit)
	onReboot func(id string)
}

type instance struct {
	spec  guest.Spec
	loops []loopDevice
	// hostRoot is the boot drive's root when Hearth mounted it writable
	// (runc); zero otherwise, and after adoption.
	hostRoot  rootfs.Root
	started   time.Time
	powerOff  syscall.Signal // what its init powers off on; 0 = not known
	console   *guest.Console
	io        cio.IO // nil when the task was gone at adoption
	container client.Container
	task      client.Task // nil while starting, or when the task was gone at adoption
	monitor   *vmMonitor  // a VM's QMP connection (vmpower.go); nil until made
	paused    bool        // frozen by Pause (or found frozen at adoption)
	deleting  bool        // Delete runs: its kill is no exit to report
	exited    bool
	lost      bool // the task was gone at adoption: the host rebooted (or the shim died)
	exit      guest.Exit
	usage     guest.Usage // the last Usage reading
	usageAt   time.Time   // when it was taken
}

// Open connects to containerd (starting the private daemon under
// DATA/containerd when no socket is given), picks the runtime, re-adopts the
// namespace's guests (consoles re-attached) and starts following exits.
func Open(ctx context.Context, dataDir string, opts ...Option) (*Host, error) {
	h := &Host{
		dataDir:   dataDir,
		runDir:    filepath.Join(dataDir, "run"),
		namespace: DefaultNamespace,
		log:       slog.New(slog.DiscardHandler),
		now:       time.Now,
		coreMHz:   HostCoreMHz(),
		idBase:    DefaultIDBase,
		guests:    make(map[string]*instance),
		kick:      make(chan struct{}, 1),
		checked:   rootfs.NewChecked(),
	}
	for _, opt := range opts {
		opt(h)
	}
	rt, err := SelectDriver(h.runtimeName, h.log)
	if err != nil {
		return nil, err
	}
	h.driver = rt
	h.probeVMs()
	// Guests on the host's kernel (runc's, and every VM's QEMU) are
	// unprivileged: they need the id range, cgroups and a searchable DATA.
	unprivileged := rt.SharesHostKernel() || h.accel != ""
	if unprivileged {
		h.cgroups = detectCgroups("/sys/fs/cgroup", "/sys/kernel/cgroup/delegate")
		h.log.Info("guests are unprivileged", "ids_from", h.idBase, "cgroups", h.cgroups.name)
		if !hostHasAppArmor() {
			h.log.Info("the host has no AppArmor: guests run without an AppArmor profile")
		}
	}
	if err := os.MkdirAll(h.runDir, 0o700); err != nil {
		return nil, err
	}
	if unprivileged {
		if err := searchableByGuests(dataDir, h.runDir); err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(dataDir)
		for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
			if info, err := os.Stat(dir); err == nil && info.Mode().Perm()&0o001 == 0 {
				h.log.Warn("a directory above DATA is not searchable by others: unprivileged guests cannot start", "dir", dir, "mode", info.Mode().Perm())
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	if h.socket == "" {
		d, err := startDaemon(filepath.Join(dataDir, "containerd"), h.log)
		if err != nil {
			return nil, err
		}
		h.daemon, h.socket = d, d.socket
		h.log.Info("containerd: private daemon", "pid", d.pid(), "socket", d.socket)
	}
	h.client, err = client.New(h.socket, client.WithDefaultNamespace(h.namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		h.stopDaemon()
		return nil, fmt.Errorf("%w: containerd at %s: %w", guest.ErrUnavailable, h.socket, err)
	}
	if h.daemon != nil {
		h.daemon.mu.Lock()
		h.daemon.restarted = h.reconnect
		h.daemon.mu.Unlock()
	}
	h.ctx, h.cancel = context.WithCancel(namespaces.WithNamespace(context.Background(), h.namespace))
	if err := h.adopt(ctx); err != nil {
		h.Close()
		return nil, err
	}
	h.reapOrphans()
	h.sweepRunDir(ctx)
	if unprivileged {
		h.logForeignIDUsers()
	}
	h.events.Add(1)
	go h.followExits()
	return h, nil
}

// reconnect redials the restarted private daemon at once (gRPC would
// otherwise fail calls until its own reconnect backoff ends) and has the
// event loop resubscribe.
func (h *Host) reconnect() {
	if err := h.client.Reconnect(); err != nil {
		h.log.Warn("containerd: reconnect", "err", err)
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Name is the containerd runtime guests run under, e.g. io.containerd.runc.v2.
func (h *Host) Name() string { return h.driver.Name() }

// CoreMHz is the host core clock CPU quotas are computed against.
func (h *Host) CoreMHz() float64 { return h.coreMHz }

// OnExit sets the function told about every guest exit (from containerd's
// /tasks/exit events). It runs on the event loop: it must not block.
func (h *Host) OnExit(fn func(guest.Exit)) {
	h.mu.Lock()
	h.onExit = fn
	h.mu.Unlock()
}

// Close lets go of the guests without stopping them: console copies are
// cancelled (their FIFOs stay for the next attach), and the private daemon
// is stopped; the guests' shims keep running.
func (h *Host) Close() error {
	var err error
	h.closeOnce.Do(func() { err = h.close() })
	return err
}

func (h *Host) close() error {
	if h.cancel != nil {
		h.cancel()
	}
	h.events.Wait()
	h.mu.Lock()
	for _, g := range h.guests {
		g.release()
	}
	h.guests = map[string]*instance{}
	h.mu.Unlock()
	h.userns.close()
	var err error
	if h.client != nil {
		err = h.client.Close()
	}
	h.stopDaemon()
	return err
}

func (h *Host) stopDaemon() {
	if h.daemon != nil {
		h.daemon.stop()
	}
}

// release detaches Hearth from the guest's console, leaving the FIFOs (never
// io.Close here: it deletes them and a later attach fails).
func (g *instance) release() {
	g.closeQMP()
	if g.io != nil {
		g.io.Cancel()
	}
	g.console.CloseInput()
	g.console.End()
}

// searchableByGuests lets anyone search (not list) dirs, as Incus does
// with its own: runc mounts a guest's root (DATA/run/ID/rootfs) from inside
// the guest's user namespace, where guest root is nobody to Hearth's
// directories and needs their x bit.
func searchableByGuests(dirs ...string) error {
	for _, dir := range dirs {
		info, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if mode := info.Mode().Perm(); mode&0o011 != 0o011 {
			if err := os.Chmod(dir, mode|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

// idMap is the host ids of the guest with id slot slot.
func (h *Host) idMap(slot int) (guest.IDMap, error) {
	first := uint64(h.idBase) + uint64(slot)*guest.IDRange
	if slot < 0 || slot >= IDSlots || first+guest.IDRange > 1<<32 {
		return guest.IDMap{}, fmt.Errorf("id slot %d is past the instance's %d: %w", slot, IDSlots, guest.ErrInvalid)
	}
	return guest.IDMap{HostID: uint32(first), Size: guest.IDRange}, nil
}

// cgroupsPath is the guest's cgroup below each hierarchy's root: under the
// namespace's, as containerd's default spec names it.
func (h *Host) cgroupsPath(id string) string { return "/" + h.namespace + "/" + id }

func (h *Host) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), h.namespace), opTimeout)
}

// ptyResizer sets the size of a task's terminal (TIOCSWINSZ on the pty
// its shim holds), for the guest's console.
func (h *Host) ptyResizer(task client.Task) func(cols, rows int) error {
	return func(cols, rows int) error {
		ctx, cancel := h.opContext(context.Background())
		defer cancel()
		if err := task.Resize(ctx, uint32(cols), uint32(rows)); err != nil {
			return fmt.Errorf("resize the terminal of guest %s: %w", task.ID(), h.unavailable(err))
		}
		return nil
	}
}

// unavailable marks errors that mean containerd cannot be reached.
func (h *Host) unavailable(err error) error {
	if errdefs.IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", guest.ErrUnavailable, err)
	}
	return err
}

// lookup returns the guest with a task, or guest.ErrNotFound / guest.ErrNotRunning.
func (h *Host) lookup(id string) (*instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.guests[id]
	if !ok {
		return nil, fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	if g.task == nil || g.exited {
		return g, fmt.Errorf("guest %s: %w", id, guest.ErrNotRunning)
	}
	return g, nil
}

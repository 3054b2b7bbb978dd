package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"hearth/vmm/guest"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultNamespace is the containerd namespace of Hearth's guests.
const DefaultNamespace = "hearth"

// Container labels: everything cleanup and re-adoption need.
const (
	labelSpec    = "hearth/spec"    // guest.Spec, JSON
	labelLoops   = "hearth/loops"   // []loopDevice, JSON: boot first, then Disks in order
	labelNetns   = "hearth/netns"   // network namespace path, when the guest has NICs
	labelStarted = "hearth/started" // RFC 3339 time the guest was started
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

// WithNamespace sets the containerd namespace (default "hearth"; tests use their own).
func WithNamespace(ns string) Option { return func(h *Host) { h.namespace = ns } }

// WithNetwork wires guests' NICs; without it a guest with NICs is refused.
func WithNetwork(n Network) Option { return func(h *Host) { h.network = n } }

// WithLogger sets where the Host logs (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(h *Host) { h.log = l } }

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

	daemon    *daemon
	client    *client.Client
	ctx       context.Context // namespaced; cancelled by Close
	cancel    context.CancelFunc
	events    sync.WaitGroup
	closeOnce sync.Once
	kick      chan struct{} // the daemon came back: resubscribe now

	mu     sync.Mutex
	guests map[string]*instance
	onExit func(guest.Exit)
}

type instance struct {
	spec      guest.Spec
	loops     []loopDevice
	netns     string
	started   time.Time
	console   *guest.Console
	io        cio.IO // nil when the task was gone at adoption
	container client.Container
	task      client.Task // nil while starting, or when the task was gone at adoption
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
		guests:    make(map[string]*instance),
		kick:      make(chan struct{}, 1),
	}
	for _, opt := range opts {
		opt(h)
	}
	rt, err := SelectDriver(h.runtimeName, h.log)
	if err != nil {
		return nil, err
	}
	h.driver = rt
	if err := os.MkdirAll(h.runDir, 0o700); err != nil {
		return nil, err
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
	if g.io != nil {
		g.io.Cancel()
	}
	g.console.CloseInput()
	g.console.End()
}

func (h *Host) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), h.namespace), opTimeout)
}

// adopt rebuilds the guests an earlier Hearth left: their labels say what
// they are; running ones get their console re-attached.
func (h *Host) adopt(ctx context.Context) error {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	containers, err := h.client.Containers(ctx, fmt.Sprintf("labels.%q", labelSpec))
	if err != nil {
		return fmt.Errorf("%w: list guests: %w", guest.ErrUnavailable, err)
	}
	running := 0
	for _, c := range containers {
		g, err := h.adoptOne(ctx, c)
		if err != nil {
			h.log.Error("adopting a guest", "server", c.ID(), "err", err)
			continue
		}
		h.guests[c.ID()] = g
		if !g.exited {
			running++
		}
	}
	if len(containers) > 0 {
		h.log.Info("adopted guests", "guests", len(h.guests), "running", running)
	}
	return nil
}

func (h *Host) adoptOne(ctx context.Context, c client.Container) (*instance, error) {
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return nil, err
	}
	g := &instance{container: c, console: guest.NewConsole()}
	if err := json.Unmarshal([]byte(info.Labels[labelSpec]), &g.spec); err != nil {
		return nil, fmt.Errorf("label %s: %w", labelSpec, err)
	}
	if l := info.Labels[labelLoops]; l != "" {
		if err := json.Unmarshal([]byte(l), &g.loops); err != nil {
			return nil, fmt.Errorf("label %s: %w", labelLoops, err)
		}
	}
	g.netns = info.Labels[labelNetns]
	g.started, _ = time.Parse(time.RFC3339Nano, info.Labels[labelStarted])
	task, err := c.Task(ctx, cio.NewAttach(g.streams()...))
	if errdefs.IsNotFound(err) {
		g.exited, g.lost, g.exit = true, true, guest.Exit{ID: c.ID()}
		return g, nil
	}
	if err != nil {
		return nil, err
	}
	g.task, g.io = task, task.IO()
	st, err := task.Status(ctx)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case client.Stopped:
		g.exited, g.exit = true, guest.Exit{ID: c.ID(), Status: st.ExitStatus, At: st.ExitTime}
	case client.Created: // a Start cut short between NewTask and Start: never ran
		g.exited, g.lost, g.exit = true, true, guest.Exit{ID: c.ID()}
	case client.Paused:
		g.paused = true
	}
	return g, nil
}

func (g *instance) streams() []cio.Opt {
	return []cio.Opt{cio.WithStreams(g.console.Input(), g.console.Output(), nil), cio.WithTerminal}
}

// Start creates the guest and starts its init: boot drive and disks on loop
// devices, network namespace, container, task with the ext4 root, console.
// A boot drive without ext4 gives an error wrapping guest.ErrBootDrive.
func (h *Host) Start(ctx context.Context, spec guest.Spec) (err error) {
	if err := spec.Validate(); err != nil {
		return err
	}
	if len(spec.NICs) > 0 && h.network == nil {
		return fmt.Errorf("guest %s has NICs but Hearth has no network: %w", spec.ID, guest.ErrInvalid)
	}
	spec.SMP = resolveSMP(spec.CPU, spec.SMP, h.coreMHz)
	g := &instance{spec: spec, console: guest.NewConsole()}
	h.mu.Lock()
	if _, ok := h.guests[spec.ID]; ok {
		h.mu.Unlock()
		return fmt.Errorf("guest %s: %w", spec.ID, guest.ErrRunning)
	}
	h.guests[spec.ID] = g // reserved: a second Start of the id fails fast
	h.mu.Unlock()
	defer func() {
		if err != nil {
			h.mu.Lock()
			delete(h.guests, spec.ID)
			h.mu.Unlock()
			g.console.CloseInput()
		}
	}()

	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if err := checkExt4(spec.Boot.Image); err != nil {
		return err
	}
	init := guestInit(spec.Boot.Image)

	var holds []*os.File
	defer func() {
		for _, f := range holds {
			f.Close()
		}
		if err != nil {
			for _, l := range g.loops {
				l.detach()
			}
			os.RemoveAll(filepath.Join(h.runDir, spec.ID))
		}
	}()
	boot, hold, err := attachLoop(spec.Boot.Image, false, true)
	if err != nil {
		return err
	}
	g.loops, holds = append(g.loops, boot), append(holds, hold)
	if err := h.recordIntent(spec.ID, intent{Loops: g.loops}); err != nil {
		return err
	}
	var devices []guestDevice
	for _, d := range spec.Disks {
		l, hold, err := attachLoop(d.Image, d.ReadOnly, false)
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Device, err)
		}
		g.loops, holds = append(g.loops, l), append(holds, hold)
		if err := h.recordIntent(spec.ID, intent{Loops: g.loops}); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(hold.Fd()), &st); err != nil {
			return fmt.Errorf("disk %s: %w", d.Device, err)
		}
		devices = append(devices, guestDevice{
			Path: "/dev/" + d.Device, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), ReadOnly: d.ReadOnly,
		})
	}

	if len(spec.NICs) > 0 {
		if err := h.recordIntent(spec.ID, intent{Loops: g.loops, Network: true}); err != nil {
			return err
		}
		if g.netns, err = h.network.Setup(ctx, spec.ID, spec.NICs); err != nil {
			return fmt.Errorf("guest %s network: %w", spec.ID, err)
		}
		defer func() {
			if err != nil {
				h.network.Teardown(context.WithoutCancel(ctx), spec.ID)
			}
		}()
	}

	g.started = h.now()
	labels, err := g.labels()
	if err != nil {
		return err
	}
	c, err := h.client.NewContainer(ctx, spec.ID,
		client.WithRuntime(h.driver.Name(), nil),
		client.WithNewSpec(guestSpecOpts(spec, h.driver, init, g.netns, devices, h.coreMHz)...),
		client.WithContainerLabels(labels),
	)
	if errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("guest %s: %w", spec.ID, guest.ErrRunning)
	}
	if err != nil {
		return fmt.Errorf("create guest %s: %w", spec.ID, h.unavailable(err))
	}
	h.mu.Lock()
	g.container = c
	h.mu.Unlock()
	os.Remove(filepath.Join(h.runDir, spec.ID, intentFile)) // the labels say it all from now on
	defer func() {
		if err != nil {
			c.Delete(context.WithoutCancel(ctx))
		}
	}()

	creator := cio.NewCreator(append(g.streams(), cio.WithFIFODir(filepath.Join(h.runDir, spec.ID)))...)
	task, err := c.NewTask(ctx, creator, client.WithRootFS([]mount.Mount{{Type: "ext4", Source: boot.Device, Options: []string{"rw"}}}))
	if err != nil {
		if strings.Contains(err.Error(), "failed to mount rootfs") {
			return fmt.Errorf("boot drive %s could not be mounted as ext4 (%v): %w", spec.Boot.Image, err, guest.ErrBootDrive)
		}
		return fmt.Errorf("create task of guest %s: %w", spec.ID, h.unavailable(err))
	}
	g.io = task.IO()
	h.mu.Lock()
	g.task = task
	h.mu.Unlock()
	if err := task.Start(ctx); err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		g.io.Cancel()
		return fmt.Errorf("start guest %s: %w", spec.ID, h.unavailable(err))
	}
	return nil
}

func (g *instance) labels() (map[string]string, error) {
	spec, err := json.Marshal(g.spec)
	if err != nil {
		return nil, err
	}
	loops, err := json.Marshal(g.loops)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		labelSpec:    string(spec),
		labelLoops:   string(loops),
		labelStarted: g.started.UTC().Format(time.RFC3339Nano),
	}
	if g.netns != "" {
		labels[labelNetns] = g.netns
	}
	return labels, nil
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

// Kill ends the guest at once (SIGKILL: power failure).
func (h *Host) Kill(ctx context.Context, id string) error {
	return h.Signal(ctx, id, syscall.SIGKILL)
}

// Signal sends sig to the guest's init, e.g. its power-off signal.
func (h *Host) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if err := g.task.Kill(ctx, sig); err != nil {
		if errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
			return fmt.Errorf("guest %s: %w", id, guest.ErrNotRunning)
		}
		return fmt.Errorf("signal guest %s: %w", id, h.unavailable(err))
	}
	return nil
}

// Pause freezes the guest.
func (h *Host) Pause(ctx context.Context, id string) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if err := g.task.Pause(ctx); err != nil {
		return h.taskFailed(ctx, g, "pause", id, err)
	}
	h.mu.Lock()
	g.paused = true
	h.mu.Unlock()
	return nil
}

// Resume thaws a paused guest.
func (h *Host) Resume(ctx context.Context, id string) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if err := g.task.Resume(ctx); err != nil {
		return h.taskFailed(ctx, g, "resume", id, err)
	}
	h.mu.Lock()
	g.paused = false
	h.mu.Unlock()
	return nil
}

// SetCPU changes a running guest's CPU quota at once (and records it for
// re-adoption).
func (h *Host) SetCPU(ctx context.Context, id string, cpu, smp int) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	smp = resolveSMP(cpu, smp, h.coreMHz)
	if err := g.task.Update(ctx, client.WithResources(&specs.LinuxResources{CPU: cpuResources(cpu, smp, h.coreMHz)})); err != nil {
		return h.taskFailed(ctx, g, "update cpu of", id, err)
	}
	h.mu.Lock()
	g.spec.CPU, g.spec.SMP = cpu, smp
	labels, err := g.labels()
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := g.container.SetLabels(ctx, map[string]string{labelSpec: labels[labelSpec]}); err != nil {
		h.log.Warn("recording cpu for re-adoption", "server", id, "cpu", cpu, "err", err)
	}
	return nil
}

// taskFailed is the error of a call on g's task that failed: guest.ErrNotRunning
// when the task has ended meanwhile (its exit event may still be on the way:
// runc then reports "container not running", not a failure of Hearth's).
func (h *Host) taskFailed(ctx context.Context, g *instance, what, id string, err error) error {
	if st, serr := g.task.Status(ctx); errdefs.IsNotFound(serr) || serr == nil && st.Status == client.Stopped {
		return fmt.Errorf("%s guest %s: it has ended: %w", what, id, guest.ErrNotRunning)
	}
	return fmt.Errorf("%s guest %s: %w", what, id, h.unavailable(err))
}

// Status describes one guest.
func (h *Host) Status(ctx context.Context, id string) (guest.Status, error) {
	h.mu.Lock()
	g, ok := h.guests[id]
	h.mu.Unlock()
	if !ok {
		return guest.Status{}, fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	return h.status(g), nil
}

// Guests describes every guest the Host knows: after Open, those an earlier
// Hearth left, running or ended meanwhile.
func (h *Host) Guests(ctx context.Context) []guest.Status {
	h.mu.Lock()
	all := make([]*instance, 0, len(h.guests))
	for _, g := range h.guests {
		all = append(all, g)
	}
	h.mu.Unlock()
	out := make([]guest.Status, 0, len(all))
	for _, g := range all {
		out = append(out, h.status(g))
	}
	return out
}

func (h *Host) status(g *instance) guest.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := guest.Status{Spec: g.spec, Started: g.started, State: guest.Running}
	switch {
	case g.exited:
		s.State, s.ExitStatus, s.ExitedAt, s.Lost = guest.Stopped, g.exit.Status, g.exit.At, g.lost
	case g.paused:
		s.State = guest.Paused
	}
	return s
}

// Console is the guest's terminal stream.
func (h *Host) Console(id string) (*guest.Console, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.guests[id]
	if !ok {
		return nil, false
	}
	return g.console, true
}

// Delete ends the guest if it runs and removes everything of it: task (the
// shim unmounts the root), console FIFOs, container, loop devices (each
// verified by its backing file first), network namespace, cgroup leftovers.
func (h *Host) Delete(ctx context.Context, id string) error {
	h.mu.Lock()
	g, ok := h.guests[id]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("guest %s: %w", id, guest.ErrNotFound)
	}
	if g.container == nil {
		h.mu.Unlock()
		return fmt.Errorf("guest %s is starting: %w", id, guest.ErrBusy)
	}
	g.deleting = true
	h.mu.Unlock()
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if g.task != nil {
		if _, err := g.task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task of guest %s: %w", id, h.unavailable(err))
		}
	} else {
		// No task could be loaded, but containerd may still hold a shim for
		// the id (a task whose creation was cut short): its delete ends it.
		_, err := h.client.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id})
		if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
			h.log.Warn("deleting a leftover task", "server", id, "err", err)
		}
		if pids := h.shims()[id]; len(pids) > 0 {
			h.reapOrphan(id, pids)
		}
	}
	if g.io != nil {
		g.io.Cancel()
		g.io.Close()
	}
	g.console.CloseInput()
	g.console.End()
	if err := g.container.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete guest %s: %w", id, h.unavailable(err))
	}
	var errs []error
	os.RemoveAll(filepath.Join(h.runDir, id))
	for _, l := range g.loops {
		errs = append(errs, l.detach())
	}
	if g.netns != "" && h.network != nil {
		errs = append(errs, h.network.Teardown(ctx, id))
	}
	h.mu.Lock()
	delete(h.guests, id)
	last := len(h.guests) == 0
	removeCgroups(h.namespace, id, last)
	h.mu.Unlock()
	return errors.Join(errs...)
}

// removeCgroups removes what runc leaves in each hierarchy: the guest's
// (normally gone) directory and, after the last guest, the namespace's.
func removeCgroups(namespace, id string, namespaceToo bool) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		os.Remove(filepath.Join(root, namespace, id))
		if namespaceToo {
			os.Remove(filepath.Join(root, namespace))
		}
	}
}

// followExits turns containerd's /tasks/exit events into guest exits,
// resubscribing (and catching up on exits it missed) when the stream breaks,
// e.g. while the private daemon restarts.
func (h *Host) followExits() {
	defer h.events.Done()
	backoff := 100 * time.Millisecond
	for h.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		events, errs := h.client.Subscribe(ctx, `topic=="/tasks/exit"`, fmt.Sprintf("namespace==%q", h.namespace))
		h.catchUp()
		func() {
			defer cancel()
			for {
				select {
				case env := <-events:
					backoff = 100 * time.Millisecond
					ev, err := typeurl.UnmarshalAny(env.Event)
					if err != nil {
						continue
					}
					if e, ok := ev.(*apievents.TaskExit); ok && e.ID == e.ContainerID {
						h.exited(guest.Exit{ID: e.ContainerID, Status: e.ExitStatus, At: e.ExitedAt.AsTime()}, e.Pid)
					}
				case err := <-errs:
					if h.ctx.Err() == nil {
						h.log.Warn("containerd events: resubscribing", "err", err, "backoff", backoff)
					}
					return
				case <-h.ctx.Done():
					return
				}
			}
		}()
		select {
		case <-time.After(backoff):
			backoff = min(backoff*2, 5*time.Second)
		case <-h.kick:
			backoff = 100 * time.Millisecond
		case <-h.ctx.Done():
		}
	}
}

// catchUp asks for the state of every guest believed running, so an exit
// missed while the event stream was down is still reported.
func (h *Host) catchUp() {
	h.mu.Lock()
	var tasks []client.Task
	for _, g := range h.guests {
		if g.task != nil && !g.exited {
			tasks = append(tasks, g.task)
		}
	}
	h.mu.Unlock()
	for _, t := range tasks {
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		st, err := t.Status(ctx)
		cancel()
		if err == nil && st.Status == client.Stopped {
			h.exited(guest.Exit{ID: t.ID(), Status: st.ExitStatus, At: st.ExitTime}, t.Pid())
		}
	}
}

// exited records the exit of the init with pid; an exit of an earlier
// incarnation of the id (a late event after Reset) does not match it.
func (h *Host) exited(e guest.Exit, pid uint32) {
	h.mu.Lock()
	g, ok := h.guests[e.ID]
	if !ok || g.exited || g.task == nil || g.task.Pid() != pid {
		h.mu.Unlock()
		return
	}
	g.exited, g.exit = true, e
	fn := h.onExit
	if g.deleting {
		fn = nil
	}
	h.mu.Unlock()
	g.console.CloseInput()
	if fn != nil {
		fn(e)
	}
}

// intentFile, in DATA/run/ID, records what a Start has acquired before the
// guest's container (and its labels) exist, so that what a Hearth killed in
// between left behind is released by the next one.
const intentFile = "starting.json"

type intent struct {
	Loops   []loopDevice `json:"loops"`
	Network bool         `json:"net"` // Network.Setup may have run
}

func (h *Host) recordIntent(id string, in intent) error {
	dir := filepath.Join(h.runDir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, intentFile), b, 0o600)
}

// sweepRunDir releases what guests that never got (or no longer have) a
// container left in DATA/run: loop devices and networks recorded by a Start
// that was cut short, and console FIFOs of a Delete that was. Directories of
// others (the network's, image imports') are left alone.
func (h *Host) sweepRunDir(ctx context.Context) {
	entries, _ := os.ReadDir(h.runDir)
	for _, e := range entries {
		id := e.Name()
		if _, known := h.guests[id]; known || !e.IsDir() || !guest.ValidID(id) {
			continue
		}
		dir := filepath.Join(h.runDir, id)
		b, err := os.ReadFile(filepath.Join(dir, intentFile))
		fifos, _ := filepath.Glob(filepath.Join(dir, "*", id+"-stdout"))
		if err != nil && len(fifos) == 0 {
			continue
		}
		var in intent
		json.Unmarshal(b, &in)
		h.log.Info("releasing what an interrupted start or delete left", "server", id)
		for _, l := range in.Loops {
			if err := l.detach(); err != nil {
				h.log.Error("detaching a loop device", "server", id, "err", err)
			}
		}
		if in.Network && h.network != nil {
			if err := h.network.Teardown(ctx, id); err != nil {
				h.log.Error("tearing down a network", "server", id, "err", err)
			}
		}
		os.RemoveAll(dir)
	}
}

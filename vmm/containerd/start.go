package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"hearth/storage/rootfs"
	"hearth/vmm/guest"
)

// Start creates the guest and starts its init (a VM's: vm.go): boot drive (root found,
// grown, on a loop device and, under runc, checked and mounted idmapped —
// a read-only one as a live system, under Kata from a throwaway copy: see
// live.go), disks on loop
// devices, device nodes and cgroup owned by guest root, network namespace,
// container, task, console. A boot drive without a usable root gives an
// error wrapping guest.ErrBootDrive.
func (h *Host) Start(ctx context.Context, spec guest.Spec) (err error) {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.ID == runcDirName { // DATA/run/ID would be runc's state
		return fmt.Errorf("guest id %q is reserved: %w", spec.ID, guest.ErrInvalid)
	}
	if len(spec.NICs) > 0 && h.network == nil {
		return fmt.Errorf("guest %s has NICs but Hearth has no network: %w", spec.ID, guest.ErrInvalid)
	}
	spec.SMP = resolveSMP(spec.CPU, spec.SMP, h.coreMHz)
	unprivileged := h.driverFor(spec).SharesHostKernel()
	if spec.VM() {
		if err := h.canRunVMs(); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
	}
	if unprivileged {
		if spec.IDMap, err = h.idMap(spec.IDSlot); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
		if err := h.checkHostIDs(spec); err != nil {
			return err
		}
	}
	g, rollback, err := h.reserve(spec)
	if err != nil {
		return err
	}
	// The holds on the loop devices go in any case: from success on, the
	// root mount and the container's device nodes hold them.
	var holds []*os.File
	defer func() {
		for _, f := range holds {
			f.Close()
		}
		if err != nil {
			rollback.run()
		}
	}()

	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if spec.VM() {
		return h.startVM(ctx, g, &rollback, &holds)
	}
	root, err := findBootRoot(ctx, spec.Boot, h.log.With("server", spec.ID))
	if err != nil {
		return err
	}

	rollback.push(func() {
		if err := h.removeRunDir(spec.ID); err != nil {
			h.log.Error("removing a failed start's run directory", "server", spec.ID, "err", err)
		}
	})
	image, readOnly := spec.Boot.Image, spec.Boot.ReadOnly
	if !unprivileged && readOnly { // Kata: a live system boots from a throwaway copy (live.go)
		if image, err = liveCopy(ctx, image, filepath.Join(h.runDir, spec.ID)); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
		readOnly = false
	}
	boot, hold, err := attachLoop(image, bootLoop(root, readOnly))
	if err != nil {
		return err
	}
	g.loops, holds = append(g.loops, boot), append(holds, hold)
	rollback.push(func() { boot.detach() })
	if err := h.recordIntent(spec.ID, intent{Loops: g.loops}); err != nil {
		return err
	}
	var rootDir, init, kind string
	if unprivileged {
		// The host kernel is about to mount a filesystem a tenant wrote:
		// checked, unless nothing has written it since it was found clean.
		if h.checked.Unchanged(spec.Boot.Image, root, spec.Boot.ReadOnly) {
			h.log.Debug("boot drive unchanged since found clean: not checked again", "server", spec.ID, "fs", root.FS)
		} else {
			checked := h.now()
			if err := rootfs.Check(ctx, boot.Device, root.FS, spec.Boot.ReadOnly); err != nil {
				return fmt.Errorf("%w: %w", guest.ErrBootDrive, err)
			}
			h.checked.Passed(spec.Boot.Image, root, spec.Boot.ReadOnly)
			h.log.Debug("boot drive checked", "server", spec.ID, "fs", root.FS, "took", h.now().Sub(checked))
		}
		rootDir = filepath.Join(h.runDir, spec.ID, rootDirName)
		idmap := func(mfd int) error { return h.userns.idmap(mfd, spec.IDMap) }
		mountBoot := func() error { return mountRoot(root.FS, boot.Device, rootDir, false, idmap) }
		if spec.Boot.ReadOnly {
			mountBoot = func() error {
				return mountLive(root.FS, boot.Device, filepath.Join(h.runDir, spec.ID), rootDir, idmap)
			}
		}
		if err := mountBoot(); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
		rollback.push(func() { unmountRoot(rootDir) })
		if !spec.Boot.ReadOnly {
			g.hostRoot = root
			if err := rootfs.GrowMounted(ctx, root, rootDir); err != nil {
				h.log.Warn("the root filesystem could not be grown; it boots at its size", "server", spec.ID, "err", err)
			}
		}
		init = guestInit(rootDir)
		kind = initKind(rootDir)
		// Known before the container is made, it is recorded with it.
		h.notePowerOff(g, kind)
	} else {
		init = deviceInit(boot.Device, root.FS)
	}
	var devices []guestDevice
	for _, d := range spec.Disks {
		dev, err := h.attachDrive(g, d.Image, "/dev/"+d.Device, d.ReadOnly, &holds, &rollback)
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Device, err)
		}
		devices = append(devices, dev)
	}
	if unprivileged {
		devices = append(devices, guestCharDevices...)
		if err := makeNodes(filepath.Join(h.runDir, spec.ID, "dev"), devices, spec.IDMap.HostID); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
		rollback.push(func() {
			h.mu.Lock()
			removeCgroups(h.namespace, spec.ID, len(h.guests) == 1) // this one is still reserved
			h.mu.Unlock()
		})
		if err := h.cgroups.prepare(h.cgroupsPath(spec.ID), spec.IDMap.HostID); err != nil {
			return fmt.Errorf("guest %s: %w", spec.ID, err)
		}
	}

	c, err := h.newContainer(ctx, g, guestSpecOpts(spec, h.driver, init, rootDir, devices, h.coreMHz), &rollback)
	if err != nil {
		return err
	}
	var taskOpts []client.NewTaskOpts
	if !unprivileged { // the runtime mounts the root (Kata: in its VM)
		taskOpts = append(taskOpts, client.WithRootFS(runtimeRootMounts(root.FS, boot.Device, readOnly)))
	}
	task, err := h.newTask(ctx, g, c, taskOpts, &rollback)
	if err != nil {
		if strings.Contains(err.Error(), "failed to mount rootfs") {
			return fmt.Errorf("the boot drive's %s root could not be mounted: %w", root.FS, guest.ErrBootDrive)
		}
		return err
	}
	if unprivileged && freesConsole(init, kind) {
		if err := freeConsole(task.Pid()); err != nil {
			h.log.Warn("the console stays init's controlling terminal: a getty on it cannot take it", "server", spec.ID, "err", err)
		}
	}
	if len(spec.NICs) > 0 { // into the namespace runc made with the init
		if err := h.network.Attach(ctx, spec.ID, task.Pid(), spec.NICs); err != nil {
			return fmt.Errorf("guest %s network: %w", spec.ID, err)
		}
		rollback.push(func() { h.network.Detach(context.WithoutCancel(ctx), spec.ID) })
	}
	if !unprivileged {
		h.recordPowerOff(ctx, g, task.Pid())
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start guest %s: %w", spec.ID, h.unavailable(err))
	}
	return nil
}

// reserve records the guest as starting, so a second Start of the id fails
// fast with guest.ErrRunning, and returns it with the stack of what undoes
// the start on failure (the caller runs it), the reservation first.
func (h *Host) reserve(spec guest.Spec) (*instance, undo, error) {
	g := &instance{spec: spec, console: guest.NewConsole()}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.guests[spec.ID]; ok {
		return nil, nil, fmt.Errorf("guest %s: %w", spec.ID, guest.ErrRunning)
	}
	h.guests[spec.ID] = g
	rollback := undo{func() {
		h.mu.Lock()
		delete(h.guests, spec.ID)
		h.mu.Unlock()
		g.console.CloseInput()
	}}
	return g, rollback, nil
}

// attachDrive attaches image to a loop device for g (no autoclear: Delete
// detaches it), records it as Start's intent, and returns the device as the
// guest sees it at path. The caller closes the hold once the container's
// node holds the device.
func (h *Host) attachDrive(g *instance, image, path string, readOnly bool, holds *[]*os.File, rollback *undo) (guestDevice, error) {
	l, hold, err := attachLoop(image, loopConfig{ReadOnly: readOnly})
	if err != nil {
		return guestDevice{}, err
	}
	g.loops, *holds = append(g.loops, l), append(*holds, hold)
	rollback.push(func() { l.detach() })
	if err := h.recordIntent(g.spec.ID, intent{Loops: g.loops}); err != nil {
		return guestDevice{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(hold.Fd()), &st); err != nil {
		return guestDevice{}, err
	}
	return guestDevice{Path: path, Type: "b", Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), ReadOnly: readOnly}, nil
}

// newContainer creates g's container from specOpts, labelled with what
// cleanup and re-adoption need; from then on the labels replace Start's
// intent file.
func (h *Host) newContainer(ctx context.Context, g *instance, specOpts []oci.SpecOpts, rollback *undo) (client.Container, error) {
	id := g.spec.ID
	g.started = h.now()
	labels, err := g.labels()
	if err != nil {
		return nil, err
	}
	c, err := h.client.NewContainer(ctx, id,
		client.WithRuntime(h.driverFor(g.spec).Name(), nil),
		client.WithNewSpec(specOpts...),
		client.WithContainerLabels(labels),
	)
	if errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("guest %s: %w", id, guest.ErrRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("create guest %s: %w", id, h.unavailable(err))
	}
	h.mu.Lock()
	g.container = c
	h.mu.Unlock()
	os.Remove(filepath.Join(h.runDir, id, intentFile)) // the labels say it all from now on
	rollback.push(func() { c.Delete(context.WithoutCancel(ctx)) })
	return c, nil
}

// newTask creates the task of g's container with its console (FIFOs in
// DATA/run/ID), not yet started.
func (h *Host) newTask(ctx context.Context, g *instance, c client.Container, opts []client.NewTaskOpts, rollback *undo) (client.Task, error) {
	id := g.spec.ID
	creator := cio.NewCreator(append(g.streams(), cio.WithFIFODir(filepath.Join(h.runDir, id)))...)
	task, err := c.NewTask(ctx, creator, append(opts, h.driverFor(g.spec).TaskOptions(h.runcState())...)...)
	if err != nil {
		return nil, fmt.Errorf("create task of guest %s: %w", id, h.unavailable(err))
	}
	g.io = task.IO()
	h.mu.Lock()
	g.task = task
	h.mu.Unlock()
	g.console.SetResizer(h.ptyResizer(task))
	rollback.push(func() {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		g.io.Cancel()
	})
	return task, nil
}

// runtimeRootMounts is the root a runtime that mounts it itself (Kata, in
// its VM) is given: a read-only drive read-only, no journal replayed. The
// loop device under it is read-only too, so nothing can write the drive.
func runtimeRootMounts(fs, dev string, readOnly bool) []mount.Mount {
	options := []string{"rw"}
	if readOnly {
		options = readOnlyOptions(fs)
	}
	return []mount.Mount{{Type: fs, Source: dev, Options: options}}
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
	if g.powerOff != 0 {
		labels[labelPowerOff] = strconv.Itoa(int(g.powerOff))
	}
	return labels, nil
}

// undo is a stack of steps that take back what a call made, run in reverse
// when the call fails.
type undo []func()

func (u *undo) push(step func()) { *u = append(*u, step) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

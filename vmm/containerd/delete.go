package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"hearth/vmm/guest"
)

// Delete ends the guest if it runs and removes everything of it: task,
// console FIFOs, container, the root Hearth mounted (Kata's shim unmounts
// its own), device nodes, loop devices (each verified by its backing file
// first), what remains of its NICs, cgroup leftovers.
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
	h.mu.Lock()
	g.closeQMP()
	h.mu.Unlock()
	if g.io != nil {
		g.io.Cancel()
		g.io.Close()
	}
	g.console.CloseInput()
	g.console.End()
	if err := g.container.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete guest %s: %w", id, h.unavailable(err))
	}
	// The root is unmounted first: its loop device (autoclear) goes with it.
	errs := []error{h.removeRunDir(id)}
	for _, l := range g.loops {
		errs = append(errs, l.detach())
	}
	if len(g.loops) > 0 {
		// A start right after (reset, reboot) must find the drive free.
		waitLoopCleared(g.loops[0])
		h.noteUnmounted(g, errs[0])
	}
	if len(g.spec.NICs) > 0 && h.network != nil {
		errs = append(errs, h.network.Detach(ctx, id))
	}
	h.mu.Lock()
	delete(h.guests, id)
	last := len(h.guests) == 0
	removeCgroups(h.namespace, id, last)
	if last { // runc leaves its (empty) root; under h.mu, so no Start is under way
		os.Remove(h.runcRoot())
		os.Remove(h.runcState())
	}
	h.mu.Unlock()
	return errors.Join(errs...)
}

// noteUnmounted records a writable root Hearth mounted as clean once the
// host kernel has really let go of it — its unmount succeeded and the boot
// loop device (autoclear) is released, so no superblock lives on — and its
// superblock says it was unmounted clean; the next start then need not
// check it while nothing else writes the drive.
func (h *Host) noteUnmounted(g *instance, unmountErr error) {
	boot := g.loops[0]
	if g.hostRoot.FS == "" || unmountErr != nil {
		return
	}
	if loopBacking(boot.Device) == boot.File {
		h.log.Info("boot drive still held after its guest: its next start checks it", "server", g.spec.ID)
		return
	}
	if err := h.checked.Unmounted(g.spec.Boot.Image, g.hostRoot); err != nil {
		h.log.Info("boot drive not left clean: its next start checks it", "server", g.spec.ID, "err", err)
	}
}

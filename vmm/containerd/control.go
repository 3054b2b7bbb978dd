package containerd

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/vmm/guest"
)

// Kill ends the guest at once (SIGKILL: power failure).
func (h *Host) Kill(ctx context.Context, id string) error {
	return h.Signal(ctx, id, syscall.SIGKILL)
}

// Signal sends sig to the guest's init, e.g. its power-off signal. An init
// ignores every signal it does not catch (SIGKILL and SIGSTOP aside), and
// one just started may not have its handlers yet: a signal it does not
// catch yet waits until it does, initHandlersWait at most.
func (h *Host) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if sig != syscall.SIGKILL && sig != syscall.SIGSTOP && h.driverFor(g.spec).SharesHostKernel() {
		waitCaught(ctx, g.task.Pid(), sig)
	}
	if err := g.task.Kill(ctx, sig); err != nil {
		if errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
			return fmt.Errorf("guest %s: %w", id, guest.ErrNotRunning)
		}
		return fmt.Errorf("signal guest %s: %w", id, h.unavailable(err))
	}
	return nil
}

// initHandlersWait is how long a signal waits for an init to catch it: inits
// install their handlers within milliseconds of starting.
const initHandlersWait = time.Second

// waitCaught waits until process pid catches sig (its /proc status's
// SigCgt), initHandlersWait at most.
func waitCaught(ctx context.Context, pid uint32, sig syscall.Signal) {
	deadline := time.Now().Add(initHandlersWait)
	for {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil || catches(string(status), sig) || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// catches reports whether a /proc/PID/status says its process catches sig.
func catches(status string, sig syscall.Signal) bool {
	for line := range strings.Lines(status) {
		if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			return err == nil && sig >= 1 && sig <= 64 && bits&(1<<(sig-1)) != 0
		}
	}
	return false
}

// Pause freezes the guest.
func (h *Host) Pause(ctx context.Context, id string) error { return h.freeze(ctx, id, true) }

// Resume thaws a paused guest.
func (h *Host) Resume(ctx context.Context, id string) error { return h.freeze(ctx, id, false) }

// freeze pauses (frozen true) or resumes the guest's task and records it;
// a VM's vCPUs instead (pauseVM).
func (h *Host) freeze(ctx context.Context, id string, frozen bool) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	if g.spec.VM() {
		return h.pauseVM(ctx, id, frozen)
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	what, change := "resume", g.task.Resume
	if frozen {
		what, change = "pause", g.task.Pause
	}
	if err := change(ctx); err != nil {
		return h.taskFailed(ctx, g, what, id, err)
	}
	h.mu.Lock()
	g.paused = frozen
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

// SetFirewall changes the firewall of a running guest's NIC at once (and
// records it for re-adoption).
func (h *Host) SetFirewall(ctx context.Context, id string, index int, fw guest.Firewall) error {
	g, err := h.lookup(id)
	if err != nil {
		return err
	}
	h.mu.Lock()
	i := slices.IndexFunc(g.spec.NICs, func(n guest.NIC) bool { return n.Index == index })
	var nic guest.NIC
	if i >= 0 {
		nic = g.spec.NICs[i]
	}
	h.mu.Unlock()
	if i < 0 || h.network == nil {
		return fmt.Errorf("guest %s has no nic:%d: %w", id, index, guest.ErrInvalid)
	}
	nic.Firewall = fw
	if err := h.network.SetFirewall(id, nic); err != nil {
		return fmt.Errorf("guest %s nic:%d firewall: %w", id, index, err)
	}
	h.mu.Lock()
	g.spec.NICs = slices.Clone(g.spec.NICs)
	g.spec.NICs[i] = nic
	labels, err := g.labels()
	h.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if _, err := g.container.SetLabels(ctx, map[string]string{labelSpec: labels[labelSpec]}); err != nil {
		h.log.Warn("recording the firewall for re-adoption", "server", id, "nic", index, "err", err)
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

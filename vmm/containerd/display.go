package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"syscall"
	"time"

	"hearth/vmm/guest"
	"hearth/vmm/qemu"
)

// displayRetry is how often a viewer's dial looks again for the VNC socket
// of a VM whose QEMU is still starting.
const displayRetry = 50 * time.Millisecond

// probeVMs finds, once at Open, how VM guests run here and logs it: under
// KVM where /dev/kvm opens read-write, else under QEMU's software
// emulation (TCG), or not at all (no QEMU, or the Kata runtime).
func (h *Host) probeVMs() {
	switch err := h.canRunVMs(); {
	case err != nil:
		h.accel = ""
		h.log.Info("VM guests cannot run here", "reason", err)
	case kvmUsable():
		h.accel = guest.AccelKVM
		h.log.Info("VM guests run under KVM")
	default:
		h.accel = guest.AccelTCG
		h.log.Warn("no usable /dev/kvm: VM guests run under software emulation (TCG), several times slower than with KVM")
	}
}

// Accelerator is how VM guests run here, as probed at Open: guest.AccelKVM,
// guest.AccelTCG, or "" where they cannot run.
func (h *Host) Accelerator() string { return h.accel }

// Display reaches the VGA display of a running VM guest: QEMU's VNC
// socket in its run directory (qemu.VNCSocket, no authentication: only
// Hearth reaches it). A container has none: its console is its terminal.
// A viewer that comes while QEMU is still starting (the socket not made
// yet, or not listening) waits for it as long as ctx lets it.
func (h *Host) Display(id string) (func(ctx context.Context) (net.Conn, error), bool) {
	h.mu.Lock()
	g, ok := h.guests[id]
	running := ok && g.spec.VM() && !g.exited
	h.mu.Unlock()
	if !running {
		return nil, false
	}
	sock := filepath.Join(h.qemuRunDir(id), qemu.VNCSocket)
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		for {
			conn, err := d.DialContext(ctx, "unix", sock)
			if err == nil {
				return conn, nil
			}
			if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
				return nil, fmt.Errorf("VM %s display: %w", id, err)
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("VM %s display: QEMU's VNC socket %s: %w (%w)", id, sock, err, ctx.Err())
			case <-time.After(displayRetry):
			}
		}
	}, true
}

package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"hearth/vmm/guest"
)

// adopt rebuilds the guests an earlier Hearth left: their labels say what
// they are; running ones get their console re-attached and DHCP for their
// NICs.
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
	g.started, _ = time.Parse(time.RFC3339Nano, info.Labels[labelStarted])
	if n, err := strconv.Atoi(info.Labels[labelPowerOff]); err == nil {
		g.powerOff = syscall.Signal(n)
	}
	task, err := c.Task(ctx, cio.NewAttach(g.streams()...))
	if errdefs.IsNotFound(err) {
		g.exited, g.lost, g.exit = true, true, guest.Exit{ID: c.ID()}
		return g, nil
	}
	if err != nil {
		return nil, err
	}
	g.task, g.io = task, task.IO()
	g.console.SetResizer(h.ptyResizer(task))
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
	if g.exited && g.spec.VM() && g.exit.Status == 0 {
		// Ended while no Hearth watched its monitor: QEMU exits 0 after its
		// guest's own poweroff (Hearth never asks it to quit).
		g.exit.Status = guest.ExitPoweredOff
	}
	if !g.exited && g.spec.VM() {
		h.adoptQMP(ctx, g)
	}
	if !g.exited && len(g.spec.NICs) > 0 && h.network != nil {
		if err := h.network.Adopt(c.ID(), g.spec.NICs); err != nil {
			h.log.Warn("no DHCP for an adopted guest", "server", c.ID(), "err", err)
		}
	}
	return g, nil
}

func (g *instance) streams() []cio.Opt {
	return []cio.Opt{cio.WithStreams(g.console.Input(), g.console.Output(), nil), cio.WithTerminal}
}

package containerd

import (
	"context"
	"fmt"
	"time"

	"hearth/vmm/guest"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
)

// Counters reads the guest's disk counters from its loop devices' stat
// files (a VM's from QEMU: vmCounters) and guest.NIC counters from the
// Network; it asks containerd nothing, so info on many servers stays cheap.
// A counter that cannot be read is left out (NICs and a VM's drives: logged).
func (h *Host) Counters(ctx context.Context, id string) (guest.Counters, error) {
	g, err := h.lookup(id)
	if err != nil {
		return guest.Counters{}, err
	}
	c := guest.Counters{Disks: map[string]guest.DiskCounters{}, NICs: map[int]guest.NICCounters{}}
	if g.spec.VM() {
		h.vmCounters(ctx, g, c)
	} else {
		devices := append([]guest.Disk{g.spec.Boot}, g.spec.Disks...)
		for i, l := range g.loops {
			if i >= len(devices) {
				break
			}
			if d, err := l.counters(); err == nil {
				c.Disks[devices[i].CounterKey()] = d
			}
		}
	}
	if h.network != nil {
		for _, n := range g.spec.NICs {
			nc, err := h.network.Counters(id, n.Index)
			if err != nil {
				h.log.Warn("nic counters unreadable", "server", id, "nic", n.Index, "err", err)
				continue
			}
			c.NICs[n.Index] = nc
		}
	}
	return c, nil
}

// usageMaxAge is how long a guest's Usage is reused. Each reading is a
// round trip through containerd to the shim, and /servers/info asks for every
// running server: without the reuse one request on a host with hundreds of
// guests would cost hundreds of round trips.
const usageMaxAge = 2 * time.Second

// Usage is the task's cgroup metrics (v1 on Debian 12's default hierarchy, v2
// elsewhere) as containerd reported them at most usageMaxAge ago.
func (h *Host) Usage(ctx context.Context, id string) (guest.Usage, error) {
	g, err := h.lookup(id)
	if err != nil {
		return guest.Usage{}, err
	}
	now := h.now()
	h.mu.Lock()
	if !g.usageAt.IsZero() && now.Sub(g.usageAt) < usageMaxAge {
		u := g.usage
		h.mu.Unlock()
		return u, nil
	}
	h.mu.Unlock()
	u, err := h.readUsage(ctx, g, id)
	if err != nil {
		return guest.Usage{}, err
	}
	h.mu.Lock()
	g.usage, g.usageAt = u, now
	h.mu.Unlock()
	return u, nil
}

func (h *Host) readUsage(ctx context.Context, g *instance, id string) (guest.Usage, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	m, err := g.task.Metrics(ctx)
	if err != nil {
		return guest.Usage{}, fmt.Errorf("metrics of guest %s: %w", id, h.unavailable(err))
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return guest.Usage{}, fmt.Errorf("metrics of guest %s: %w", id, err)
	}
	var u guest.Usage
	switch s := data.(type) {
	case *v1.Metrics:
		if s.CPU != nil && s.CPU.Usage != nil {
			u.CPUNanos = s.CPU.Usage.Total
		}
		if s.Memory != nil && s.Memory.Usage != nil {
			u.MemoryBytes = s.Memory.Usage.Usage
		}
	case *v2.Metrics:
		if s.CPU != nil {
			u.CPUNanos = s.CPU.UsageUsec * 1000
		}
		if s.Memory != nil {
			u.MemoryBytes = s.Memory.Usage
		}
	}
	return u, nil
}

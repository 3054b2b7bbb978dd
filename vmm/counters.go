package vmm

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
)

// Counters are a running guest's I/O so far.
type Counters struct {
	Disks map[string]DiskCounters // by Disk.Device (the boot drive's too)
	NICs  map[int]NICCounters     // by NIC index, as the guest sees them
}

// Counters reads the guest's disk counters from its loop devices' stat
// files and NIC counters from the Network; it asks containerd nothing, so
// info on many servers stays cheap. A counter that cannot be read is left
// out (NICs: logged).
func (h *Host) Counters(ctx context.Context, id string) (Counters, error) {
	g, err := h.lookup(id)
	if err != nil {
		return Counters{}, err
	}
	c := Counters{Disks: map[string]DiskCounters{}, NICs: map[int]NICCounters{}}
	devices := append([]Disk{g.spec.Boot}, g.spec.Disks...)
	for i, l := range g.loops {
		if i >= len(devices) {
			break
		}
		if d, err := l.counters(); err == nil {
			c.Disks[devices[i].Device] = d
		}
	}
	if h.network != nil {
		for _, n := range g.spec.NICs {
			nc, err := h.network.Counters(id, n.Index)
			if err != nil {
				h.logf("guest %s nic %d counters: %v", id, n.Index, err)
				continue
			}
			c.NICs[n.Index] = nc
		}
	}
	return c, nil
}

// Usage is a running guest's CPU and memory use.
type Usage struct {
	CPUNanos    uint64 // CPU time used so far
	MemoryBytes uint64 // memory in use
}

// usageMaxAge is how long a guest's Usage is reused. Each reading is a
// round trip through containerd to the shim, and /servers/info asks for every
// running server: without the reuse one request on a host with hundreds of
// guests would cost hundreds of round trips.
const usageMaxAge = 2 * time.Second

// Usage is the task's cgroup metrics (v1 on Debian 12's default hierarchy, v2
// elsewhere) as containerd reported them at most usageMaxAge ago.
func (h *Host) Usage(ctx context.Context, id string) (Usage, error) {
	g, err := h.lookup(id)
	if err != nil {
		return Usage{}, err
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
		return Usage{}, err
	}
	h.mu.Lock()
	g.usage, g.usageAt = u, now
	h.mu.Unlock()
	return u, nil
}

func (h *Host) readUsage(ctx context.Context, g *guest, id string) (Usage, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	m, err := g.task.Metrics(ctx)
	if err != nil {
		return Usage{}, fmt.Errorf("metrics of guest %s: %w", id, h.unavailable(err))
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return Usage{}, fmt.Errorf("metrics of guest %s: %w", id, err)
	}
	var u Usage
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

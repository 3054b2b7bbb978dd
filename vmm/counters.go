package vmm

import (
	"context"
	"fmt"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
)

// Counters are a running guest's usage so far.
type Counters struct {
	Disks       map[string]DiskCounters // by Disk.Device (the boot drive's too)
	NICs        map[int]NICCounters     // by NIC index, as the guest sees them
	CPUNanos    uint64                  // CPU time used
	MemoryBytes uint64                  // memory in use
}

// Counters reads the guest's disk counters from its loop devices' stat
// files, NIC counters from the Network, and CPU and memory from the task's
// cgroup metrics. A counter that cannot be read is left out (and logged).
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
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	m, err := g.task.Metrics(ctx)
	if err != nil {
		return c, fmt.Errorf("metrics of guest %s: %w", id, h.unavailable(err))
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return c, fmt.Errorf("metrics of guest %s: %w", id, err)
	}
	switch s := data.(type) {
	case *v1.Metrics:
		if s.CPU != nil && s.CPU.Usage != nil {
			c.CPUNanos = s.CPU.Usage.Total
		}
		if s.Memory != nil && s.Memory.Usage != nil {
			c.MemoryBytes = s.Memory.Usage.Usage
		}
	case *v2.Metrics:
		if s.CPU != nil {
			c.CPUNanos = s.CPU.UsageUsec * 1000
		}
		if s.Memory != nil {
			c.MemoryBytes = s.Memory.Usage
		}
	}
	return c, nil
}

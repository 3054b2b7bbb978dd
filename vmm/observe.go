package vmm

import (
	"context"
	"net/netip"

	"hearth/console"
	"hearth/vmm/guest"
)

// Observation is what a running server's guest looks like now: the numbers
// and addresses web/api renders as the ElasticHosts runtime keys and the
// dashboard samples.
type Observation struct {
	SMP   int        // vCPUs the guest has
	NICs  []NICState // in the guest's order
	Disks map[string]guest.DiskCounters
	// Usage is the guest's CPU time and memory in use; nil when the
	// backend could not tell.
	Usage *guest.Usage
	// VNC is where the server's console listens; nil without one.
	VNC *console.Endpoint
}

// NICState is one of a guest's NICs.
type NICState struct {
	Index    int
	MAC      string
	IP       netip.Addr         // invalid when the NIC has no address of Hearth's
	Counters *guest.NICCounters // nil when they could not be read
}

// Observe describes a running (or paused) server's guest; false when it has
// none. Disks are keyed by the server's device keys (ide:0:0).
func (m *Manager) Observe(ctx context.Context, server string) (Observation, bool) {
	st, err := m.backend.Status(ctx, server)
	if err != nil || st.State == guest.Stopped {
		return Observation{}, false
	}
	o := Observation{SMP: st.Spec.SMP}
	counters, cerr := m.backend.Counters(ctx, server)
	for _, n := range st.Spec.NICs {
		nic := NICState{Index: n.Index, MAC: n.MAC}
		if n.Address.IsValid() {
			nic.IP = n.Address.Addr()
		}
		if c, ok := counters.NICs[n.Index]; ok && cerr == nil {
			nic.Counters = &c
		}
		o.NICs = append(o.NICs, nic)
	}
	if cerr == nil {
		o.Disks = counters.Disks
	}
	if u, err := m.backend.Usage(ctx, server); err == nil {
		o.Usage = &u
	}
	if m.consoles != nil {
		if ep, ok := m.consoles.Endpoint(server); ok {
			o.VNC = &ep
		}
	}
	return o, true
}

package containerd

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/vmm/guest"
)

// Network wires guests' NICs to host bridges; package vmm/network implements
// it. The runtime makes each guest a network namespace of its own
// (withNetworkNamespace); the Host calls Attach once the guest's init exists
// and before it runs, Detach when it deletes the guest, and Adopt for each
// guest an earlier Hearth left running.
type Network interface {
	// Attach creates one veth per guest.NIC with its guest end (ethINDEX,
	// the NIC's MAC) in the network namespace of process pid, joins the host
	// end to its bridge and configures the guest end (address, default
	// route, lo up), or for a Tap NIC (a VM's) bridges it to the tap device
	// network.TapName(INDEX) owned by the guest's root; DHCP then answers
	// the NIC.
	Attach(ctx context.Context, id string, pid uint32, nics []guest.NIC) error
	// Detach removes what of it remains; idempotent; nothing left behind.
	Detach(ctx context.Context, id string) error
	// Adopt makes DHCP answer the NICs of a guest attached before a restart
	// and loads their filter rules again.
	Adopt(id string, nics []guest.NIC) error
	// SetFirewall loads the filter rules of an attached NIC again, with
	// its new Firewall.
	SetFirewall(id string, nic guest.NIC) error
	Counters(id string, index int) (guest.NICCounters, error)
}

// withNetworkNamespace gives the guest a new network namespace, made by the
// runtime together with (and so owned by) the guest's user namespace: guest
// root then configures its own NICs, which a namespace made beforehand by
// host root would refuse it (and runc would fail to mount sysfs in).
func withNetworkNamespace() oci.SpecOpts {
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace})
}

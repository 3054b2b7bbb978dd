package containerd

import (
	"context"

	"hearth/vmm/guest"
)

// Network wires guests to host bridges; package vmm/network implements it.
// The Host calls Setup before creating a guest with NICs and Teardown when it
// deletes it.
type Network interface {
	// Setup creates the guest's network namespace with one veth per guest.NIC joined to its bridge and
	// configured inside (eth0, eth1, lo up, address, default route); returns the namespace path for
	// the OCI spec. Calling it again for a set-up id returns the same path.
	Setup(ctx context.Context, id string, nics []guest.NIC) (netnsPath string, err error)
	// Teardown removes all of it; idempotent; nothing left behind.
	Teardown(ctx context.Context, id string) error
	Counters(id string, index int) (guest.NICCounters, error)
}

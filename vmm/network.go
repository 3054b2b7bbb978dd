package vmm

import (
	"context"

	"hearth/vmm/network"
)

// NIC is one guest network interface; the network package owns the type so it
// need not import this one.
type NIC = network.NIC

// NICCounters are a NIC's traffic as seen by the guest.
type NICCounters = network.NICCounters

// Network wires guests to host bridges; package vmm/network implements it.
// The Host calls Setup before creating a guest with NICs and Teardown when it
// deletes it.
type Network interface {
	// Setup creates the guest's network namespace with one veth per NIC joined to its bridge and
	// configured inside (eth0, eth1, lo up, address, default route); returns the namespace path for
	// the OCI spec. Calling it again for a set-up id returns the same path.
	Setup(ctx context.Context, id string, nics []NIC) (netnsPath string, err error)
	// Teardown removes all of it; idempotent; nothing left behind.
	Teardown(ctx context.Context, id string) error
	Counters(id string, index int) (NICCounters, error)
}

var _ Network = (*network.Switch)(nil)

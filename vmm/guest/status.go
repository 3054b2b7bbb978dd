package guest

import (
	"syscall"
	"time"
)

// State is a guest's state as its backend reports it.
type State string

// Guest states.
const (
	Running State = "running"
	Paused  State = "paused"
	Stopped State = "stopped" // the guest ended (or is gone); Delete cleans up
)

// Status describes one guest.
type Status struct {
	Spec    Spec
	State   State
	Started time.Time
	// PowerOff is the signal the guest's init powers off on, as the
	// backend found it at start; 0 = the backend cannot tell.
	PowerOff   syscall.Signal
	ExitStatus uint32    // when Stopped
	ExitedAt   time.Time // when Stopped; zero when it ended while no Hearth watched
	// Lost: Stopped because the guest itself was gone at adoption — the host
	// rebooted (or the shim died) — rather than because it ended.
	Lost bool
}

// Exit reports that a guest's init ended.
type Exit struct {
	ID     string
	Status uint32
	At     time.Time
}

// Counters are a running guest's I/O so far.
type Counters struct {
	Disks map[string]DiskCounters // by Disk.Device (the boot drive's too)
	NICs  map[int]NICCounters     // by NIC index, as the guest sees them
}

// DiskCounters are a disk's I/O as the host's block layer counted it.
type DiskCounters struct {
	ReadBytes     uint64 `json:"rb"`
	ReadRequests  uint64 `json:"rr"`
	WriteBytes    uint64 `json:"wb"`
	WriteRequests uint64 `json:"wr"`
}

// Usage is a running guest's CPU and memory use.
type Usage struct {
	CPUNanos    uint64 // CPU time used so far
	MemoryBytes uint64 // memory in use
}

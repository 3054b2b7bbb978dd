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
	PowerOff syscall.Signal
	// Buttons: the guest is a machine with a power and a reset button (a
	// VM), which Backend.Press presses; PowerOff does not apply to it.
	Buttons    bool
	ExitStatus uint32    // when Stopped
	ExitedAt   time.Time // when Stopped; zero when it ended while no Hearth watched
	// Lost: Stopped because the guest itself was gone at adoption — the host
	// rebooted (or the shim died) — rather than because it ended.
	Lost bool
}

// Button is a button of a machine's front panel (Status.Buttons); its
// value names it in logs and the activity log.
type Button string

// A machine's buttons.
const (
	// PowerButton is the ACPI power button: the guest's OS is asked to
	// power off, and may ignore it.
	PowerButton Button = "ACPI power button"
	// ResetButton is a hard reset: the machine restarts its firmware in
	// place at once, its OS given no say.
	ResetButton Button = "reset button"
)

// ExitPoweredOff is the exit status of a guest that powered itself off. The
// kernel kills the init of a PID namespace that calls reboot(2) to power off
// or halt with SIGINT (kernel/pid_namespace.c, reboot_pid_ns), so a
// container reports 128 + SIGINT; a backend whose guests power off
// otherwise (a VM's QEMU exits 0) reports this status for it.
const ExitPoweredOff = 128 + uint32(syscall.SIGINT)

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

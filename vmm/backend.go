package vmm

import (
	"context"
	"net"
	"syscall"

	"hearth/vmm/guest"
)

// Backend runs guests for the Manager: a hypervisor or container engine
// (vmm/containerd today; a QEMU or Kubernetes one could be another). Every
// method takes the guest's id (the server UUID); errors wrap the sentinels of
// package guest. A backend keeps no database: the Manager decides what runs.
type Backend interface {
	// Name names what guests run under, for /health and the dashboard
	// (e.g. io.containerd.runc.v2).
	Name() string
	// Start creates the guest and starts its init; an id that has a guest
	// already is guest.ErrRunning.
	Start(ctx context.Context, spec guest.Spec) error
	// Signal sends sig to the guest's init (the power-off signal).
	Signal(ctx context.Context, id string, sig syscall.Signal) error
	// Press presses a button of a guest whose Status has Buttons (a VM):
	// guest.PowerButton asks its OS to power off, guest.ResetButton resets
	// it in place (the guest, its Started and its console stay). A guest
	// without buttons is guest.ErrInvalid.
	Press(ctx context.Context, id string, b guest.Button) error
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// SetCPU changes a running guest's CPU share at once (smp 0: derived from cpu).
	SetCPU(ctx context.Context, id string, cpu, smp int) error
	// SetFirewall changes the firewall of a running guest's NIC index at once.
	SetFirewall(ctx context.Context, id string, index int, fw guest.Firewall) error
	// Delete ends the guest if it runs and removes everything of it.
	Delete(ctx context.Context, id string) error
	// Status describes one guest; one that ended stays Stopped until deleted.
	Status(ctx context.Context, id string) (guest.Status, error)
	// Guests describes every guest the backend knows, including those an
	// earlier Hearth left (running, ended meanwhile, or lost with the host).
	Guests(ctx context.Context) []guest.Status
	// Console is the guest's terminal stream (a VM's serial port).
	Console(id string) (*guest.Console, bool)
	// Display reaches a running guest's graphical display: an RFB server
	// that asks for no authentication and only Hearth can reach (a VM's
	// QEMU VGA, -vnc unix:). False for a guest without one (a container,
	// whose console is its terminal). The Manager serves it as the
	// server's VNC console (console.Registry.AttachRelay).
	Display(id string) (dial func(ctx context.Context) (net.Conn, error), ok bool)
	// Accelerator is how VM guests run here, probed once when the backend
	// opened: guest.AccelKVM, guest.AccelTCG, or "" where VMs cannot run.
	Accelerator() string
	// Counters are the guest's disk and NIC I/O so far.
	Counters(ctx context.Context, id string) (guest.Counters, error)
	// Usage is the guest's CPU time and memory in use.
	Usage(ctx context.Context, id string) (guest.Usage, error)
	// OnExit sets the function told about every exit of a guest's init
	// (not of one Delete ends); it must not block.
	OnExit(fn func(guest.Exit))
	// OnReboot sets the function told when a guest rebooted itself in
	// place (a VM: its firmware starts again, the guest keeps running); it
	// must not block.
	OnReboot(fn func(id string))
}

// The sentinel errors of package guest, for the Manager's callers (web/api).
var (
	ErrUnavailable = guest.ErrUnavailable
	ErrNotFound    = guest.ErrNotFound
	ErrRunning     = guest.ErrRunning
	ErrNotRunning  = guest.ErrNotRunning
	ErrBusy        = guest.ErrBusy
	ErrInvalid     = guest.ErrInvalid
	ErrBootDrive   = guest.ErrBootDrive
)

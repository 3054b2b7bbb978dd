package containerd

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"hearth/vmm/guest"
	"hearth/vmm/kata"
)

// Runtime names accepted by --runtime.
const (
	RuntimeAuto = "auto"
	RuntimeRunc = "io.containerd.runc.v2"
	RuntimeKata = kata.RuntimeType
)

// A Driver is a containerd runtime guests can run under. Each driver lives
// in its own file (runtime_runc.go, runtime_kata.go).
type Driver interface {
	// Name is the containerd runtime type, e.g. io.containerd.runc.v2.
	Name() string
	// Probe says why the runtime cannot run guests on this host; nil when it can.
	Probe() error
	// SpecOpts are the runtime's own additions to a guest's OCI spec,
	// applied last.
	SpecOpts(g guest.Spec) []oci.SpecOpts
	// SharesHostKernel reports whether guests run on the host's kernel
	// (runc): each then gets a user namespace, a root Hearth mounts
	// idmapped, device nodes and a cgroup owned by guest root. Where a VM
	// is the boundary (Kata) the runtime mounts the root in the VM.
	SharesHostKernel() bool
	// TaskOptions are the runtime's options of a guest's task; stateDir is
	// where the instance keeps its runtime's state (DATA/run/runc), so that
	// no two Hearths on a host share it.
	TaskOptions(stateDir string) []client.NewTaskOpts
}

// drivers lists the drivers by runtime name.
var drivers = map[string]func() Driver{
	RuntimeRunc: func() Driver { return runcDriver{} },
	RuntimeKata: func() Driver { return newKataDriver() },
}

var (
	probeOnce   sync.Once
	probeErrors map[string]error
)

// ProbeDrivers probes every driver once per process and reports, by name,
// why each cannot run here (nil = usable).
func ProbeDrivers() map[string]error {
	probeOnce.Do(func() {
		probeErrors = make(map[string]error, len(drivers))
		for name, driver := range drivers {
			probeErrors[name] = driver().Probe()
		}
	})
	return probeErrors
}

// SelectDriver resolves --runtime: auto picks Kata when it can run here,
// else runc; an explicit name must be a known runtime (it is not refused
// when its probe fails, so an operator can force it, but the failure is
// logged).
func SelectDriver(name string, log *slog.Logger) (Driver, error) {
	status := ProbeDrivers()
	if name == "" || name == RuntimeAuto {
		if err := status[RuntimeKata]; err != nil {
			log.Info("runtime chosen", "runtime", RuntimeRunc, "why", "auto; Kata unusable", "err", err)
			return drivers[RuntimeRunc](), nil
		}
		log.Info("runtime chosen", "runtime", RuntimeKata, "why", "auto")
		return drivers[RuntimeKata](), nil
	}
	driver, ok := drivers[name]
	if !ok {
		known := make([]string, 0, len(drivers)+1)
		for n := range drivers {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("runtime %q: not one of auto, %v: %w", name, known, guest.ErrInvalid)
	}
	if err := status[name]; err != nil {
		log.Warn("runtime chosen though its probe failed", "runtime", name, "err", err)
	} else {
		log.Info("runtime chosen", "runtime", name, "why", "requested")
	}
	return driver(), nil
}

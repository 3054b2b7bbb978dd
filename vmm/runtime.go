package vmm

import (
	"fmt"
	"sort"
	"sync"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// Runtime names accepted by --runtime.
const (
	RuntimeAuto = "auto"
	RuntimeRunc = "io.containerd.runc.v2"
	RuntimeKata = "io.containerd.kata.v2"
)

// A Runtime is a containerd runtime guests can run under. Each driver lives
// in its own file (runtime_runc.go, runtime_kata.go).
type Runtime interface {
	// Name is the containerd runtime type, e.g. io.containerd.runc.v2.
	Name() string
	// Probe says why the runtime cannot run guests on this host; nil when it can.
	Probe() error
	// SpecOpts are the runtime's own additions to a guest's OCI spec.
	SpecOpts(g GuestSpec) []oci.SpecOpts
}

// runtimes lists the drivers by name.
var runtimes = map[string]func() Runtime{
	RuntimeRunc: func() Runtime { return runcRuntime{} },
	RuntimeKata: func() Runtime { return newKataRuntime() },
}

var (
	probeOnce   sync.Once
	probeErrors map[string]error
)

// RuntimeStatus probes every runtime once per process and reports, by name,
// why each cannot run here (nil = usable).
func RuntimeStatus() map[string]error {
	probeOnce.Do(func() {
		probeErrors = make(map[string]error, len(runtimes))
		for name, driver := range runtimes {
			probeErrors[name] = driver().Probe()
		}
	})
	return probeErrors
}

// SelectRuntime resolves --runtime: auto picks Kata when it can run here,
// else runc; an explicit name must be a known runtime (it is not refused
// when its probe fails, so an operator can force it, but the failure is
// logged).
func SelectRuntime(name string, logf func(format string, args ...any)) (Runtime, error) {
	status := RuntimeStatus()
	if name == "" || name == RuntimeAuto {
		if err := status[RuntimeKata]; err != nil {
			logf("runtime: %s (auto; Kata unusable: %v)", RuntimeRunc, err)
			return runtimes[RuntimeRunc](), nil
		}
		logf("runtime: %s (auto)", RuntimeKata)
		return runtimes[RuntimeKata](), nil
	}
	driver, ok := runtimes[name]
	if !ok {
		known := make([]string, 0, len(runtimes)+1)
		for n := range runtimes {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("runtime %q: not one of auto, %v: %w", name, known, ErrInvalid)
	}
	if err := status[name]; err != nil {
		logf("runtime: %s (requested; probe failed: %v)", name, err)
	} else {
		logf("runtime: %s (requested)", name)
	}
	return driver(), nil
}

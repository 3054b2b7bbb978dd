package vmm

import (
	"fmt"
	"os/exec"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// runcRuntime runs guests as containers on the host kernel.
type runcRuntime struct{}

func (runcRuntime) Name() string { return RuntimeRunc }

func (runcRuntime) Probe() error {
	for _, bin := range []string{"containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not on PATH", bin)
		}
	}
	return nil
}

func (runcRuntime) SpecOpts(GuestSpec) []oci.SpecOpts { return nil }

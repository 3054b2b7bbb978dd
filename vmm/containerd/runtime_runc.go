package containerd

import (
	"fmt"
	"os/exec"

	"hearth/vmm/guest"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// runcDriver runs guests as containers on the host kernel.
type runcDriver struct{}

func (runcDriver) Name() string { return RuntimeRunc }

func (runcDriver) Probe() error {
	for _, bin := range []string{"containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not on PATH", bin)
		}
	}
	return nil
}

func (runcDriver) SpecOpts(guest.Spec) []oci.SpecOpts { return nil }

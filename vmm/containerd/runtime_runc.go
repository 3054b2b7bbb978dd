package containerd

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	pkgapparmor "github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/vmm/guest"
)

// runcDriver runs guests as unprivileged system containers on the host
// kernel: guest root is an unprivileged host id (the guest's IDMap).
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

func (runcDriver) SharesHostKernel() bool { return true }

// TaskOptions move runc's state from its host-wide default
// (/run/containerd/runc/NAMESPACE) to stateDir/NAMESPACE: the runc shim
// takes the root from its options (containerd's runc Options.Root) and
// records them in the task's bundle, so the shim's own cleanup after a
// crash finds the state there too.
func (runcDriver) TaskOptions(stateDir string) []client.NewTaskOpts {
	return []client.NewTaskOpts{func(_ context.Context, _ *client.Client, ti *client.TaskInfo) error {
		if ti.Options == nil {
			ti.Options = &options.Options{}
		}
		opts, ok := ti.Options.(*options.Options)
		if !ok {
			return fmt.Errorf("runc task options are a %T", ti.Options)
		}
		opts.Root = stateDir
		return nil
	}}
}

// apparmorProfile is the name containerd's default AppArmor profile is
// loaded under for guests.
const apparmorProfile = "hearth-default"

// hostHasAppArmor reports whether the host enforces AppArmor (and can load
// profiles); containerd probes it once.
var hostHasAppArmor = pkgapparmor.HostSupports

// SpecOpts confine the guest: a user namespace mapping its ids to its
// IDMap, containerd's default AppArmor profile where the host has AppArmor,
// and containerd's default seccomp profile, computed from the capabilities
// the spec ends with (it opens mount, unshare, setns and the like only to
// a holder of CAP_SYS_ADMIN, which systemd needs for its own sandboxing).
func (runcDriver) SpecOpts(g guest.Spec) []oci.SpecOpts {
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: g.IDMap.HostID, Size: g.IDMap.Size}}
	opts := []oci.SpecOpts{oci.WithUserNamespace(ids, ids)}
	if hostHasAppArmor() {
		opts = append(opts, apparmor.WithDefaultProfile(apparmorProfile))
	}
	return append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Linux.Seccomp = seccomp.DefaultProfile(s)
		return nil
	})
}

package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"

	"hearth/vmm/guest"
	"hearth/vmm/kata"
)

// Kata annotations that size a guest's VM. Kata honours them only when its
// configuration enables them, which Hearth's drop-in does (see vmm/kata).
const (
	KataVCPUsAnnotation  = kata.VCPUsAnnotation
	KataMemoryAnnotation = kata.MemoryAnnotation // MiB
)

// KataShim is the shim binary containerd runs for io.containerd.kata.v2.
const KataShim = "containerd-shim-kata-v2"

// kataDriver runs each guest as a lightweight VM. The block-device root is
// hot-plugged into the VM as virtio-blk; CPU and memory also size the VM.
type kataDriver struct {
	kvm         string
	lookPath    func(string) (string, error)
	checkConfig func(shim string) error // whether the shim's configuration enables Hearth's annotations
}

func newKataDriver() kataDriver {
	return kataDriver{kvm: "/dev/kvm", lookPath: exec.LookPath, checkConfig: kata.CheckShim}
}

func (kataDriver) Name() string { return RuntimeKata }

// Probe needs /dev/kvm usable (openable read-write, not merely present),
// the shim on PATH and a configuration that lets Hearth size the VM.
func (k kataDriver) Probe() error {
	f, err := os.OpenFile(k.kvm, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("KVM unusable: %w", err)
	}
	f.Close()
	shim, err := k.lookPath(KataShim)
	if err != nil {
		return fmt.Errorf("%s not on PATH", KataShim)
	}
	return k.checkConfig(shim)
}

// SharesHostKernel is false: the VM is the boundary. Guests get the same
// container interface inside it, but no user namespace: Kata's agent does
// not create one for a container (kata-containers/kata-containers issue
// #8170 "support user namespace" is open; the agent patch for it, PR #7514,
// was closed unmerged), and the root is the drive itself, hot-plugged as a
// block device and mounted by the VM's kernel.
func (kataDriver) SharesHostKernel() bool { return false }

// TaskOptions: none; Kata keeps its state per sandbox under its own paths.
func (kataDriver) TaskOptions(string) []client.NewTaskOpts { return nil }

// SpecOpts size the VM by annotations alone. Kata sizes a VM as
// default_vcpus + the container's CPU quota and default_memory + its memory
// limit, so the container-level quota and limit are left out: with them the
// guest would get twice what it asked for.
func (kataDriver) SpecOpts(g guest.Spec) []oci.SpecOpts {
	// Within Kata's limits (vCPUs up to the host's, memory from 256 MiB),
	// which it would otherwise refuse the VM over; not logged yet.
	size, _ := kata.Size(g.SMP, g.Mem, runtime.NumCPU())
	annotations := size.Annotations()
	withoutLimits := func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux != nil && s.Linux.Resources != nil {
			s.Linux.Resources.Memory = nil
			if cpu := s.Linux.Resources.CPU; cpu != nil {
				cpu.Quota, cpu.Period = nil, nil
			}
		}
		return nil
	}
	return []oci.SpecOpts{oci.WithAnnotations(annotations), withoutLimits}
}

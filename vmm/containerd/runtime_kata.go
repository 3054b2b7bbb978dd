package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"hearth/vmm/guest"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Kata annotations that size a guest's VM. Kata honours them only when its
// configuration.toml lists them in enable_annotations; containerd's CRI
// passes them through because Hearth's config sets pod_annotations.
const (
	KataVCPUsAnnotation  = "io.katacontainers.config.hypervisor.default_vcpus"
	KataMemoryAnnotation = "io.katacontainers.config.hypervisor.default_memory" // MiB
)

// KataShim is the shim binary containerd runs for io.containerd.kata.v2.
const KataShim = "containerd-shim-kata-v2"

// kataDriver runs each guest as a lightweight VM. The block-device root is
// hot-plugged into the VM as virtio-blk; CPU and memory also size the VM.
type kataDriver struct {
	kvm      string
	lookPath func(string) (string, error)
}

func newKataDriver() kataDriver { return kataDriver{kvm: "/dev/kvm", lookPath: exec.LookPath} }

func (kataDriver) Name() string { return RuntimeKata }

// Probe needs /dev/kvm usable (openable read-write, not merely present) and
// the shim on PATH.
func (k kataDriver) Probe() error {
	f, err := os.OpenFile(k.kvm, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("KVM unusable: %w", err)
	}
	f.Close()
	if _, err := k.lookPath(KataShim); err != nil {
		return fmt.Errorf("%s not on PATH", KataShim)
	}
	return nil
}

// SpecOpts size the VM by annotations alone. Kata sizes a VM as
// default_vcpus + the container's CPU quota and default_memory + its memory
// limit, so the container-level quota and limit are left out: with them the
// guest would get twice what it asked for.
func (kataDriver) SpecOpts(g guest.Spec) []oci.SpecOpts {
	annotations := map[string]string{KataVCPUsAnnotation: strconv.Itoa(max(g.SMP, 1))}
	if g.Mem > 0 {
		annotations[KataMemoryAnnotation] = strconv.FormatInt(g.Mem, 10)
	}
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

package kata

import (
	"fmt"
	"strconv"
)

// HypervisorAnnotationPrefix starts every annotation that Kata checks
// against enable_annotations (kata-containers src/runtime/virtcontainers/pkg/
// annotations: KataAnnotationHypervisorPrefix).
const HypervisorAnnotationPrefix = "io.katacontainers.config.hypervisor."

// The annotations Hearth sends (same package: DefaultVCPUs, DefaultMemory).
const (
	VCPUsAnnotation  = HypervisorAnnotationPrefix + "default_vcpus"
	MemoryAnnotation = HypervisorAnnotationPrefix + "default_memory" // MiB
)

// Annotations lists every hypervisor annotation Hearth puts in a guest's
// spec: the drop-in enables exactly these and Check requires exactly these.
func Annotations() []string { return []string{VCPUsAnnotation, MemoryAnnotation} }

// MinMemoryMiB is the smallest default_memory Kata accepts from an
// annotation (src/runtime/virtcontainers/hypervisor.go: MinHypervisorMemory;
// src/runtime/pkg/oci/utils.go addHypervisorMemoryOverrides refuses less with
// "Memory specified in annotation … is less than minimum required").
const MinMemoryMiB = 256

// Sizing is a guest VM's size as Kata will apply it.
type Sizing struct {
	VCPUs     int   // default_vcpus
	MemoryMiB int64 // default_memory; 0 keeps the configuration's default_memory
}

// Size turns a guest's smp (vCPUs, already resolved from cpu MHz) and mem
// (MiB, 0 = no limit) into the VM Kata will start on a host with hostCPUs
// CPUs, within the limits Kata enforces on these annotations
// (src/runtime/pkg/oci/utils.go):
//
//   - default_vcpus above the host's CPU count (goruntime.NumCPU in the shim)
//     fails the sandbox ("… specified in annotation default_vcpus is greater
//     than the number of CPUs …"): capped at hostCPUs, as Kata itself caps
//     default_vcpus from its configuration file (pkg/katautils/config.go
//     defaultVCPUs). At least one.
//   - default_memory below MinMemoryMiB fails the sandbox: raised to it.
//
// adjusted says, one line per change, what differs from the request and why.
func Size(smp int, memMiB int64, hostCPUs int) (s Sizing, adjusted []string) {
	s.VCPUs = max(smp, 1)
	if hostCPUs > 0 && s.VCPUs > hostCPUs {
		adjusted = append(adjusted, fmt.Sprintf("smp %d capped at the host's %d CPUs (Kata refuses more)", s.VCPUs, hostCPUs))
		s.VCPUs = hostCPUs
	}
	s.MemoryMiB = memMiB
	if memMiB > 0 && memMiB < MinMemoryMiB {
		adjusted = append(adjusted, fmt.Sprintf("mem %d MiB raised to Kata's minimum of %d MiB", memMiB, MinMemoryMiB))
		s.MemoryMiB = MinMemoryMiB
	}
	return s, adjusted
}

// Annotations are the spec annotations that give the VM this size.
func (s Sizing) Annotations() map[string]string {
	a := map[string]string{VCPUsAnnotation: strconv.Itoa(s.VCPUs)}
	if s.MemoryMiB > 0 {
		a[MemoryAnnotation] = strconv.FormatInt(s.MemoryMiB, 10)
	}
	return a
}

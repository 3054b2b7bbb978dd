package containerd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/vmm/guest"
)

// HostCoreMHz is the host core's clock from /proc/cpuinfo, 2000 where it
// says nothing (some virtual machines and ARM hosts).
func HostCoreMHz() float64 {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 2000
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(key) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && mhz > 0 {
				return mhz
			}
		}
	}
	return 2000
}

// resolveSMP is smp, or where it is 0 the cores cpu MHz need (at least one).
func resolveSMP(cpu, smp int, coreMHz float64) int {
	if smp > 0 {
		return smp
	}
	return max(1, int(math.Ceil(float64(cpu)/coreMHz)))
}

// cfsPeriod is the CFS period quotas are computed against (the kernel default).
const cfsPeriod = 100000 // µs

// cpuResources turns cpu MHz into a CFS quota against the host core's clock,
// capped at smp whole cores, and into shares so that contended guests split
// the host in proportion to their cpu. cpu 0 means no limit.
func cpuResources(cpu, smp int, coreMHz float64) *specs.LinuxCPU {
	if cpu <= 0 {
		return &specs.LinuxCPU{}
	}
	cores := float64(cpu) / coreMHz
	if smp > 0 {
		cores = min(cores, float64(smp))
	}
	period := uint64(cfsPeriod)
	quota := max(int64(cores*cfsPeriod), 1000) // the kernel refuses quotas below 1 ms
	shares := max(uint64(cores*1024), 2)
	return &specs.LinuxCPU{Period: &period, Quota: &quota, Shares: &shares}
}

// guestDevice is a drive as the guest sees it.
type guestDevice struct {
	Path         string // /dev/sdb in the guest
	Major, Minor int64
	ReadOnly     bool
}

// guestSpecOpts builds the OCI spec of a guest: its init with a terminal,
// hostname, network namespace, limits and block devices, plus the runtime's
// own additions.
func guestSpecOpts(g guest.Spec, rt Driver, init string, devices []guestDevice, coreMHz float64) []oci.SpecOpts {
	hostname := g.Hostname
	if hostname == "" {
		hostname = g.ID
	}
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(init),
		oci.WithTTY,
		oci.WithTTYSize(TerminalColumns, TerminalRows),
		oci.WithHostname(hostname),
		oci.WithEnv([]string{"TERM=xterm"}),
		// A server configures its own interfaces (a VLAN has no DHCP); the
		// capability reaches no further than the guest's network namespace.
		// Its poweroff and reboot call reboot(2), which in the guest's PID
		// namespace ends only the guest's init (with SIGINT or SIGHUP).
		oci.WithAddedCapabilities([]string{"CAP_NET_ADMIN", "CAP_SYS_BOOT"}),
		withLimits(cpuResources(g.CPU, g.SMP, coreMHz), g.Mem),
		withBlockDevices(devices),
		withNetworkNamespace(),
	}
	return append(opts, rt.SpecOpts(g)...)
}

// The guest's terminal size: the console's grid (80 × 24; its 25th row is
// Hearth's status line). runc's default is 0 × 0, which full-screen programs
// refuse.
const (
	TerminalColumns = 80
	TerminalRows    = 24
)

// guestPidsLimit caps a guest's tasks, so a fork bomb in one guest cannot
// take every PID of the host (a system with services has a few hundred).
const guestPidsLimit = 4096

func withLimits(cpu *specs.LinuxCPU, memMiB int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.CPU = cpu
		pids := int64(guestPidsLimit)
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
		if memMiB > 0 {
			limit := memMiB << 20
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		}
		return nil
	}
}

// withBlockDevices creates the drives' nodes in the guest and allows them in
// the devices cgroup, read-only ones for reading only.
func withBlockDevices(devices []guestDevice) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		for _, d := range devices {
			mode := os.FileMode(0o660)
			access := "rwm"
			if d.ReadOnly {
				mode, access = 0o440, "r"
			}
			zero := uint32(0)
			major, minor := d.Major, d.Minor
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
				Path: d.Path, Type: "b", Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero,
			})
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: "b", Major: &major, Minor: &minor, Access: access,
			})
		}
		return nil
	}
}

// checkExt4 reads the superblock magic, so a boot drive without a
// filesystem is refused with a readable reason before containerd is asked.
func checkExt4(image string) error {
	f, err := os.Open(image)
	if err != nil {
		return fmt.Errorf("%w: %w", guest.ErrBootDrive, err)
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+0x38); err != nil && err != io.EOF {
		return fmt.Errorf("%w: %w", guest.ErrBootDrive, err)
	}
	if binary.LittleEndian.Uint16(magic[:]) != 0xEF53 {
		return fmt.Errorf("boot drive %s holds no ext4 filesystem: %w", image, guest.ErrBootDrive)
	}
	return nil
}

// guestInit is /sbin/init when the image has one, else /bin/sh. debugfs
// reads the unmounted image in a few milliseconds; without debugfs Hearth
// assumes /sbin/init.
func guestInit(image string) string {
	out, err := exec.Command("debugfs", "-R", "stat /sbin/init", image).CombinedOutput()
	if err == nil && strings.Contains(string(out), "File not found") {
		return "/bin/sh"
	}
	return "/sbin/init"
}

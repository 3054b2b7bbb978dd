package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/internal/testguest"
	"hearth/vmm/guest"
)

func TestContainerdConfig(t *testing.T) {
	cfg := containerdConfig("/data/containerd")
	for _, want := range []string{
		`root = "/data/containerd/root"`,
		`state = "/data/containerd/state"`,
		`address = "/data/containerd/containerd.sock"`,
		`path = "/data/containerd/opt"`,
		`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
  pod_annotations = ["io.katacontainers.*"]`,
		`runtime_type = "io.containerd.runc.v2"`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

func buildSpec(t *testing.T, g guest.Spec, rt Driver, devices []guestDevice) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "hearth")
	var root string
	if rt.SharesHostKernel() {
		root = "/data/run/" + g.ID + "/rootfs"
	}
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: g.ID}, guestSpecOpts(g, rt, "/sbin/init", root, devices, 2000)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKataSpec(t *testing.T) {
	g := guest.Spec{ID: "kata1", Hostname: "vm", CPU: 3000, SMP: 2, Mem: 512, Boot: guest.Disk{Image: "x"}}
	s := buildSpec(t, g, newKataDriver(), nil)
	if s.Annotations[KataVCPUsAnnotation] != "2" || s.Annotations[KataMemoryAnnotation] != "512" {
		t.Errorf("annotations %v", s.Annotations)
	}
	if s.Hostname != "vm" || !s.Process.Terminal || s.Process.Args[0] != "/sbin/init" {
		t.Errorf("hostname %q terminal %v args %v", s.Hostname, s.Process.Terminal, s.Process.Args)
	}
	// Kata adds container limits on top of the annotations: none are set.
	if r := s.Linux.Resources; r.Memory != nil || r.CPU.Quota != nil {
		t.Errorf("Kata spec carries container limits: memory %+v cpu %+v", r.Memory, r.CPU)
	}
	runc := buildSpec(t, g, runcDriver{}, nil)
	if q := *runc.Linux.Resources.CPU.Quota; q != 150000 {
		t.Errorf("quota %d for 3000 MHz on 2000 MHz cores, want 150000", q)
	}
	if l := *runc.Linux.Resources.Memory.Limit; l != 512<<20 {
		t.Errorf("memory limit %d", l)
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_ADMIN") || !slices.Contains(s.Process.Capabilities.Effective, "CAP_NET_ADMIN") ||
		!slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_BOOT") {
		t.Errorf("capabilities %v", s.Process.Capabilities.Effective)
	}
	if p := s.Linux.Resources.Pids; p == nil || p.Limit == nil || *p.Limit != guestPidsLimit {
		t.Errorf("pids limit %+v", p)
	}
	// A new network namespace, made by runc with the guest (no path).
	var netns []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			netns = append(netns, ns)
		}
	}
	if len(netns) != 1 || netns[0].Path != "" {
		t.Errorf("network namespaces %+v, want one new one", netns)
	}
	if len(runc.Annotations) != 0 {
		t.Errorf("runc spec has annotations %v", runc.Annotations)
	}
}

func TestBlockDevicesSpec(t *testing.T) {
	s := buildSpec(t, guest.Spec{ID: "d", Boot: guest.Disk{Image: "x"}}, runcDriver{}, []guestDevice{
		{Path: "/dev/sdb", Type: "b", Major: 7, Minor: 3}, {Path: "/dev/hdc", Type: "b", Major: 7, Minor: 4, ReadOnly: true},
	})
	var rules []string
	for _, r := range s.Linux.Resources.Devices {
		if r.Major != nil && *r.Major == 7 {
			rules = append(rules, r.Access)
		}
	}
	if len(s.Linux.Devices) != 2 || strings.Join(rules, ",") != "rwm,r" {
		t.Errorf("devices %+v rules %v", s.Linux.Devices, rules)
	}
}

func TestCPUResources(t *testing.T) {
	for _, c := range []struct {
		cpu, smp      int
		quota         int64
		shares        uint64
		unconstrained bool
	}{
		{cpu: 1000, smp: 1, quota: 50000, shares: 512},
		{cpu: 6000, smp: 2, quota: 200000, shares: 2048}, // capped at smp cores
		{cpu: 1, smp: 1, quota: 1000, shares: 2},         // the kernel's minimum
		{cpu: 0, unconstrained: true},
	} {
		r := cpuResources(c.cpu, c.smp, 2000)
		if c.unconstrained {
			if r.Quota != nil {
				t.Errorf("cpu 0: quota %d", *r.Quota)
			}
			continue
		}
		if *r.Quota != c.quota || *r.Shares != c.shares || *r.Period != cfsPeriod {
			t.Errorf("cpu %d smp %d: quota %d shares %d", c.cpu, c.smp, *r.Quota, *r.Shares)
		}
	}
	if n := resolveSMP(4100, 0, 2000); n != 3 {
		t.Errorf("smp auto for 4100 MHz: %d", n)
	}
}

func TestKataProbe(t *testing.T) {
	missing := kataDriver{kvm: filepath.Join(t.TempDir(), "kvm"), lookPath: func(string) (string, error) { return "/x", nil }}
	if err := missing.Probe(); err == nil || !strings.Contains(err.Error(), "KVM") {
		t.Errorf("probe without KVM: %v", err)
	}
	noShim := kataDriver{kvm: "/dev/null", lookPath: func(string) (string, error) { return "", os.ErrNotExist }}
	if err := noShim.Probe(); err == nil || !strings.Contains(err.Error(), KataShim) {
		t.Errorf("probe without shim: %v", err)
	}
	refused := errors.New("annotation default_memory is not enabled")
	noAnnotations := kataDriver{kvm: "/dev/null", lookPath: func(string) (string, error) { return "/x", nil },
		checkConfig: func(shim string) error { return fmt.Errorf("%s: %w", shim, refused) }}
	if err := noAnnotations.Probe(); !errors.Is(err, refused) {
		t.Errorf("probe with a configuration refusing the annotations: %v", err)
	}
	ok := kataDriver{kvm: "/dev/null", lookPath: func(string) (string, error) { return "/x", nil },
		checkConfig: func(string) error { return nil }}
	if err := ok.Probe(); err != nil {
		t.Errorf("probe: %v", err)
	}
}

func TestSelectDriver(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	rt, err := SelectDriver(RuntimeAuto, log)
	if err != nil {
		t.Fatal(err)
	}
	want := RuntimeRunc
	if ProbeDrivers()[RuntimeKata] == nil {
		want = RuntimeKata
	}
	if rt.Name() != want || logged.Len() == 0 {
		t.Errorf("auto chose %s (want %s), logged %q", rt.Name(), want, logged.String())
	}
	if _, err := SelectDriver("io.containerd.nope", log); !errors.Is(err, guest.ErrInvalid) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown runtime: %v", err)
	}
}

// TestKataGuest boots a guest as a Kata VM where the host can.
func TestKataGuest(t *testing.T) {
	if err := ProbeDrivers()[RuntimeKata]; err != nil {
		t.Skipf("Kata cannot run here: %v", err)
	}
	h, _ := openTestHost(t, WithRuntime(RuntimeKata))
	img := testguest.Image(t, 64<<20)
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, SMP: 1, Mem: 256, Boot: guest.Disk{Image: img}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	shellMarker(t, c, 1)
}

// TestLoopCountersSinceAttach: a reused loop device keeps the kernel's
// counts of earlier users; a guest sees only its own I/O.
func TestLoopCountersSinceAttach(t *testing.T) {
	needContainerd(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	l, hold, err := attachLoop(img, loopConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.detach()
	defer hold.Close()
	if _, err := hold.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	c, err := l.counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadBytes == 0 || c.ReadBytes > 1<<20 {
		t.Errorf("read %d bytes since attach", c.ReadBytes)
	}
}

// Console has exactly the methods of console.Stream.
var _ interface {
	Subscribe() (backlog []byte, updates <-chan []byte, cancel func())
	Write(p []byte) (int, error)
} = (*guest.Console)(nil)

// TestReadOnlyDrivesSpec: under Kata (no host mount) a read-only drive is a
// device node the guest may only read and a root mounted read-only without
// journal replay; the host's own mounts of a read-only root (runc) are the
// same options, and the live root's overlay follows no redirect or
// metacopy a tenant's lower layer might carry.
func TestReadOnlyDrivesSpec(t *testing.T) {
	s := buildSpec(t, guest.Spec{ID: "k", Boot: guest.Disk{Image: "x", ReadOnly: true}}, newKataDriver(), []guestDevice{
		{Path: "/dev/sdb", Type: "b", Major: 7, Minor: 3}, {Path: "/dev/hdc", Type: "b", Major: 7, Minor: 4, ReadOnly: true},
	})
	modes := map[string]os.FileMode{}
	for _, d := range s.Linux.Devices {
		modes[d.Path] = *d.FileMode
	}
	if modes["/dev/sdb"] != 0o660 || modes["/dev/hdc"] != 0o440 {
		t.Errorf("device modes %v, want sdb 0660 and hdc 0440", modes)
	}
	access := map[int64]string{}
	for _, r := range s.Linux.Resources.Devices {
		if r.Major != nil && *r.Major == 7 {
			access[*r.Minor] = r.Access
		}
	}
	if access[3] != "rwm" || access[4] != "r" {
		t.Errorf("devices cgroup %v, want the read-only drive readable only", access)
	}
	for fs, want := range map[string]string{"ext4": "ro,noload", "xfs": "ro,norecovery", "btrfs": "ro,rescue=nologreplay"} {
		m := runtimeRootMounts(fs, "/dev/loop9", true)
		if got := strings.Join(m[0].Options, ","); len(m) != 1 || got != want || m[0].Type != fs {
			t.Errorf("%s read-only root %+v, want options %s", fs, m, want)
		}
	}
	if m := runtimeRootMounts("ext4", "/dev/loop9", false); m[0].Options[0] != "rw" {
		t.Errorf("writable root %+v", m)
	}
	opts := map[string]string{}
	for _, kv := range overlayOptions("/l", "/u", "/w") {
		opts[kv[0]] = kv[1]
	}
	if opts["lowerdir"] != "/l" || opts["upperdir"] != "/u" || opts["workdir"] != "/w" ||
		opts["redirect_dir"] != "nofollow" || opts["metacopy"] != "off" {
		t.Errorf("overlay options %v", opts)
	}
}

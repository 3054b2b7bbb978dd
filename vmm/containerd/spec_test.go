package containerd

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hearth/vmm/guest"
)

func mountAt(s *specs.Spec, dst string) (specs.Mount, bool) {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func hasNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
}

// systemContainer checks what every guest's init gets, whatever the runtime.
func systemContainer(t *testing.T, s *specs.Spec) {
	t.Helper()
	if !slices.Contains(s.Process.Env, "container=hearth") {
		t.Errorf("env %v", s.Process.Env)
	}
	if s.Process.NoNewPrivileges {
		t.Error("noNewPrivileges: setuid programs would not work")
	}
	for dst, typ := range map[string]string{"/run": "tmpfs", "/run/lock": "tmpfs", "/sys/fs/cgroup": "cgroup"} {
		m, ok := mountAt(s, dst)
		if !ok || m.Type != typ {
			t.Errorf("mount at %s: %+v", dst, m)
		}
	}
	if m, _ := mountAt(s, "/sys/fs/cgroup"); !slices.Contains(m.Options, "rw") {
		t.Errorf("cgroup mount %v is not writable", m.Options)
	}
	runs := 0
	for _, m := range s.Mounts {
		if m.Destination == "/run" {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("%d mounts at /run", runs)
	}
	if !hasNamespace(s, specs.CgroupNamespace) {
		t.Error("no cgroup namespace")
	}
	want := guestCapabilities()
	if len(want) != 36 {
		t.Errorf("%d capabilities, want 41 less 5", len(want))
	}
	for _, c := range want {
		if droppedCapabilities[c] {
			t.Errorf("dropped capability %s granted", c)
		}
	}
	if got := s.Process.Capabilities; !slices.Equal(got.Bounding, want) || !slices.Equal(got.Effective, want) || !slices.Equal(got.Permitted, want) {
		t.Errorf("capabilities %+v", got)
	}
	for _, r := range s.Process.Rlimits {
		if r.Type == "RLIMIT_NOFILE" && (r.Hard > ownNofileLimit() || r.Soft > r.Hard) {
			t.Errorf("RLIMIT_NOFILE %d/%d above Hearth's own %d", r.Soft, r.Hard, ownNofileLimit())
		}
	}
}

func TestRuncSpec(t *testing.T) {
	g := guest.Spec{ID: "r1", Boot: guest.Disk{Image: "x"}, IDSlot: 1, IDMap: guest.IDMap{HostID: 1065536, Size: guest.IDRange}}
	devices := append([]guestDevice{{Path: "/dev/sdb", Type: "b", Major: 7, Minor: 3, ReadOnly: true, Node: "/data/run/r1/dev/sdb"}},
		guestCharDevices...)
	devices[1].Node, devices[2].Node = "/data/run/r1/dev/net-tun", "/data/run/r1/dev/fuse"
	s := buildSpec(t, g, runcDriver{}, devices)
	systemContainer(t, s)
	if !hasNamespace(s, specs.UserNamespace) {
		t.Fatal("no user namespace: guest root would be host root")
	}
	wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1065536, Size: 65536}}
	if !slices.Equal(s.Linux.UIDMappings, wantMap) || !slices.Equal(s.Linux.GIDMappings, wantMap) {
		t.Errorf("id mappings %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if s.Root.Path != "/data/run/r1/rootfs" {
		t.Errorf("root %q", s.Root.Path)
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatal("no seccomp filter")
	}
	// Computed after the capabilities: CAP_SYS_ADMIN opens mount and unshare
	// (systemd's sandboxing); keyctl stays refused.
	allowed := map[string]bool{}
	for _, rule := range s.Linux.Seccomp.Syscalls {
		if rule.Action == specs.ActAllow && len(rule.Args) == 0 {
			for _, n := range rule.Names {
				allowed[n] = true
			}
		}
	}
	for _, sc := range []string{"mount", "unshare", "setns", "sethostname"} {
		if !allowed[sc] {
			t.Errorf("seccomp refuses %s", sc)
		}
	}
	if allowed["kexec_load"] || allowed["init_module"] {
		t.Error("seccomp allows loading kernels or modules")
	}
	// Drives and tun/fuse are Hearth's own nodes, bind-mounted; no host node.
	for _, d := range devices {
		m, ok := mountAt(s, d.Path)
		if !ok || m.Source != d.Node || m.Type != "bind" || slices.Contains(m.Options, "ro") != d.ReadOnly {
			t.Errorf("device %s mounted as %+v", d.Path, m)
		}
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("host device nodes %+v", s.Linux.Devices)
	}
	var rules []string
	for _, r := range s.Linux.Resources.Devices {
		if r.Allow && r.Major != nil {
			rules = append(rules, r.Type+":"+r.Access)
		}
	}
	if strings.Join(rules, ",") != "b:r,c:rwm,c:rwm" {
		t.Errorf("device rules %v", rules)
	}
}

func TestKataSpecSystemContainer(t *testing.T) {
	g := guest.Spec{ID: "k1", SMP: 1, Mem: 512, Boot: guest.Disk{Image: "x"}}
	s := buildSpec(t, g, newKataDriver(), []guestDevice{{Path: "/dev/sdb", Type: "b", Major: 7, Minor: 3}})
	systemContainer(t, s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if hasNamespace(s, specs.UserNamespace) || s.Linux.UIDMappings != nil || strings.Contains(string(b), "uidMappings") {
		t.Errorf("Kata spec has a user namespace: %s", b)
	}
	if s.Annotations[KataMemoryAnnotation] != "512" {
		t.Errorf("annotations %v", s.Annotations)
	}
	// The VM creates the drive's node from the spec.
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/sdb" {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	if s.Root.Path != "rootfs" {
		t.Errorf("root %q, want the bundle's (the shim mounts the drive)", s.Root.Path)
	}
}

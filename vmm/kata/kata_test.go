package kata

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// release lays out Kata's static release under root as its tarball does:
// the fixture as configuration-qemu.toml and configuration.toml a relative
// symlink to it. It returns the path of configuration.toml.
func release(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "opt/kata/share/defaults/kata-containers")
	fixture, err := os.ReadFile("testdata/configuration-qemu.toml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "configuration-qemu.toml"), fixture)
	if err := os.Symlink("configuration-qemu.toml", filepath.Join(dir, "configuration.toml")); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "configuration.toml")
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func installDropIn(t *testing.T, configDir string) {
	t.Helper()
	write(t, filepath.Join(configDir, DropInDir, DropInName), DropIn("qemu"))
}

func TestCheckRefusesTheReleaseDefault(t *testing.T) {
	conf := release(t, t.TempDir())
	err := Check(conf)
	if !errors.Is(err, ErrAnnotationsDisabled) {
		t.Fatalf("Check of the release default = %v, want ErrAnnotationsDisabled", err)
	}
	resolved := filepath.Join(filepath.Dir(conf), "configuration-qemu.toml")
	for _, want := range []string{"default_vcpus", "default_memory", "hypervisor.qemu.enable_annotations", resolved,
		filepath.Join(filepath.Dir(conf), DropInDir, DropInName)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestCheckAcceptsTheReleaseWithHearthsDropIn(t *testing.T) {
	conf := release(t, t.TempDir())
	installDropIn(t, filepath.Dir(conf))
	if err := Check(conf); err != nil {
		t.Fatalf("Check with Hearth's drop-in: %v", err)
	}
}

// Kata looks for config.d beside the file the symlink names, not beside
// the symlink.
func TestCheckReadsDropInsBesideTheResolvedFile(t *testing.T) {
	root := t.TempDir()
	target := release(t, root)
	link := filepath.Join(root, "etc/kata-containers/configuration.toml")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	installDropIn(t, filepath.Dir(link))
	if err := Check(link); !errors.Is(err, ErrAnnotationsDisabled) {
		t.Errorf("drop-in beside the symlink was applied: %v", err)
	}
	installDropIn(t, filepath.Dir(target))
	if err := Check(link); err != nil {
		t.Errorf("drop-in beside the resolved file: %v", err)
	}
}

func TestCheckTakesTheFirstConfigurationThatExists(t *testing.T) {
	root := t.TempDir()
	defaults := release(t, root)
	installDropIn(t, filepath.Dir(defaults))
	missing := filepath.Join(root, "etc/kata-containers/configuration.toml")
	if err := Check(missing, defaults); err != nil {
		t.Errorf("with no /etc file: %v", err)
	}

	// An operator's own configuration in /etc hides the defaults and
	// their drop-ins.
	fixture, _ := os.ReadFile("testdata/configuration-qemu.toml")
	write(t, missing, fixture)
	err := Check(missing, defaults)
	if !errors.Is(err, ErrAnnotationsDisabled) || !strings.Contains(err.Error(), missing) {
		t.Errorf("with an /etc file: %v, want it named as lacking the annotations", err)
	}
	installDropIn(t, filepath.Dir(missing))
	if err := Check(missing, defaults); err != nil {
		t.Errorf("with an /etc file and the drop-in beside it: %v", err)
	}
}

func TestCheckFollowsDropInOrder(t *testing.T) {
	conf := release(t, t.TempDir())
	dir := filepath.Join(filepath.Dir(conf), DropInDir)
	installDropIn(t, filepath.Dir(conf))
	write(t, filepath.Join(dir, "10-early.toml"), []byte("[hypervisor.qemu]\nenable_annotations = []\n"))
	write(t, filepath.Join(dir, "60-debug.toml"), []byte("[hypervisor.qemu]\nenable_debug = true\n[runtime]\nenable_debug = true\n"))
	if err := Check(conf); err != nil {
		t.Errorf("an earlier list and a later drop-in without the key: %v", err)
	}
	late := filepath.Join(dir, "90-late.toml")
	write(t, late, []byte("[hypervisor.qemu]\nenable_annotations = [\"kernel_params\", \"default_vcpus\"]\n"))
	err := Check(conf)
	if !errors.Is(err, ErrAnnotationsDisabled) || !strings.Contains(err.Error(), late) ||
		!strings.Contains(err.Error(), "annotation default_memory is") || strings.Contains(err.Error(), "default_vcpus") {
		t.Errorf("a later drop-in replacing the list: %v, want default_memory alone named, in %s", err, late)
	}
}

// Kata matches each entry as an unanchored regular expression; Check must
// agree with it both ways.
func TestCheckMatchesAsKataDoes(t *testing.T) {
	for list, ok := range map[string]bool{
		`[".*"]`:                             true,
		`["default_.*"]`:                     true,
		`["memory", "vcpus"]`:                true, // substrings match, as in Kata
		`["^default_vcpus$", "^memory$"]`:    false,
		`["default_vcpus", "[unclosed"]`:     false, // an entry that does not compile matches nothing
		`["io.katacontainers.config.hyper"]`: false, // the prefix is not part of the name
	} {
		conf := release(t, t.TempDir())
		write(t, filepath.Join(filepath.Dir(conf), DropInDir, "x.toml"), []byte("[hypervisor.qemu]\nenable_annotations = "+list+"\n"))
		if err := Check(conf); (err == nil) != ok {
			t.Errorf("enable_annotations = %s: Check = %v, want accepted=%v", list, err, ok)
		}
	}
}

func TestCheckRefusesADropInForAnotherHypervisor(t *testing.T) {
	conf := release(t, t.TempDir())
	wrong := filepath.Join(filepath.Dir(conf), DropInDir, DropInName)
	write(t, wrong, DropIn("clh"))
	err := Check(conf)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "[hypervisor.clh]") || !strings.Contains(err.Error(), wrong) {
		t.Errorf("Check = %v, want the clh drop-in named", err)
	}
}

func TestCheckReportsWhatKataCannotLoad(t *testing.T) {
	root := t.TempDir()
	none := []string{filepath.Join(root, "etc.toml"), filepath.Join(root, "defaults.toml")}
	if err := Check(none...); !errors.Is(err, ErrNoConfig) || !strings.Contains(err.Error(), none[1]) {
		t.Errorf("no configuration: %v", err)
	}

	broken := filepath.Join(root, "broken.toml")
	write(t, broken, []byte("[hypervisor.qemu\n"))
	if err := Check(broken); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), broken) {
		t.Errorf("broken TOML: %v", err)
	}

	empty := filepath.Join(root, "empty.toml")
	write(t, empty, []byte("[runtime]\n"))
	if err := Check(empty); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no hypervisor table: %v", err)
	}

	// Kata reads every entry of config.d; a directory there fails it.
	conf := release(t, t.TempDir())
	installDropIn(t, filepath.Dir(conf))
	if err := os.Mkdir(filepath.Join(filepath.Dir(conf), DropInDir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Check(conf); !errors.Is(err, ErrBadConfig) {
		t.Errorf("directory in config.d: %v", err)
	}
}

func TestDropInEnablesExactlyHearthsAnnotations(t *testing.T) {
	var f struct {
		Hypervisor map[string]map[string]any `toml:"hypervisor"`
	}
	if err := toml.Unmarshal(DropIn("qemu"), &f); err != nil {
		t.Fatalf("drop-in is not TOML: %v\n%s", err, DropIn("qemu"))
	}
	if len(f.Hypervisor) != 1 || len(f.Hypervisor["qemu"]) != 1 {
		t.Fatalf("drop-in sets %v, want hypervisor.qemu.enable_annotations alone", f.Hypervisor)
	}
	var list []string
	for _, v := range f.Hypervisor["qemu"]["enable_annotations"].([]any) {
		list = append(list, v.(string))
	}
	short := func(name string) string { return strings.TrimPrefix(name, HypervisorAnnotationPrefix) }
	for _, name := range Annotations() {
		if !enables(list, short(name)) {
			t.Errorf("drop-in %v does not enable %s", list, name)
		}
	}
	// Neighbours of Hearth's names, and the release's own list, stay refused.
	for _, other := range []string{"default_maxvcpus", "default_max_vcpus", "default_memoryx", "xdefault_vcpus",
		"kernel_params", "enable_iommu", "virtio_fs_extra_args", "path", "kernel"} {
		if enables(list, other) {
			t.Errorf("drop-in %v also enables %s", list, other)
		}
	}
}

func TestSizeFollowsKatasLimits(t *testing.T) {
	for _, c := range []struct {
		smp, hostCPUs  int
		mem            int64
		vcpus          int
		memMiB         int64
		adjusted       int
		annotationsLen int
	}{
		{smp: 2, mem: 512, hostCPUs: 4, vcpus: 2, memMiB: 512, annotationsLen: 2},
		{smp: 0, mem: 0, hostCPUs: 4, vcpus: 1, memMiB: 0, annotationsLen: 1},              // no limit: the configuration's default_memory
		{smp: 4, mem: MinMemoryMiB, hostCPUs: 4, vcpus: 4, memMiB: 256, annotationsLen: 2}, // both limits themselves pass
		{smp: 8, mem: 1024, hostCPUs: 2, vcpus: 2, memMiB: 1024, adjusted: 1, annotationsLen: 2},
		{smp: 1, mem: 128, hostCPUs: 2, vcpus: 1, memMiB: MinMemoryMiB, adjusted: 1, annotationsLen: 2},
		{smp: 3, mem: 1, hostCPUs: 1, vcpus: 1, memMiB: MinMemoryMiB, adjusted: 2, annotationsLen: 2},
	} {
		s, adjusted := Size(c.smp, c.mem, c.hostCPUs)
		if s.VCPUs != c.vcpus || s.MemoryMiB != c.memMiB || len(adjusted) != c.adjusted {
			t.Errorf("Size(%d, %d, %d) = %+v %q, want %d vCPUs %d MiB and %d adjustments",
				c.smp, c.mem, c.hostCPUs, s, adjusted, c.vcpus, c.memMiB, c.adjusted)
		}
		a := s.Annotations()
		if len(a) != c.annotationsLen {
			t.Errorf("Size(%d, %d, %d) annotations %v", c.smp, c.mem, c.hostCPUs, a)
		}
		for key, value := range a {
			if !slices.Contains(Annotations(), key) {
				t.Errorf("annotation %s is not in Annotations(), so the drop-in does not enable it", key)
			}
			if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(value) {
				t.Errorf("annotation %s = %q: Kata parses a positive number", key, value)
			}
		}
	}
}

func TestConfigPathsFollowTheShimsBuild(t *testing.T) {
	root := t.TempDir()
	shim := filepath.Join(root, "opt/kata/bin/containerd-shim-kata-v2")
	write(t, shim, nil)
	link := filepath.Join(root, "usr/local/bin/containerd-shim-kata-v2")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shim, link); err != nil {
		t.Fatal(err)
	}
	want := []string{SysConfigPath, filepath.Join(root, "opt/kata/share/defaults/kata-containers/configuration.toml"), DefaultConfigPath}
	if got := ConfigPaths(link); !slices.Equal(got, want) {
		t.Errorf("ConfigPaths(%s) = %v, want %v", link, got, want)
	}
	if got := ConfigPaths("/usr/bin/containerd-shim-kata-v2"); !slices.Equal(got, []string{SysConfigPath, DefaultConfigPath}) {
		t.Errorf("a distribution's shim: %v", got)
	}
}

// The table itself is parsed and compared with the appliance's containerd
// configuration in deploy's tests.
func TestContainerdCRIRuntimePassesHearthsAnnotations(t *testing.T) {
	table := ContainerdCRIRuntime("kata")
	if !strings.HasPrefix(table, `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]`) {
		t.Errorf("table for handler kata:\n%s", table)
	}
	for _, name := range Annotations() {
		if ok, _ := filepath.Match(PodAnnotations, name); !ok {
			t.Errorf("pod_annotations %s does not pass %s", PodAnnotations, name)
		}
	}
}

// TestInstalledKataAcceptsHearthsAnnotations checks this host's real Kata
// installation, where there is one that can run.
func TestInstalledKataAcceptsHearthsAnnotations(t *testing.T) {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		t.Skipf("no usable KVM, so no Kata to check here: %v", err)
	} else {
		f.Close()
	}
	shim, err := exec.LookPath("containerd-shim-kata-v2")
	if err != nil {
		t.Skip("containerd-shim-kata-v2 is not on PATH: Kata is not installed here")
	}
	if err := CheckShim(shim); err != nil {
		t.Errorf("the installed Kata (%s, configurations %v): %v", shim, ConfigPaths(shim), err)
	}
}

package deploy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"hearth/vmm/kata"
)

func TestShippedKataDropInIsHearths(t *testing.T) {
	shipped, err := os.ReadFile("kata-hearth.toml")
	if err != nil {
		t.Fatal(err)
	}
	if want := kata.DropIn("qemu"); !bytes.Equal(shipped, want) {
		t.Errorf("deploy/kata-hearth.toml is not vmm/kata.DropIn(\"qemu\"); write it again from there:\n%s", want)
	}
}

// TestProvisionedKataAcceptsHearthsAnnotations lays out Kata's static
// release as its tarball unpacks (the configuration fixture of vmm/kata),
// checks that Kata as released refuses Hearth's annotations, then installs
// the shipped drop-in where provision.sh does and checks again.
func TestProvisionedKataAcceptsHearthsAnnotations(t *testing.T) {
	const defaults = "/opt/kata/share/defaults/kata-containers/configuration.toml"
	script, err := os.ReadFile("provision.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`kata_conf=$(readlink -f ` + defaults + `)`,
		`install -D -m 0644 "$DEPLOY/kata-hearth.toml" "$(dirname "$kata_conf")/` + kata.DropInDir + `/` + kata.DropInName + `"`,
	} {
		if !bytes.Contains(script, []byte(want)) {
			t.Fatalf("provision.sh no longer installs the drop-in as this test does; it lacks\n%s", want)
		}
	}

	root := t.TempDir()
	dir := filepath.Join(root, filepath.Dir(defaults))
	fixture, err := os.ReadFile("../vmm/kata/testdata/configuration-qemu.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, kata.DropInDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "configuration-qemu.toml"), fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("configuration-qemu.toml", filepath.Join(root, defaults)); err != nil {
		t.Fatal(err)
	}
	paths := []string{filepath.Join(root, kata.SysConfigPath), filepath.Join(root, defaults)}
	if err := kata.Check(paths...); !errors.Is(err, kata.ErrAnnotationsDisabled) {
		t.Fatalf("Kata as released: Check = %v, want its annotations refused", err)
	}

	dropIn, err := os.ReadFile("kata-hearth.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, kata.DropInDir, kata.DropInName), dropIn, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kata.Check(paths...); err != nil {
		t.Errorf("Kata as provisioned: %v", err)
	}
}

// criRuntimes is the part of a containerd configuration (version 2) that
// registers CRI runtimes.
type criRuntimes struct {
	Plugins map[string]struct {
		Containerd struct {
			Runtimes map[string]struct {
				RuntimeType    string   `toml:"runtime_type"`
				PodAnnotations []string `toml:"pod_annotations"`
			} `toml:"runtimes"`
		} `toml:"containerd"`
	} `toml:"plugins"`
}

func kataRuntimeOf(t *testing.T, config string) (runtimeType string, podAnnotations []string) {
	t.Helper()
	var c criRuntimes
	if err := toml.Unmarshal([]byte(config), &c); err != nil {
		t.Fatal(err)
	}
	rt := c.Plugins["io.containerd.grpc.v1.cri"].Containerd.Runtimes["kata"]
	return rt.RuntimeType, rt.PodAnnotations
}

func TestContainerdConfigPassesKataAnnotations(t *testing.T) {
	shipped, err := os.ReadFile("containerd-config.toml")
	if err != nil {
		t.Fatal(err)
	}
	gotType, gotAnnotations := kataRuntimeOf(t, string(shipped))
	wantType, wantAnnotations := kataRuntimeOf(t, kata.ContainerdCRIRuntime("kata"))
	if gotType != wantType || !slices.Equal(gotAnnotations, wantAnnotations) {
		t.Errorf("containerd-config.toml registers kata as %s with pod_annotations %v, want %s with %v",
			gotType, gotAnnotations, wantType, wantAnnotations)
	}
	if !strings.Contains(string(shipped), "version = 2") {
		t.Errorf("containerd-config.toml is not a version 2 configuration, which the table's plugin name needs")
	}
}

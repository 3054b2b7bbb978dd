package kata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Where Kata's Go runtime looks for its configuration when the shim is given
// no path (src/runtime/pkg/katautils/config.go GetDefaultConfigFilePaths:
// DEFAULTSYSCONFRUNTIMECONFIGURATION, then defaultRuntimeConfiguration,
// both set by src/runtime/Makefile as SYSCONFIG and CONFIG_PATH). The
// second depends on the build's PREFIX: /usr for distribution packages,
// /opt/kata for the static release the appliance installs
// (tools/packaging/static-build/shim-v2/build.sh), whose configuration.toml
// is a symlink to configuration-qemu.toml.
const (
	SysConfigPath     = "/etc/kata-containers/configuration.toml"
	DefaultConfigPath = "/usr/share/defaults/kata-containers/configuration.toml"
	defaultsUnder     = "share/defaults/kata-containers/configuration.toml"
)

// DropInDir is the directory of drop-ins beside the configuration file Kata
// resolved, symlinks followed (katautils/config.go decodeDropIns:
// filepath.Dir(resolved) + "config.d"). Kata reads every file in it in name
// order, and for a [hypervisor.NAME] or [agent.NAME] key the last file that
// sets it wins. Drop-ins are in Kata's Go runtime since 2022
// (kata-containers PR #4109), so in every 3.x release.
const DropInDir = "config.d"

// DropInName is the file name of Hearth's drop-in in DropInDir: early in the
// order, so an operator's own drop-in can still override it.
const DropInName = "50-hearth.toml"

// Errors of Check, for errors.Is.
var (
	ErrNoConfig            = errors.New("no Kata configuration file")
	ErrBadConfig           = errors.New("Kata would not load its configuration")
	ErrAnnotationsDisabled = errors.New("Kata refuses Hearth's annotations")
)

// DropIn is Hearth's drop-in for a Kata configuration whose hypervisor table
// is [hypervisor.NAME] (qemu for the release's default configuration). It
// sets enable_annotations to exactly Annotations. Kata takes the entries as
// unanchored regular expressions of the name after the hypervisor prefix
// (src/runtime/pkg/oci/utils.go checkAnnotationNameIsValid, regexpContains),
// so each is anchored here to enable that one name. The list replaces the
// configuration's own (["enable_iommu", "virtio_fs_extra_args",
// "kernel_params"] in the release, src/runtime/Makefile DEFENABLEANNOTATIONS):
// Hearth sends none of those, and a pod author who could set kernel_params
// could change the guest kernel's command line.
func DropIn(hypervisor string) []byte {
	var b bytes.Buffer
	b.WriteString("# Hearth's Kata drop-in (vmm/kata.DropIn; the appliance installs it as\n")
	fmt.Fprintf(&b, "# %s/%s beside Kata's configuration.toml). Kata only honours the\n", DropInDir, DropInName)
	b.WriteString("# annotations its configuration enables; Hearth sizes each guest's VM with these.\n")
	fmt.Fprintf(&b, "[hypervisor.%s]\nenable_annotations = [", hypervisor)
	for i, name := range Annotations() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote("^" + regexp.QuoteMeta(strings.TrimPrefix(name, HypervisorAnnotationPrefix)) + "$"))
	}
	b.WriteString("]\n")
	return b.Bytes()
}

// ConfigPaths lists, in the order Kata tries them, the configuration files
// of the shim binary at shim (as found on PATH): /etc first, then the
// defaults of the build the binary comes from (PREFIX/bin/shim →
// PREFIX/share/defaults/…), then the distribution default.
func ConfigPaths(shim string) []string {
	paths := []string{SysConfigPath}
	if real, err := filepath.EvalSymlinks(shim); err == nil {
		if p := filepath.Join(filepath.Dir(filepath.Dir(real)), defaultsUnder); p != DefaultConfigPath {
			paths = append(paths, p)
		}
	}
	return append(paths, DefaultConfigPath)
}

// CheckShim is Check of the configuration the shim at shim would load.
func CheckShim(shim string) error { return Check(ConfigPaths(shim)...) }

// tomlFile is the part of a Kata configuration file (or drop-in) Check
// reads; a nil EnableAnnotations means the file does not set the key.
type tomlFile struct {
	Hypervisor map[string]struct {
		EnableAnnotations *[]string `toml:"enable_annotations"`
	} `toml:"hypervisor"`
}

// Check reads the Kata configuration as the shim would — the first of paths
// that exists (symlinks followed), then the drop-ins beside it — and says
// what keeps Hearth's guests from starting: no configuration, one Kata
// would not load, a drop-in for another hypervisor, or annotations of
// Annotations that the effective enable_annotations does not enable. nil
// when Kata will accept every annotation Hearth sends.
func Check(paths ...string) error {
	main, err := firstExisting(paths)
	if err != nil {
		return err
	}
	conf, err := readTOML(main)
	if err != nil {
		return err
	}
	if len(conf.Hypervisor) != 1 {
		return fmt.Errorf("kata: %s has %d [hypervisor.*] tables, Kata needs one: %w", main, len(conf.Hypervisor), ErrBadConfig)
	}
	var hypervisor string
	for name := range conf.Hypervisor {
		hypervisor = name
	}
	var enabled []string
	if list := conf.Hypervisor[hypervisor].EnableAnnotations; list != nil {
		enabled = *list
	}
	source := main

	dir := filepath.Join(filepath.Dir(main), DropInDir)
	dropIns, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kata: %w: %w", ErrBadConfig, err)
	}
	for _, entry := range dropIns {
		path := filepath.Join(dir, entry.Name())
		dropIn, err := readTOML(path)
		if err != nil {
			return err
		}
		for name, table := range dropIn.Hypervisor {
			if name != hypervisor {
				// Kata would keep both tables and start the VM from
				// whichever its map yields last (config.go
				// updateRuntimeConfigHypervisor).
				return fmt.Errorf("kata: drop-in %s configures [hypervisor.%s] but %s runs [hypervisor.%s]: %w",
					path, name, main, hypervisor, ErrBadConfig)
			}
			if table.EnableAnnotations != nil {
				enabled, source = *table.EnableAnnotations, path
			}
		}
	}

	var missing []string
	for _, name := range Annotations() {
		short := strings.TrimPrefix(name, HypervisorAnnotationPrefix)
		if !enables(enabled, short) {
			missing = append(missing, short)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("kata: annotation %s is not in hypervisor.%s.enable_annotations of %s: add it, or install Hearth's drop-in as %s: %w",
			missing[0], hypervisor, source, filepath.Join(dir, DropInName), ErrAnnotationsDisabled)
	default:
		return fmt.Errorf("kata: annotations %s are not in hypervisor.%s.enable_annotations of %s: add them, or install Hearth's drop-in as %s: %w",
			strings.Join(missing, ", "), hypervisor, source, filepath.Join(dir, DropInName), ErrAnnotationsDisabled)
	}
}

// firstExisting is the configuration file Kata would load from paths,
// symlinks resolved (katautils getDefaultConfigFile, ResolvePath).
func firstExisting(paths []string) (string, error) {
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return real, nil
		}
	}
	return "", fmt.Errorf("kata: %w: tried %s", ErrNoConfig, strings.Join(paths, ", "))
}

func readTOML(path string) (tomlFile, error) {
	var f tomlFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("kata: %w: %w", ErrBadConfig, err)
	}
	if err := toml.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("kata: %s: %w: %w", path, ErrBadConfig, err)
	}
	return f, nil
}

// enables reports whether Kata lets the annotation with this short name
// through: one entry, taken as an unanchored regular expression, matches
// (src/runtime/pkg/oci/utils.go regexpContains; an entry that does not
// compile matches nothing).
func enables(list []string, short string) bool {
	for _, expr := range list {
		if ok, _ := regexp.MatchString(expr, short); ok {
			return true
		}
	}
	return false
}

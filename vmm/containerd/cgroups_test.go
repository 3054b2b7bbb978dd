package containerd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeCgroups makes a cgroup tree of files in a temporary directory.
func fakeCgroups(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupLayouts(t *testing.T) {
	delegate := filepath.Join(t.TempDir(), "delegate")
	os.WriteFile(delegate, []byte("cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.oom.group\nmemory.reclaim\n"), 0o644)
	for _, c := range []struct {
		name  string
		files []string
		want  []string // chowned, relative to the fake root
	}{
		{name: "v2", files: []string{"cgroup.controllers", "cgroup.procs"},
			want: []string{"hearth/g1", "hearth/g1/cgroup.procs", "hearth/g1/cgroup.threads", "hearth/g1/cgroup.subtree_control",
				"hearth/g1/memory.oom.group", "hearth/g1/memory.reclaim"}},
		{name: "hybrid", files: []string{"systemd/cgroup.procs", "unified/cgroup.controllers", "memory/cgroup.procs"},
			want: []string{"systemd/hearth/g1", "systemd/hearth/g1/cgroup.procs", "systemd/hearth/g1/tasks",
				"systemd/hearth/g1/cgroup.clone_children", "systemd/hearth/g1/notify_on_release",
				"unified/hearth/g1", "unified/hearth/g1/cgroup.procs", "unified/hearth/g1/cgroup.threads",
				"unified/hearth/g1/cgroup.subtree_control", "unified/hearth/g1/memory.oom.group", "unified/hearth/g1/memory.reclaim"}},
		{name: "v1", files: []string{"systemd/cgroup.procs", "memory/cgroup.procs"},
			want: []string{"systemd/hearth/g1", "systemd/hearth/g1/cgroup.procs", "systemd/hearth/g1/tasks",
				"systemd/hearth/g1/cgroup.clone_children", "systemd/hearth/g1/notify_on_release"}},
		{name: "none", files: []string{"memory/cgroup.procs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := fakeCgroups(t, c.files...)
			l := detectCgroups(root, delegate)
			if l.name != c.name {
				t.Fatalf("layout %s, want %s", l.name, c.name)
			}
			var chowned []string
			l.chown = func(path string, uid, gid int) error {
				if uid != 1065536 || gid != 1065536 {
					t.Errorf("%s given to %d:%d", path, uid, gid)
				}
				rel, _ := filepath.Rel(root, path)
				chowned = append(chowned, rel)
				return nil
			}
			if err := l.prepare("/hearth/g1", 1065536); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(chowned, c.want) {
				t.Errorf("chowned\n%s\nwant\n%s", strings.Join(chowned, "\n"), strings.Join(c.want, "\n"))
			}
			for _, dir := range c.want {
				if filepath.Base(dir) == "g1" {
					if info, err := os.Stat(filepath.Join(root, dir)); err != nil || !info.IsDir() {
						t.Errorf("%s not created: %v", dir, err)
					}
				}
			}
		})
	}
}

// A kernel without /sys/kernel/cgroup/delegate (before 4.15) delegates
// the classic three files.
func TestCgroupDelegateFallback(t *testing.T) {
	l := detectCgroups(fakeCgroups(t, "cgroup.controllers"), filepath.Join(t.TempDir(), "absent"))
	if got := l.hierarchies[0].files; !slices.Equal(got, v2DelegateFallback) {
		t.Errorf("delegated %v", got)
	}
}

// A file a hierarchy lacks is skipped, not an error.
func TestCgroupPrepareSkipsMissingFiles(t *testing.T) {
	root := fakeCgroups(t, "cgroup.controllers")
	l := detectCgroups(root, filepath.Join(t.TempDir(), "absent"))
	l.chown = os.Chown // the files do not exist in the fake tree
	if err := l.prepare("/ns/g", uint32(os.Getuid())); err != nil {
		t.Errorf("prepare: %v", err)
	}
}

func TestRemoveCgroupTree(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "g", "init.scope"), 0o755)
	os.MkdirAll(filepath.Join(root, "g", "system.slice", "x.service"), 0o755)
	removeCgroupTree(filepath.Join(root, "g"))
	if _, err := os.Stat(filepath.Join(root, "g")); !os.IsNotExist(err) {
		t.Errorf("left: %v", err)
	}
}

package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A guest's init (systemd above all) must be able to write its own cgroup:
// it creates init.scope and its units' cgroups below it. runc (1.1, with
// containerd's cgroupfs driver) creates the guest's cgroup owned by host
// root, which guest root cannot write, so Hearth creates the cgroup first
// and hands it to guest root; runc then keeps the owner. What is handed
// over is what systemd's container interface asks a manager to delegate,
// and no more: the directory and the files that move processes and enable
// controllers. The limits Hearth sets (cpu, memory, pids files) stay host
// root's, so a guest cannot raise them.
//
// Layouts: pure cgroup v2 (the appliance): one directory, with the files the
// kernel lists as delegatable in /sys/kernel/cgroup/delegate. Hybrid (v1
// controllers plus cgroup2 at /sys/fs/cgroup/unified, as on the build
// machines): the same in the unified hierarchy, plus the name=systemd v1
// hierarchy's directory, as LXC does.

// cgroupHierarchy is one hierarchy whose guest directory guest root gets.
type cgroupHierarchy struct {
	root  string   // the hierarchy's mount point
	files []string // files in the guest's directory guest root gets too
}

// cgroupLayout is the host's cgroup layout, detected once at Open.
type cgroupLayout struct {
	name        string // "v2", "hybrid", "v1" or "none", for the log
	hierarchies []cgroupHierarchy
	chown       func(path string, uid, gid int) error // os.Chown; tests record calls
}

// v1DelegateFiles are the files of a v1 hierarchy's directory that moving
// processes and creating children need.
var v1DelegateFiles = []string{"cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release"}

// v2DelegateFallback is what kernels before /sys/kernel/cgroup/delegate
// (4.15) delegate.
var v2DelegateFallback = []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}

// detectCgroups reads the layout under root (/sys/fs/cgroup) and the
// kernel's delegatable files from delegateFile (/sys/kernel/cgroup/delegate).
func detectCgroups(root, delegateFile string) cgroupLayout {
	delegate := v2DelegateFallback
	if b, err := os.ReadFile(delegateFile); err == nil {
		delegate = strings.Fields(string(b))
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	l := cgroupLayout{chown: os.Chown}
	switch {
	case exists("cgroup.controllers"):
		l.name = "v2"
		l.hierarchies = []cgroupHierarchy{{root: root, files: delegate}}
	case exists("systemd/cgroup.procs"):
		l.name = "v1"
		l.hierarchies = []cgroupHierarchy{{root: filepath.Join(root, "systemd"), files: v1DelegateFiles}}
		if exists("unified/cgroup.controllers") {
			l.name = "hybrid"
			l.hierarchies = append(l.hierarchies, cgroupHierarchy{root: filepath.Join(root, "unified"), files: delegate})
		}
	default:
		l.name = "none"
	}
	return l
}

// prepare creates the guest's cgroup (path is its cgroupsPath, e.g.
// /hearth/ID) in each hierarchy and gives it to owner, the host id of guest
// root. A file the hierarchy lacks is skipped.
func (l cgroupLayout) prepare(path string, owner uint32) error {
	for _, h := range l.hierarchies {
		dir := filepath.Join(h.root, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("guest cgroup: %w", err)
		}
		for _, p := range append([]string{""}, h.files...) {
			err := l.chown(filepath.Join(dir, p), int(owner), int(owner))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("guest cgroup: give it to guest root: %w", err)
			}
		}
	}
	return nil
}

// removeCgroups removes what is left of the guest's cgroup (normally runc
// removed it) in every hierarchy: the directory and whatever the guest's
// own manager created below it, deepest first. After the last guest
// (namespaceToo) the namespace's directory goes too.
func removeCgroups(namespace, id string, namespaceToo bool) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		removeCgroupTree(filepath.Join(root, namespace, id))
		if namespaceToo {
			os.Remove(filepath.Join(root, namespace))
		}
	}
}

// removeCgroupTree rmdirs dir and its sub-cgroups, deepest first (a cgroup
// directory holds only kernel files, which go with it).
func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

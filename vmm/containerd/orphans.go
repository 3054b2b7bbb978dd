package containerd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A task whose creation was cut short (Hearth, or the daemon, killed in the
// middle of NewTask) can leave things containerd itself no longer knows: a
// shim still running with the guest's processes, the root mounted in the
// bundle, the bundle directory (which makes the next NewTask of the id fail
// with "file exists"). reapOrphan removes them.

// runcDirName is the directory under DATA/run where runc keeps the
// instance's containers' state (runc's --root is DATA/run/runc/NAMESPACE),
// instead of runc's host-wide default /run/containerd/runc, which every
// Hearth on the host would share and reap. A state directory outliving its
// shim makes the next start of the id fail with "container with given ID
// already exists".
const runcDirName = "runc"

// runcState is the directory runc's root is the namespace's folder of.
func (h *Host) runcState() string { return filepath.Join(h.runDir, runcDirName) }

// runcRoot is the --root of runc for this Host's guests.
func (h *Host) runcRoot() string { return filepath.Join(h.runcState(), h.namespace) }

// taskBundle is the task's bundle directory in the private daemon's state.
func (h *Host) taskBundle(id string) string {
	if h.daemon == nil {
		return ""
	}
	return filepath.Join(h.daemon.dir, "state", "io.containerd.runtime.v2.task", h.namespace, id)
}

// shims lists, by guest id, the shims of this daemon and namespace.
func (h *Host) shims() map[string][]int {
	out := map[string][]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		flag := func(name string) string {
			for i, a := range args[:len(args)-1] {
				if a == name {
					return args[i+1]
				}
			}
			return ""
		}
		if flag("-namespace") != h.namespace || flag("-address") != h.socket || flag("-id") == "" {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			out[flag("-id")] = append(out[flag("-id")], pid)
		}
	}
	return out
}

// reapOrphan ends the guest's processes (found by its cgroup) and its shim,
// unmounts its root from the bundle and removes the bundle.
func (h *Host) reapOrphan(id string, shimPids []int) {
	h.log.Warn("removing a task containerd does not know", "server", id, "shims", shimPids)
	files, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", h.namespace, id, "cgroup.procs"))
	files = append(files, filepath.Join("/sys/fs/cgroup", h.namespace, id, "cgroup.procs"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, pid := range shimPids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	root := h.runcRoot()
	if _, err := os.Stat(filepath.Join(root, id)); err == nil {
		if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
			h.log.Warn("runc delete of a stale container", "server", id, "err", err, "output", string(bytes.TrimSpace(out)))
			os.RemoveAll(filepath.Join(root, id))
		}
	}
	if bundle := h.taskBundle(id); bundle != "" {
		if err := unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			h.log.Warn("unmounting a stale root", "server", id, "err", err)
		}
		os.RemoveAll(bundle)
	}
}

// reapOrphans runs reapOrphan for every id with a shim, a bundle or runc
// state but no task containerd knows.
func (h *Host) reapOrphans() {
	known := func(id string) bool {
		g, ok := h.guests[id]
		return ok && g.task != nil
	}
	shims := h.shims()
	for id, pids := range shims {
		if !known(id) {
			h.reapOrphan(id, pids)
		}
	}
	reaped := map[string]bool{}
	for id := range shims {
		reaped[id] = true
	}
	var dirs []os.DirEntry
	if h.daemon != nil {
		dirs, _ = os.ReadDir(filepath.Dir(h.taskBundle("x")))
	}
	states, _ := os.ReadDir(h.runcRoot())
	for _, d := range append(dirs, states...) {
		if id := d.Name(); d.IsDir() && !reaped[id] && !known(id) {
			reaped[id] = true
			h.reapOrphan(id, nil)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hearth/internal/ehkeys"
	"hearth/internal/testguest"
)

// infos returns the objects of a JSON */info answer with values as strings.
func (c *client) infos(t testing.TB, path string) []map[string]string {
	t.Helper()
	jc := *c
	jc.json = true
	r := jc.get(path).must(t, 200)
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatalf("%s: %v in %q", path, err, r.body)
	}
	out := make([]map[string]string, len(raw))
	for i, o := range raw {
		out[i] = map[string]string{}
		for k, v := range o {
			if f, ok := v.(float64); ok {
				out[i][k] = fmt.Sprintf("%.0f", f)
			} else {
				out[i][k] = fmt.Sprint(v)
			}
		}
	}
	return out
}

// snapshot is what Hearth's rows say, keyed by UUID.
type snapshot struct {
	servers map[string]map[string]string
	drives  map[string]map[string]string
}

// checkConsistent compares Hearth's rows with the host: every drive row
// has its image file of the right size and no file lacks a row; the
// running containerd tasks are exactly the active and paused servers; loop
// devices, mounts, namespaces and veths belong to running servers only.
func (h *hearth) checkConsistent(t testing.TB) snapshot {
	t.Helper()
	admin := h.client(h.admin)
	s := snapshot{servers: map[string]map[string]string{}, drives: map[string]map[string]string{}}
	for _, p := range admin.infos(t, "/servers/info") {
		s.servers[p["server"]] = p
	}
	for _, p := range admin.infos(t, "/drives/info") {
		s.drives[p["drive"]] = p
	}
	files, _ := os.ReadDir(filepath.Join(h.data, "drives"))
	seen := map[string]bool{}
	for _, f := range files {
		id, ok := strings.CutSuffix(f.Name(), ".img")
		d, known := s.drives[id]
		if !ok || !known {
			t.Errorf("DATA/drives/%s has no drive row", f.Name())
			continue
		}
		seen[id] = true
		if info, err := f.Info(); err != nil || fmt.Sprint(info.Size()) != d["size"] {
			t.Errorf("drive %s: file size %v, row size %s", id, info.Size(), d["size"])
		}
	}
	for id := range s.drives {
		if !seen[id] {
			t.Errorf("drive row %s has no image file", id)
		}
	}

	running := map[string]bool{}
	nics := 0
	for id, p := range s.servers {
		switch p["status"] {
		case "active", "paused":
			running[id] = true
			if p["nic:0:model"] != "" {
				nics++
			}
		case "stopped":
		case "dead": // could not be started (spec §5): says why
			if p["error"] == "" {
				t.Errorf("dead server %s gives no error", id)
			}
		default:
			t.Errorf("server %s is %s (%s)", id, p["status"], p["error"])
		}
	}
	tasks := map[string]bool{}
	for _, task := range h.tasks() {
		id, status, _ := strings.Cut(task, " ")
		tasks[id] = true
		if !running[id] {
			t.Errorf("containerd task %s (%s) is not an active server (%v)", id, status, s.servers[id]["status"])
		} else if want := map[string]string{"active": "RUNNING", "paused": "PAUSED"}[s.servers[id]["status"]]; status != want {
			t.Errorf("server %s is %s but its task is %s", id, s.servers[id]["status"], status)
		}
	}
	for id := range running {
		if !tasks[id] {
			t.Errorf("active server %s has no containerd task", id)
		}
	}
	for _, id := range h.containers() {
		if !running[id] {
			t.Errorf("containerd container %s is not an active server (%v)", id, s.servers[id]["status"])
		}
	}
	// Loop devices back exactly the drives of running servers.
	attached := map[string]bool{}
	for id := range running {
		for k, v := range s.servers[id] {
			if ehkeys.IsDeviceKey(k) {
				attached[filepath.Join(h.data, "drives", v+".img")] = true
			}
		}
	}
	backed := map[string]int{}
	for _, l := range h.loops() {
		backed[strings.Fields(l)[1]]++
	}
	for file, n := range backed {
		if !attached[file] {
			t.Errorf("loop device on %s, which no running server uses", file)
		} else if n > 1 {
			t.Errorf("%d loop devices on %s", n, file)
		}
	}
	for file := range attached {
		if backed[file] == 0 {
			t.Errorf("running server's drive %s has no loop device", file)
		}
	}
	for _, p := range h.processes() {
		if f := strings.Fields(p); len(f) > 1 && strings.Contains(f[1], "containerd-shim") {
			id := ""
			for i := range f[:len(f)-1] {
				if f[i] == "-id" {
					id = f[i+1]
				}
			}
			if !running[id] {
				t.Errorf("shim for %s runs, which is no running server (%v)", id, s.servers[id]["status"])
			}
		}
	}
	for _, m := range h.mounts() {
		if !slices.ContainsFunc(keys(running), func(id string) bool { return strings.Contains(m, id) }) {
			t.Errorf("mount %s belongs to no running server", m)
		}
	}
	ns, _ := os.ReadDir(filepath.Join(h.data, "run", "netns"))
	for _, e := range ns {
		if !running[e.Name()] {
			t.Errorf("network namespace %s belongs to no running server", e.Name())
		}
	}
	if v := h.veths(); len(v) != nics {
		t.Errorf("%d veths on %s for %d running servers with a NIC: %v", len(v), h.bridge, nics, v)
	}
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// guestImage builds the busybox test guest with extra inittab lines (e.g.
// "::once:/bin/yes") as a raw ext4 image file.
func guestImage(t testing.TB, inittab ...string) string {
	t.Helper()
	root := testguest.Tree(t)
	f, err := os.OpenFile(filepath.Join(root, "etc", "inittab"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range inittab {
		fmt.Fprintln(f, line)
	}
	f.Close()
	img := filepath.Join(t.TempDir(), "guest.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", root, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	return img
}

// importImage makes a library drive from an image file with the CLI.
func (h *hearth) importImage(file, size string) string {
	h.t.Helper()
	return h.importNamed("img-"+randomHex(3), file, size)
}

// importNamed imports file as the library image name with the CLI and
// returns its drive UUID.
func (h *hearth) importNamed(name, file, size string) string {
	h.t.Helper()
	out, err := exec.Command(binary, "image", "import", "--name", name, "--size", size, "--data", h.data, file).CombinedOutput()
	if err != nil {
		h.t.Fatalf("hearth image import: %v %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	id, ok := strings.CutPrefix(lines[len(lines)-1], "drive ")
	if !ok {
		h.t.Fatalf("image import printed %q", out)
	}
	return id
}

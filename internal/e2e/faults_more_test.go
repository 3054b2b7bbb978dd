package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tickerInit makes a guest print "tick-N" on its console every second.
const tickerInit = "::once:/bin/sh -c 'i=0; while :; do i=$((i+1)); echo tick-$i; sleep 1; done'"

// lastTick is the highest tick-N in a console output.
func lastTick(out string) int {
	n := 0
	for _, m := range regexp.MustCompile(`tick-(\d+)`).FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n = max(n, v)
	}
	return n
}

// waitTickPast waits until the server's console shows a tick after n.
func (c *client) waitTickPast(t testing.TB, id string, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r := c.get("/servers/" + id + "/console"); r.status == 200 {
			if got := lastTick(r.body); got > n {
				return got
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("console of %s shows no tick after %d within %s", id, n, within)
	return 0
}

// TestContainerdKilled SIGKILLs the private containerd under running
// guests: Hearth restarts it, the guests keep running, and their consoles
// are still served with new output.
func TestContainerdKilled(t *testing.T) {
	h := startHearth(t)
	lib := h.importImage(guestImage(t, tickerInit), "32M")
	c := h.addUser("ctd-"+randomHex(2), false)
	var ids []string
	for i := range 3 {
		id := c.post("/servers/create", guestWithNIC(fmt.Sprintf("tick%d", i), c.driveFrom(t, lib, "32M"))).must(t, 200).props()["server"]
		ids = append(ids, id)
	}
	for _, id := range ids {
		c.waitTickPast(t, id, 1, 30*time.Second)
	}
	pidFile := filepath.Join(h.data, "containerd", "containerd.pid")
	old, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, _ := os.ReadFile(pidFile)
		if !bytes.Equal(now, old) && len(h.tasks()) == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not restarted with the guests' tasks within 30 s; log:\n%s", h.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("containerd back with the guests' tasks %s after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	for _, id := range ids {
		p := c.get("/servers/"+id+"/info").must(t, 200).props()
		if p["status"] != "active" {
			t.Errorf("server %s is %s after containerd restarted", id, p["status"])
		}
		seen := lastTick(c.get("/servers/"+id+"/console").must(t, 200).body)
		c.waitTickPast(t, id, seen+1, 20*time.Second)
	}
	// Lifecycle still works through the new daemon.
	c.post("/servers/"+ids[0]+"/stop", "").must(t, 204)
	c.waitStatus(t, ids[0], "stopped", 30*time.Second)
	h.checkConsistent(t)
}

// smallFilesystem makes an ext4 filesystem of size bytes in a file,
// loop-mounts it, and returns the mount point; unmounted and detached
// when the test ends.
func smallFilesystem(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	if err := syscall.Mount(loop, mnt, "ext4", 0, ""); err != nil {
		exec.Command("losetup", "-d", loop).Run()
		t.Fatalf("mount %s: %v", loop, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", loop, err, out)
		}
	})
	return mnt
}

// TestDiskFull runs Hearth on a small filesystem, fills it through drive
// writes, and checks that a full disk answers 507 full, that no
// acknowledged write is damaged, and that rows and files still agree.
func TestDiskFull(t *testing.T) {
	mnt := smallFilesystem(t, 160<<20)
	h := startHearth(t, withData(filepath.Join(mnt, "data")))
	c := h.addUser("full-"+randomHex(2), false)
	// Leave about 48 MiB free: 16 MiB for an image source, and a few 8 MiB
	// writes fill the rest.
	var st syscall.Statfs_t
	syscall.Statfs(mnt, &st)
	if free := int64(st.Bavail) * st.Bsize; free > 48<<20 {
		if out, err := exec.Command("fallocate", "-l", strconv.FormatInt(free-48<<20, 10), filepath.Join(mnt, "filler")).CombinedOutput(); err != nil {
			t.Fatalf("fallocate: %v %s", err, out)
		}
	}
	// An image source with real data, and a target to copy it to once full.
	imgSrc := c.post("/drives/create", "name src\nsize 16M").must(t, 200).props()["drive"]
	srcData := make([]byte, 16<<20)
	rand.Read(srcData)
	c.do("POST", "/drives/"+imgSrc+"/write/0", bytes.NewReader(srcData)).must(t, 204)
	imgTarget := c.post("/drives/create", "name target\nsize 16M").must(t, 200).props()["drive"]
	const chunk = 8 << 20
	type written struct {
		drive string
		off   int64
		data  []byte
	}
	var acked []written
	var full reply
	var drives []string
	for i := 0; i < 20 && full.status == 0; i++ {
		d := c.post("/drives/create", "name fill\nsize 32M").must(t, 200).props()["drive"]
		drives = append(drives, d)
		for off := int64(0); off < 32<<20; off += chunk {
			data := make([]byte, chunk)
			rand.Read(data)
			r := c.do("POST", fmt.Sprintf("/drives/%s/write/%d", d, off), bytes.NewReader(data))
			if r.status == 204 {
				acked = append(acked, written{d, off, data})
				continue
			}
			full = r
			break
		}
	}
	t.Logf("disk full after %d acknowledged 8 MiB writes: %d %s %q", len(acked), full.status, full.word, strings.TrimSpace(full.body))
	if full.status != 507 || full.word != "full" {
		t.Errorf("write on a full disk: %d %s %q, want 507 full", full.status, full.word, full.body)
	}
	// A new drive on a full disk.
	r := c.post("/drives/create", "name more\nsize 64M")
	t.Logf("drive create on a full disk: %d %s %q", r.status, r.word, strings.TrimSpace(r.body))
	if r.status != 507 || r.word != "full" {
		t.Errorf("drive create on a full disk: %d %s %q, want 507 full", r.status, r.word, r.body)
	}
	// Imaging onto a full disk fails visibly and leaves the target usable.
	r = c.post("/drives/"+imgTarget+"/image/"+imgSrc, "")
	t.Logf("imaging on a full disk: %d %s %q", r.status, r.word, strings.TrimSpace(r.body))
	if r.status == 200 {
		c.waitImaged(t, imgTarget)
		p := c.get("/drives/"+imgTarget+"/info").must(t, 200).props()
		t.Logf("imaging on a full disk ended with %v", p)
		got := c.get("/drives/"+imgTarget+"/read/0/4M").must(t, 200).body
		if got == string(srcData[:4<<20]) && p["status"] == "active" {
			t.Log("imaging fit into the space left")
		}
		c.post("/drives/"+imgTarget+"/set", "name target2").must(t, 200)
	} else if r.status != 507 {
		t.Errorf("imaging on a full disk: %d %s %q, want 200 (then a failed copy) or 507", r.status, r.word, r.body)
	}
	// Acknowledged data is intact, and rows match files.
	for _, w := range acked {
		got := c.get(fmt.Sprintf("/drives/%s/read/%d/%d", w.drive, w.off, 4<<20)).must(t, 200).body
		if got != string(w.data[:4<<20]) {
			t.Errorf("acknowledged write at %s+%d damaged", w.drive, w.off)
		}
	}
	h.checkConsistent(t)
	// Hearth restarts on the full disk, and space freed is usable again.
	h.restart(false)
	os.Remove(filepath.Join(mnt, "filler"))
	for _, d := range drives[len(drives)-1:] {
		data := make([]byte, chunk)
		rand.Read(data)
		c.do("POST", "/drives/"+d+"/write/0", bytes.NewReader(data)).must(t, 204)
	}
	c.post("/drives/create", "name more\nsize 64M").must(t, 200)
	h.checkConsistent(t)
}

// percentile of durations (p in 0..100).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

// infoLatencies times n sequential GET /servers/S/info.
func (c *client) infoLatencies(t testing.TB, id string, n int) []time.Duration {
	var lat []time.Duration
	for range n {
		r := c.get("/servers/" + id + "/info")
		if r.status != 200 {
			t.Fatalf("info during the test: %d %q", r.status, r.body)
		}
		lat = append(lat, r.took)
	}
	return lat
}

// noisyBound is the generous bound on the p99 of a quiet server's info
// while another guest misbehaves: the API must stay usable, not fast.
const noisyBound = time.Second

// TestNoisyGuest starts a guest that floods its console or forks without
// limit, and checks that the API's info latency (p99) and a quiet guest's
// progress stay within generous bounds; the figures go to the log and
// test-artifacts/noisy.md.
func TestNoisyGuest(t *testing.T) {
	table := "| noise | info p50 before | p99 before | p50 during | p99 during | Hearth RSS |\n|---|---|---|---|---|---|\n"
	defer func() { writeArtifact(t, "noisy.md", table) }()
	for _, noise := range []struct{ name, init string }{
		{"console-flood", "::once:/bin/sh -c 'yes hearth-flood'"},
		{"forks", "::once:/bin/sh -c 'while :; do sleep 600 & done'"},
	} {
		t.Run(noise.name, func(t *testing.T) {
			h := startHearth(t)
			c := h.addUser("noisy-"+randomHex(2), false)
			quietLib := h.importImage(guestImage(t, tickerInit), "32M")
			noisyLib := h.importImage(guestImage(t, noise.init), "32M")
			quiet := c.post("/servers/create", guestWithNIC("quiet", c.driveFrom(t, quietLib, "32M"))).must(t, 200).props()["server"]
			c.waitTickPast(t, quiet, 1, 30*time.Second)
			before := c.infoLatencies(t, quiet, 300)
			rssBefore := h.rssMiB(t)

			noisy := c.post("/servers/create", guestConfig("noisy", c.driveFrom(t, noisyLib, "32M"))).must(t, 200).props()["server"]
			time.Sleep(3 * time.Second)
			tick := lastTick(c.get("/servers/"+quiet+"/console").must(t, 200).body)
			during := c.infoLatencies(t, quiet, 300)
			rssDuring := h.rssMiB(t)
			c.waitTickPast(t, quiet, tick+2, 15*time.Second)
			if p := c.get("/servers/"+noisy+"/info").must(t, 200).props(); p["status"] != "active" {
				t.Logf("noisy guest ended: %v", p)
			}
			if noise.name == "console-flood" {
				c.waitConsole(t, noisy, "hearth-flood\r\nhearth-flood", 5*time.Second)
			}
			if noise.name == "forks" {
				// Every guest gets the same limit; the quiet one is sure to be running.
				if max := h.guestPidsMax(t, quiet); max == "max" || max == "" {
					t.Errorf("guest's cgroup pids.max is %q: a fork bomb can take every PID of the host", max)
				}
			}
			line := fmt.Sprintf("| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.0f → %.0f MiB |", noise.name,
				ms(percentile(before, 50)), ms(percentile(before, 99)), ms(percentile(during, 50)), ms(percentile(during, 99)), rssBefore, rssDuring)
			t.Log(line)
			table += line + "\n"
			if rssDuring > rssBefore+256 {
				t.Errorf("Hearth grew from %.0f to %.0f MiB while a guest misbehaved", rssBefore, rssDuring)
			}
			if p99 := percentile(during, 99); p99 > noisyBound {
				t.Errorf("info p99 %s while a guest misbehaves (before: %s), bound %s", p99, percentile(before, 99), noisyBound)
			}
			c.post("/servers/"+noisy+"/destroy", "").must(t, 204)
			h.checkConsistent(t)
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// guestPidsMax reads pids.max of the cgroup of a server's task.
func (h *hearth) guestPidsMax(t testing.TB, id string) string {
	out, err := h.ctr("tasks", "ls")
	if err != nil {
		t.Fatalf("ctr tasks ls: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != id {
			continue
		}
		cg, err := os.ReadFile("/proc/" + f[1] + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		// cgroup v1: "N:pids:/PATH" under /sys/fs/cgroup/pids; v2: "0::/PATH".
		file := ""
		for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			parts := strings.SplitN(l, ":", 3)
			switch {
			case len(parts) < 3:
			case slices.Contains(strings.Split(parts[1], ","), "pids"):
				file = filepath.Join("/sys/fs/cgroup/pids", parts[2], "pids.max")
			case parts[1] == "" && file == "":
				file = filepath.Join("/sys/fs/cgroup", parts[2], "pids.max")
			}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Logf("pids.max: %v", err)
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no task for %s", id)
	return ""
}

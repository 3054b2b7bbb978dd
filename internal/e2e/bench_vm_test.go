package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/internal/rfbtest"
	"hearth/vmm/qemu"
)

// The VM benchmarks compare a `type vm` server under `hearth serve` with
// the same QEMU command (qemu.Command's argv: same machine, disk, memory,
// one vCPU, TCG here) run by the benchmark itself as an operator would by
// hand. Neither has a NIC: an e1000's iPXE ROM adds about a second of
// firmware to both and nothing to what is compared. The server gets the
// whole host (cpu wholeHostMHz): QEMU by hand has no CPU limit either.

// vmBenchServer is the benchmarks' server: the test disk, no NIC.
func vmBenchServer(name, password, drive string) string {
	return fmt.Sprintf("name %s\ntype vm\ncpu %d\nsmp 1\nmem 128\npersistent true\npassword %s\nide:0:0 %s\nboot ide:0:0\n",
		name, wholeHostMHz, password, drive)
}

// vmBenchSetup starts Hearth with a user who uploaded disk: the user's
// client, a VNC password and the drive.
func vmBenchSetup(b *testing.B, disk string) (h *hearth, c *client, password, drive string) {
	b.Helper()
	h = startHearth(b)
	c = h.addUser("bench-"+randomHex(2), false)
	return h, c, h.secret("b" + randomHex(3)), c.uploadImage(b, "e2e-disk", disk)
}

// handBenchVM is the same VM for QEMU by hand, on a private copy of the disk.
func handBenchVM(b *testing.B, disk string) qemu.VM {
	b.Helper()
	dir := shortDir(b)
	image := filepath.Join(dir, "disk.img")
	data, err := os.ReadFile(disk)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(image, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return qemu.VM{Name: "bench", SMP: 1, Mem: 128, RunDir: dir, Drives: []qemu.Drive{{Key: "ide:0:0", Image: image}}}
}

// firstFrame reads the screen until a pixel is lit.
func firstFrame(b *testing.B, s *rfbtest.Viewer) {
	b.Helper()
	s.SetReadDeadline(time.Now().Add(time.Minute))
	if err := s.Wait((*rfbtest.Viewer).Lit); err != nil {
		b.Fatalf("no lit frame: %v", err)
	}
}

// BenchmarkVMFirstFrame: create+start through the API → the first frame
// with a lit pixel read over Hearth's VNC endpoint (what a user opening the
// console sees first: SeaBIOS's banner), against QEMU by hand: exec → the
// same on its display socket. Medians of at least 5 rounds, interleaved,
// after one untimed round of each.
func BenchmarkVMFirstFrame(b *testing.B) {
	disk := vmImage(b, "disk.img")
	_, c, password, src := vmBenchSetup(b, disk)

	viaHearth := func() time.Duration {
		drive := c.driveFrom(b, src, "32M")
		start := time.Now()
		id := c.post("/servers/create", vmBenchServer("frame", password, drive)).must(b, 200).props()["server"]
		var info map[string]string
		for deadline := start.Add(time.Minute); info["vnc:port"] == ""; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("server %s shows no vnc:port within a minute: %v", id, info)
			}
			info = c.get("/servers/"+id+"/info").must(b, 200).props()
		}
		firstFrame(b, rfbtest.MustDial(b, "tcp", info["vnc:ip"]+":"+info["vnc:port"], password))
		took := time.Since(start)
		b.StopTimer()
		c.post("/servers/"+id+"/destroy", "").must(b, 204)
		c.post("/drives/"+drive+"/destroy", "").must(b, 204)
		b.StartTimer()
		return took
	}
	byHand := func() time.Duration {
		vm := handBenchVM(b, disk)
		start := time.Now()
		q := runQEMU(b, vm)
		firstFrame(b, q.screen(b))
		took := time.Since(start)
		q.kill()
		return took
	}
	viaHearth()
	byHand()
	var hearthSecs, handSecs []float64
	b.ResetTimer()
	for range max(b.N, 5) {
		hearthSecs = append(hearthSecs, viaHearth().Seconds())
		handSecs = append(handSecs, byHand().Seconds())
	}
	b.StopTimer()
	b.Logf("hearth %.2f s, by hand %.2f s per round", hearthSecs, handSecs)
	b.ReportMetric(median(hearthSecs)*1e9, "ns/op")
	b.ReportMetric(median(hearthSecs), "hearth-s")
	b.ReportMetric(median(handSecs), "hand-s")
}

// BenchmarkVMBootBanner: start of a stopped server → the test disk's banner
// on its serial console (GET /servers/S/console), against QEMU by hand:
// exec → the banner on its stdout. Hearth's overhead is the ratio x_hand
// (target ≤ 1.1). Medians of at least 5 interleaved rounds after one
// untimed round of each.
func BenchmarkVMBootBanner(b *testing.B) {
	disk := vmImage(b, "disk.img")
	_, c, password, drive := vmBenchSetup(b, disk)
	id := c.post("/servers/create/stopped", vmBenchServer("banner", password, drive)).must(b, 200).props()["server"]
	const banner = "hearth-e2e disk"

	var throttled []float64
	viaHearth := func() (toBanner, startCall time.Duration) {
		start := time.Now()
		startCall = c.post("/servers/"+id+"/start", "").must(b, 204).took
		for deadline := start.Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if r := c.get("/servers/" + id + "/console"); r.status == 200 && strings.Contains(r.body, banner) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no banner on the console within 2 minutes of start")
			}
		}
		toBanner = time.Since(start)
		b.StopTimer()
		throttled = append(throttled, cpuThrottledSecs(b, id))
		c.post("/servers/"+id+"/stop", "").must(b, 204)
		c.waitStatus(b, id, "stopped", time.Minute)
		b.StartTimer()
		return toBanner, startCall
	}
	vm := handBenchVM(b, disk)
	byHand := func() time.Duration {
		start := time.Now()
		q := runQEMU(b, vm)
		for deadline := start.Add(2 * time.Minute); !strings.Contains(q.serial.String(), banner); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("no banner on QEMU's serial port within 2 minutes:\n%s", q.serial)
			}
		}
		took := time.Since(start)
		q.kill()
		return took
	}
	viaHearth()
	byHand()
	var hearthSecs, startSecs, handSecs []float64
	b.ResetTimer()
	for range max(b.N, 5) {
		toBanner, startCall := viaHearth()
		hearthSecs, startSecs = append(hearthSecs, toBanner.Seconds()), append(startSecs, startCall.Seconds())
		handSecs = append(handSecs, byHand().Seconds())
	}
	b.StopTimer()
	b.Logf("hearth %.2f s (of which POST start %.2f s; CFS-throttled %.2f s), by hand %.2f s per round",
		hearthSecs, startSecs, throttled[1:], handSecs)
	hm, qm := median(hearthSecs), median(handSecs)
	b.ReportMetric(hm*1e9, "ns/op")
	b.ReportMetric(hm, "hearth-s")
	b.ReportMetric(median(startSecs), "hearth-start-call-s")
	b.ReportMetric(qm, "hand-s")
	b.ReportMetric(hm/qm, "x_hand")
	b.ReportMetric(median(throttled[1:]), "throttled_s")
}

// cpuThrottledSecs is how long the server's container has been held back by
// its CFS quota (cpu.stat: throttled_usec in cgroup v2, throttled_time in
// ns in v1) since it started.
func cpuThrottledSecs(b *testing.B, id string) float64 {
	b.Helper()
	for _, dir := range cgroupsOf(id) {
		stat, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(stat), "\n") {
			k, v, _ := strings.Cut(line, " ")
			n, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "throttled_usec":
				return n / 1e6
			case "throttled_time":
				return n / 1e9
			}
		}
	}
	b.Fatalf("no cpu.stat with throttling in the cgroups of server %s", id)
	return 0
}

// BenchmarkVMMemory: what Hearth adds to a VM's memory, with vmMemoryVMs VMs
// booted to their banner: the growth of `hearth serve`'s RSS per VM (from
// a baseline taken after one VM ran and was destroyed, so one-time
// allocations are not counted) plus the containerd shim of each VM, as
// hearth-MiB/vm against QEMU's own RSS (qemu-MiB/vm); the parts and the
// container's cgroup charge get rows of their own. The cgroup charge is
// not "QEMU plus extra": QEMU's RSS counts the host's shared library and
// firmware pages, which the page cache charged to whoever read them first.
// RSS is the kernel's VmRSS, so Go's garbage not yet returned counts.
func BenchmarkVMMemory(b *testing.B) {
	disk := vmImage(b, "disk.img")
	h, c, password, src := vmBenchSetup(b, disk)
	boot := func() string {
		id := c.post("/servers/create", vmBenchServer("mem", password, c.driveFrom(b, src, "32M"))).must(b, 200).props()["server"]
		c.waitConsole(b, id, "hearth-e2e disk", 2*time.Minute)
		return id
	}
	c.post("/servers/"+boot()+"/destroy", "").must(b, 204)

	var serve, shim, qemuRSS, cgroup []float64
	b.ResetTimer()
	for range max(b.N, 3) {
		before := rssMiB(b, h.pid())
		var ids []string
		for range vmMemoryVMs {
			ids = append(ids, boot())
		}
		serve = append(serve, (rssMiB(b, h.pid())-before)/vmMemoryVMs)
		for _, id := range ids {
			qemuRSS = append(qemuRSS, rssMiB(b, vmQEMUPid(b, id)))
			cgroup = append(cgroup, vmCgroupMiB(b, id))
			shim = append(shim, shimMiB(b, h, id))
		}
		b.StopTimer()
		for _, id := range ids {
			c.post("/servers/"+id+"/destroy", "").must(b, 204)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.Logf("per VM: serve RSS growth %.1f MiB, shim %.1f MiB, QEMU RSS %.1f MiB, cgroup %.1f MiB", serve, shim, qemuRSS, cgroup)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(serve)+median(shim), "hearth-MiB/vm")
	b.ReportMetric(median(qemuRSS), "qemu-MiB/vm")
	b.ReportMetric(median(serve), "serve_MiB/vm")
	b.ReportMetric(median(shim), "shim_MiB/vm")
	b.ReportMetric(median(cgroup), "cgroup_MiB/vm")
}

const vmMemoryVMs = 3

// rssMiB is a process's resident set (VmRSS) in MiB.
func rssMiB(b *testing.B, pid int) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

// vmQEMUPid is the QEMU process of a running VM server.
func vmQEMUPid(b *testing.B, id string) int {
	b.Helper()
	for _, pid := range guestProcesses(id) {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte(qemu.Binary)) {
			return pid
		}
	}
	b.Fatalf("no %s in the cgroup of server %s", qemu.Binary, id)
	return 0
}

// vmCgroupMiB is the memory charged to the VM's container cgroup
// (memory.current in cgroup v2, memory.usage_in_bytes in v1).
func vmCgroupMiB(b *testing.B, id string) float64 {
	b.Helper()
	for _, dir := range cgroupsOf(id) {
		v, err := os.ReadFile(filepath.Join(dir, "memory.current"))
		if err != nil {
			v, err = os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
		}
		if err == nil {
			n, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
			if err != nil {
				b.Fatal(err)
			}
			return n / (1 << 20)
		}
	}
	b.Fatalf("no memory.current in the cgroups of server %s (%v)", id, cgroupsOf(id))
	return 0
}

// shimMiB is the RSS of the containerd shim serving the server's container.
func shimMiB(b *testing.B, h *hearth, id string) float64 {
	b.Helper()
	for _, p := range h.processes() {
		if strings.Contains(p, "containerd-shim") && strings.Contains(p, id) {
			var pid int
			fmt.Sscan(p, &pid)
			return rssMiB(b, pid)
		}
	}
	b.Fatalf("no containerd shim names server %s: %v", id, h.processes())
	return 0
}

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// BenchmarkDebianLoginPrompt: start → the first `login:` on the console of
// the Debian 12 guest through `hearth serve`, and of the same root
// filesystem booted by LXC as an unprivileged container (lxc.idmap, the
// tree presented through an idmapped mount, a veth on a bridge of the
// benchmark's own with a DHCP server of its own, the console in a log
// file), measured the same way and interleaved in the same run, both with
// the whole host's CPU (no limit for either). Reports
// the median of each (at least 5 rounds after one untimed warm-up round
// each) and their ratio; the target is ≤ 1.0× LXC.
func BenchmarkDebianLoginPrompt(b *testing.B) {
	if _, err := exec.LookPath("lxc-start"); err != nil {
		b.Skipf("comparing with LXC needs Debian's lxc package (lxc-start): %v", err)
	}
	tree := debianTree(b)
	h := startHearth(b, withArgs("--shutdown-grace", "60s"))
	lib := h.importDebian(b)
	c := h.addUser("bench-"+randomHex(2), false)
	g := &guest{c: c, password: h.secret("v" + randomHex(3))}
	// The server gets the whole host, as the LXC container does (it runs
	// without a CPU limit): the other tests' cpu 1000 is a CFS quota of
	// under half a core on these 2.1 GHz machines, which alone made every
	// unit of the boot about 2× slower than LXC's.
	server := strings.Replace(debianServer("bench", c.driveFrom(b, lib, "2G"), g.password),
		"cpu 1000\n", fmt.Sprintf("cpu %d\nsmp %d\n", wholeHostMHz, runtime.NumCPU()), 1)
	if !strings.Contains(server, "smp ") {
		b.Fatalf("the Debian server no longer says cpu 1000: give the benchmark's the whole host another way:\n%s", server)
	}
	g.id = c.post("/servers/create/stopped", server).must(b, 200).props()["server"]
	lx := newLXCGuest(b, tree)

	g.bootToLogin(b)
	lx.bootToLogin(b)
	rounds := max(b.N, 5)
	var hearth, lxc bootTimes
	b.ResetTimer()
	for range rounds {
		hearth.add(g.bootToLogin(b))
		lxc.add(lx.bootToLogin(b))
	}
	b.StopTimer()
	b.Logf("hearth %.2f s (of which the start call %.2f s), LXC %.2f s (of which lxc-start %.2f s) per round",
		hearth.toLogin, hearth.startCall, lxc.toLogin, lxc.startCall)
	hm, lm := median(hearth.toLogin), median(lxc.toLogin)
	b.ReportMetric(hm*1e9, "ns/op")
	b.ReportMetric(hm, "hearth-s")
	b.ReportMetric(median(hearth.startCall), "hearth-start-call-s")
	b.ReportMetric(median(hearth.afterStart()), "hearth-after-start-s")
	b.ReportMetric(lm, "lxc-s")
	b.ReportMetric(median(lxc.startCall), "lxc-start-call-s")
	b.ReportMetric(median(lxc.afterStart()), "lxc-after-start-s")
	b.ReportMetric(hm/lm, "x_lxc")
}

// bootTimes are a guest's rounds: start → login prompt, and of it the call
// that starts the guest (Hearth's POST start, which returns once init runs;
// lxc-start -d, which returns once the container runs). What follows the
// call is the guest's own boot, which the runtime only hosts.
type bootTimes struct{ toLogin, startCall []float64 }

func (t *bootTimes) add(toLogin, startCall time.Duration) {
	t.toLogin = append(t.toLogin, toLogin.Seconds())
	t.startCall = append(t.startCall, startCall.Seconds())
}

func (t *bootTimes) afterStart() []float64 {
	after := make([]float64, len(t.toLogin))
	for i := range after {
		after[i] = t.toLogin[i] - t.startCall[i]
	}
	return after
}

// wholeHostMHz is a cpu (MHz) above any host's cores × clock: with smp set to
// the host's cores, the quota is all of them, so it never throttles.
const wholeHostMHz = 100_000

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bootToLogin starts the stopped server, times it to the first login
// prompt of this boot and its start request alone, then shuts it down
// (untimed).
func (g *guest) bootToLogin(b *testing.B) (toLogin, startCall time.Duration) {
	b.Helper()
	before := g.c.get("/servers/" + g.id + "/console").body
	start := time.Now()
	startCall = g.c.post("/servers/"+g.id+"/start", "").must(b, 204).took
	deadline := start.Add(3 * time.Minute)
	for {
		if r := g.c.get("/servers/" + g.id + "/console"); r.status == 200 {
			// The console keeps the last boot's output until this boot's
			// replaces it: only what came after it counts.
			now := r.body
			if before != "" && strings.HasPrefix(now, before) {
				now = now[len(before):]
			}
			if strings.Contains(now, "login:") {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("no login prompt within 3 minutes of start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	toLogin = time.Since(start)
	b.StopTimer()
	g.c.post("/servers/"+g.id+"/shutdown", "").must(b, 204)
	g.c.waitStatus(b, g.id, "stopped", time.Minute)
	b.StartTimer()
	return toLogin, startCall
}

// lxcGuest is an unprivileged LXC container on its own bridge and DHCP
// server, booting a root filesystem tree.
type lxcGuest struct {
	path, name, console string
}

// lxcIDBase is where the container's 65,536 ids start on the host: far
// above the ranges Hearth hands out from 1,000,000.
const lxcIDBase = 1900000000

func newLXCGuest(b *testing.B, tree string) *lxcGuest {
	b.Helper()
	lx := &lxcGuest{path: b.TempDir(), name: "hearth-bench-" + randomHex(3)}
	dir := filepath.Join(lx.path, lx.name)
	lx.console = filepath.Join(dir, "console.log")
	bridge := "hlxc" + randomHex(4)[:7]
	subnet := fmt.Sprintf("172.31.%d", randomInt(256))
	serverIP, guestIP := net.ParseIP(subnet+".1").To4(), net.ParseIP(subnet+".11").To4()
	for _, args := range [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"addr", "add", subnet + ".1/24", "dev", bridge},
		{"link", "set", bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", bridge).Run()
			b.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	b.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	srv, err := server4.NewServer(bridge, &net.UDPAddr{Port: dhcpv4.ServerPort}, func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		reply := map[dhcpv4.MessageType]dhcpv4.MessageType{
			dhcpv4.MessageTypeDiscover: dhcpv4.MessageTypeOffer,
			dhcpv4.MessageTypeRequest:  dhcpv4.MessageTypeAck,
		}[req.MessageType()]
		if reply == dhcpv4.MessageTypeNone {
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(req,
			dhcpv4.WithMessageType(reply),
			dhcpv4.WithYourIP(guestIP),
			dhcpv4.WithServerIP(serverIP),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(serverIP),
			dhcpv4.WithLeaseTime(3600))
		if err == nil {
			conn.WriteTo(resp.ToBytes(), peer)
		}
	})
	if err != nil {
		b.Fatalf("DHCP server on %s: %v", bridge, err)
	}
	go srv.Serve()
	b.Cleanup(func() { srv.Close() })

	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// The container's root (an unprivileged host id) must be able to reach
	// its console log and root filesystem through the temporary dirs (0700).
	for _, d := range []string{lx.path, filepath.Dir(lx.path), filepath.Dir(tree)} {
		if err := os.Chmod(d, 0o711); err != nil {
			b.Fatal(err)
		}
	}
	config := strings.Join([]string{
		"lxc.include = /usr/share/lxc/config/common.conf",
		"lxc.include = /usr/share/lxc/config/userns.conf",
		// /sys read-only as Hearth gives it: with a writable /sys the
		// image's systemd-networkd waits for a udev it does not have and
		// never asks DHCP.
		"lxc.mount.auto =",
		"lxc.mount.auto = cgroup:mixed proc:mixed sys:ro",
		"lxc.arch = x86_64",
		"lxc.uts.name = " + lx.name,
		"lxc.rootfs.path = dir:" + tree,
		"lxc.rootfs.options = idmap=container",
		fmt.Sprintf("lxc.idmap = u 0 %d 65536", lxcIDBase),
		fmt.Sprintf("lxc.idmap = g 0 %d 65536", lxcIDBase),
		"lxc.net.0.type = veth",
		"lxc.net.0.link = " + bridge,
		"lxc.net.0.name = eth0",
		"lxc.net.0.hwaddr = 02:00:00:00:00:11",
		"lxc.net.0.flags = up",
		"lxc.console.logfile = " + lx.console,
		"lxc.log.file = " + filepath.Join(dir, "lxc.log"),
		"lxc.log.level = WARN",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(lx.cleanup)
	return lx
}

// lxc runs an LXC tool on the container. PATH leaves out newuidmap, so that
// LXC (as root) writes the uid map itself instead of asking /etc/subuid.
func (lx *lxcGuest) lxc(tool string, args ...string) ([]byte, error) {
	cmd := exec.Command("/usr/bin/"+tool, append([]string{"-P", lx.path, "-n", lx.name}, args...)...)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/sbin")
	return cmd.CombinedOutput()
}

// bootToLogin starts the container, times it to the first login prompt
// and its lxc-start alone, then kills it (untimed).
func (lx *lxcGuest) bootToLogin(b *testing.B) (toLogin, startCall time.Duration) {
	b.Helper()
	if err := os.WriteFile(lx.console, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := lx.lxc("lxc-start", "-d"); err != nil {
		log, _ := os.ReadFile(filepath.Join(lx.path, lx.name, "lxc.log"))
		b.Fatalf("lxc-start: %v %s\n%s", err, out, log)
	}
	startCall = time.Since(start)
	deadline := start.Add(3 * time.Minute)
	for {
		if out, _ := os.ReadFile(lx.console); strings.Contains(string(out), "login:") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("LXC: no login prompt within 3 minutes of lxc-start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	toLogin = time.Since(start)
	b.StopTimer()
	if out, err := lx.lxc("lxc-stop", "-k"); err != nil {
		b.Fatalf("lxc-stop: %v %s", err, out)
	}
	b.StartTimer()
	return toLogin, startCall
}

// cleanup stops the container if it still runs and removes the monitor and
// payload cgroups LXC can leave behind, and its pivot cgroup where no
// other container uses it (an rmdir of a cgroup in use fails) — never
// lxc-destroy: it would delete the shared tree.
func (lx *lxcGuest) cleanup() {
	lx.lxc("lxc-stop", "-k")
	for _, pattern := range []string{"/sys/fs/cgroup/*/lxc.*." + lx.name, "/sys/fs/cgroup/lxc.*." + lx.name, "/sys/fs/cgroup/*/lxc.pivot", "/sys/fs/cgroup/lxc.pivot"} {
		dirs, _ := filepath.Glob(pattern)
		for _, dir := range dirs {
			removeCgroup(dir)
		}
	}
}

// removeCgroup removes an empty cgroup and its sub-cgroups, deepest first.
func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

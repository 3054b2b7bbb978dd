package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/internal/testguest"
	"hearth/vmm/guest"
)

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkCreateToRunning times Host.Start (loop device, probe, container,
// task, start) against `ctr run -d --rootfs` of the same root filesystem on
// the same containerd, interleaved, ten of each per iteration; it reports
// both medians and their ratio.
func BenchmarkCreateToRunning(b *testing.B) {
	h, _ := openTestHost(b)
	img := testguest.Image(b, 64<<20)
	tree := testguest.Tree(b)
	ctx := context.Background()
	var hearth, ctr []time.Duration
	for n := 0; n < b.N; n++ {
		for i := 0; i < 10; i++ {
			id := guestID(b, i)
			start := time.Now()
			if err := h.Start(ctx, guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
				b.Fatal(err)
			}
			hearth = append(hearth, time.Since(start))

			cid := "ctr-" + id
			start = time.Now()
			out, err := exec.Command("ctr", "-a", h.socket, "-n", h.namespace, "run", "-d", "--rootfs", tree, cid, "/sbin/init").CombinedOutput()
			if err != nil {
				b.Fatalf("ctr run: %v: %s", err, out)
			}
			ctr = append(ctr, time.Since(start))

			if err := h.Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
			exec.Command("ctr", "-a", h.socket, "-n", h.namespace, "task", "rm", "-f", cid).Run()
			exec.Command("ctr", "-a", h.socket, "-n", h.namespace, "container", "rm", cid).Run()
		}
	}
	removeCgroups(h.namespace, "", true) // the ctr containers' namespace directory
	mh, mc := median(hearth), median(ctr)
	b.ReportMetric(float64(mh.Microseconds())/1000, "hearth-ms")
	b.ReportMetric(float64(mc.Microseconds())/1000, "ctr-ms")
	b.ReportMetric(float64(mh)/float64(mc), "ratio")
	b.ReportMetric(0, "ns/op")
}

func rssKiB(b *testing.B) int {
	runtime.GC()
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkRSSPerGuest reports how much the Hearth process grows per running
// guest (console ring and copy loops, state), with every guest printing.
func BenchmarkRSSPerGuest(b *testing.B) {
	const guests = 20
	h, _ := openTestHost(b)
	img := testguest.Image(b, 32<<20)
	ctx := context.Background()
	for n := 0; n < b.N; n++ {
		// Warm up the client's connections and buffers with one guest.
		warm := guestID(b, 999)
		if err := h.Start(ctx, guest.Spec{ID: warm, Boot: guest.Disk{Image: img}}); err != nil {
			b.Fatal(err)
		}
		before := rssKiB(b)
		ids := make([]string, guests)
		for i := range ids {
			ids[i] = guestID(b, i)
			id := ids[i]
			if err := h.Start(ctx, guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
				b.Fatal(err)
			}
			c, _ := h.Console(id)
			c.Write([]byte(fmt.Sprintf("seq 1 20000; echo done-$((%d+1))\n", i)))
		}
		for i := 0; i < guests; i++ {
			c, _ := h.Console(ids[i])
			waitConsole(b, c, fmt.Sprintf("done-%d", i+1))
		}
		after := rssKiB(b)
		b.ReportMetric(float64(after-before)/guests, "KiB/guest")
		for _, g := range h.Guests(ctx) {
			h.Delete(ctx, g.Spec.ID)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReadopt50 starts 50 guests, lets go of them (Close: the private
// containerd stops, the guests run on) and times Open: daemon start, listing,
// console re-attach of all 50.
func BenchmarkReadopt50(b *testing.B) {
	const guests = 50
	needContainerd(b)
	data, ns := b.TempDir(), testNamespace(b)
	img := testguest.Image(b, 32<<20)
	ctx := context.Background()
	open := func() *Host {
		h, err := Open(ctx, data, WithNamespace(ns), WithRuntime(RuntimeRunc), WithIDBase(testIDBase(b)))
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	h := open()
	b.Cleanup(func() {
		for _, g := range h.Guests(ctx) {
			h.Delete(ctx, g.Spec.ID)
		}
		h.Close()
		assertNoLeaks(b, data, ns, nil)
	})
	for i := 0; i < guests; i++ {
		if err := h.Start(ctx, guest.Spec{ID: guestID(b, i), Boot: guest.Disk{Image: img}}); err != nil {
			b.Fatalf("guest %d: %v", i, err)
		}
	}
	var took []time.Duration
	for n := 0; n < b.N; n++ {
		h.Close()
		start := time.Now()
		h = open()
		took = append(took, time.Since(start))
		if got := len(h.Guests(ctx)); got != guests {
			b.Fatalf("re-adopted %d guests of %d", got, guests)
		}
	}
	b.ReportMetric(float64(median(took).Microseconds())/1000, "open-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkServerStart is BenchmarkCreateToRunning one layer up: a server
// row is created in SQLite and Manager.Start claims its drive and records it
// active, against `ctr run -d --rootfs` of the same tree, interleaved.
func BenchmarkServerStart(b *testing.B) {
	f := newManagerFixture(b)
	tree := testguest.Tree(b)
	ctx := context.Background()
	var hearth, ctr []time.Duration
	for n := 0; n < b.N; n++ {
		for i := 0; i < 10; i++ {
			drive := f.drive(false, nil)
			start := time.Now()
			id := f.Server(map[string]string{"ide:0:0": drive})
			if err := f.m.Start(ctx, id); err != nil {
				b.Fatal(err)
			}
			hearth = append(hearth, time.Since(start))

			cid := fmt.Sprintf("ctr-%d-%d", n, i)
			start = time.Now()
			out, err := exec.Command("ctr", "-a", f.host.socket, "-n", f.host.namespace, "run", "-d", "--rootfs", tree, cid, "/sbin/init").CombinedOutput()
			if err != nil {
				b.Fatalf("ctr run: %v: %s", err, out)
			}
			ctr = append(ctr, time.Since(start))

			if err := f.m.Stop(ctx, id); err != nil {
				b.Fatal(err)
			}
			exec.Command("ctr", "-a", f.host.socket, "-n", f.host.namespace, "task", "rm", "-f", cid).Run()
			exec.Command("ctr", "-a", f.host.socket, "-n", f.host.namespace, "container", "rm", cid).Run()
		}
	}
	removeCgroups(f.host.namespace, "", true)
	mh, mc := median(hearth), median(ctr)
	b.ReportMetric(float64(mh.Microseconds())/1000, "hearth-ms")
	b.ReportMetric(float64(mc.Microseconds())/1000, "ctr-ms")
	b.ReportMetric(float64(mh)/float64(mc), "ratio")
	b.ReportMetric(0, "ns/op")
}

package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks here measure the hearth binary from outside, over real
// HTTP, where no package benchmark does: info at 64 clients, drive reads
// against dd, drive-to-drive imaging against dd, and the idle process's
// memory. (Create→running, 1,000-server info, info at 8 clients, drive
// writes, console bridge, keystrokes, memory per guest and per console and
// re-adoption are the vmm, web and console packages' benchmarks.)

// BenchmarkServerInfoRate/clients=64: GET /servers/S/info from 64
// concurrent clients against `hearth serve`, Basic auth on every request,
// compared with the 5,000 requests/s target.
func BenchmarkServerInfoRate(b *testing.B) {
	b.Run("clients=64", func(b *testing.B) {
		const clients = 64
		h := startHearth(b)
		c := h.addUser("bench-"+randomHex(2), false)
		id := c.post("/servers/create/stopped", "name bench\ncpu 2000\nmem 1024\nnic:0:model e1000\nnic:0:dhcp auto\npassword secret").must(b, 200).props()["server"]
		hc := &http.Client{Transport: &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}}
		url := h.url() + "/servers/" + id + "/info"
		var next atomic.Int64
		var failed atomic.Value
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					req, _ := http.NewRequest("GET", url, nil)
					req.SetBasicAuth(c.u.id, c.u.secret)
					resp, err := hc.Do(req)
					if err != nil {
						failed.Store(err.Error())
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Store(resp.Status)
					}
				}
			}()
		}
		wg.Wait()
		rate := float64(b.N) / time.Since(start).Seconds()
		b.StopTimer()
		if f := failed.Load(); f != nil {
			b.Fatalf("info: %v", f)
		}
		b.ReportMetric(rate, "hearth-req/s")
		b.ReportMetric(5000, "target-req/s")
	})
}

// randomFile writes size random bytes to a new file.
func randomFile(b *testing.B, size int) string {
	path := filepath.Join(b.TempDir(), "random")
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// ddMBps times dd copying in to out with 4 MiB blocks.
func ddMBps(b *testing.B, in, out string, size int, extra ...string) float64 {
	args := append([]string{"if=" + in, "of=" + out, "bs=4M", "status=none"}, extra...)
	start := time.Now()
	if o, err := exec.Command("dd", args...).CombinedOutput(); err != nil {
		b.Fatalf("dd: %v %s", err, o)
	}
	return float64(size) / (1 << 20) / time.Since(start).Seconds()
}

// BenchmarkDriveRead/size=256M reads a drive through GET /drives/D/read
// (4 MiB per request, the API's maximum) and compares with dd reading the
// same image file to /dev/null with 4 MiB blocks; both from the page cache.
func BenchmarkDriveRead(b *testing.B) {
	b.Run("size=256M", func(b *testing.B) {
		const size, piece = 256 << 20, 4 << 20
		h := startHearth(b)
		c := h.addUser("bench-"+randomHex(2), false)
		id := c.post("/drives/create", "name bench\nsize 256M").must(b, 200).props()["drive"]
		src := randomFile(b, size)
		f, _ := os.Open(src)
		c.do("POST", "/drives/"+id+"/write/0", f, "Content-Type", "application/octet-stream").must(b, 204)
		f.Close()
		file := filepath.Join(h.data, "drives", id+".img")
		var hearthMB, ddMB float64
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			ddMB += ddMBps(b, file, "/dev/null", size)
			start := time.Now()
			for off := 0; off < size; off += piece {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/drives/%s/read/%d/%d", h.url(), id, off, piece), nil)
				req.SetBasicAuth(c.u.id, c.u.secret)
				resp, err := c.hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != piece {
					b.Fatalf("read at %d: %d, %d bytes", off, resp.StatusCode, n)
				}
			}
			hearthMB += float64(size) / (1 << 20) / time.Since(start).Seconds()
		}
		b.ReportMetric(hearthMB/float64(b.N), "hearth-MB/s")
		b.ReportMetric(ddMB/float64(b.N), "dd-MB/s")
	})
}

// BenchmarkImaging/size=256M copies a drive of random data into another
// with POST /drives/T/image/S (until imaging is no longer shown) and
// compares with dd copying the same image file (conv=fsync, as Hearth
// syncs the target).
func BenchmarkImaging(b *testing.B) {
	b.Run("size=256M", func(b *testing.B) {
		const size = 256 << 20
		h := startHearth(b)
		c := h.addUser("bench-"+randomHex(2), false)
		srcID := c.post("/drives/create", "name src\nsize 256M").must(b, 200).props()["drive"]
		f, _ := os.Open(randomFile(b, size))
		c.do("POST", "/drives/"+srcID+"/write/0", f, "Content-Type", "application/octet-stream").must(b, 204)
		f.Close()
		srcFile := filepath.Join(h.data, "drives", srcID+".img")
		ddOut := filepath.Join(b.TempDir(), "dd.img")
		var hearthMB, ddMB float64
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			// Each timed copy starts with no dirty pages from the last one.
			exec.Command("sync").Run()
			ddMB += ddMBps(b, srcFile, ddOut, size, "conv=fsync")
			os.Remove(ddOut)
			target := c.post("/drives/create", "name target\nsize 256M").must(b, 200).props()["drive"]
			exec.Command("sync").Run()
			start := time.Now()
			c.post("/drives/"+target+"/image/"+srcID, "").must(b, 200)
			for c.get("/drives/"+target+"/info").must(b, 200).props()["imaging"] != "" {
				time.Sleep(5 * time.Millisecond)
			}
			hearthMB += float64(size) / (1 << 20) / time.Since(start).Seconds()
			b.StopTimer()
			if got, _ := os.ReadFile(filepath.Join(h.data, "drives", target+".img")); !bytes.Equal(got[:1<<20], mustRead(b, srcFile)[:1<<20]) {
				b.Fatal("imaged drive differs from its source")
			}
			c.post("/drives/"+target+"/destroy", "").must(b, 204)
			b.StartTimer()
		}
		b.ReportMetric(hearthMB/float64(b.N), "hearth-MB/s")
		b.ReportMetric(ddMB/float64(b.N), "dd-MB/s")
	})
}

func mustRead(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkRSSIdle is the resident memory of an idle `hearth serve` (the
// Hearth process alone, not its containerd) a second after it started and
// answered one request.
func BenchmarkRSSIdle(b *testing.B) {
	var total float64
	for range b.N {
		h := startHearth(b)
		h.client(h.admin).get("/servers/list").must(b, 200)
		time.Sleep(time.Second)
		total += h.rssMiB(b)
		b.StopTimer()
		h.cleanup()
		b.StartTimer()
	}
	b.ReportMetric(total/float64(b.N), "hearth-MiB")
	b.ReportMetric(0, "ns/op")
}

// rssMiB is the resident memory of the hearth serve process.
func (h *hearth) rssMiB(t testing.TB) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kib) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

package web

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
}

func benchGet(b *testing.B, hc *http.Client, c *client, path string) {
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.SetBasicAuth(c.login, c.secret)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}

// BenchmarkServerInfo: GET /servers/SERVER/info by 8 concurrent clients over
// real HTTP, Basic auth on every request (target ≥ 5,000 requests/s).
func BenchmarkServerInfo(b *testing.B) {
	e := newEnv(b)
	c := e.user("bench", false)
	id := c.post("/servers/create/stopped", "name bench\ncpu 2000\nmem 1024\nnic:0:model e1000\nnic:0:dhcp auto\nvnc auto\npassword secret").props(b)["server"]
	hc := benchClient()
	b.SetParallelism(max(1, 8/runtimeGOMAXPROCS()))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchGet(b, hc, c, "/servers/"+id+"/info")
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkServersInfo1000: GET /servers/info (text) of 1,000 servers;
// reports the median latency (target p50 ≤ 20 ms).
func BenchmarkServersInfo1000(b *testing.B) {
	e := newEnv(b)
	c := e.user("bench", false)
	ctx := context.Background()
	for i := range 1000 {
		_, err := e.store.CreateServer(ctx, c.id, map[string]string{"name": fmt.Sprintf("server-%d", i), "cpu": "2000", "mem": "1024",
			"smp": "auto", "persistent": "true", "nic:0:model": "e1000", "nic:0:dhcp": "auto", "vnc": "auto", "password": "secret",
			"boot": "ide:0:0", "ide:0:0": "6052916e-102f-4db7-abdd-fd98f0d9f8d0", "tags": "web prod", "user:owner": "bench"})
		if err != nil {
			b.Fatal(err)
		}
	}
	hc := benchClient()
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		benchGet(b, hc, c, "/servers/info")
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkDriveWrite writes the same 256 MiB of random data to a drive
// through POST /drives/D/write (64 MiB requests) and with dd to a file on
// the same disk, in the same run, and reports both rates and their ratio
// (target ≥ 80% of dd).
func BenchmarkDriveWrite(b *testing.B) {
	const total, chunk = 256 << 20, 64 << 20
	e := newEnv(b)
	c := e.user("bench", false)
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, total)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	id := c.post("/drives/create", "name bench\nsize "+strconv.Itoa(total)).props(b)["drive"]
	hc := benchClient()
	var api, dd time.Duration
	b.ResetTimer()
	for b.Loop() {
		dst := filepath.Join(dir, "dd.img")
		t := time.Now()
		if out, err := exec.Command("dd", "if="+src, "of="+dst, "bs=4M", "status=none").CombinedOutput(); err != nil {
			b.Fatalf("dd: %v %s", err, out)
		}
		dd += time.Since(t)
		os.Remove(dst)

		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		t = time.Now()
		for off := int64(0); off < total; off += chunk {
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/drives/%s/write/%d", c.base, id, off), io.NewSectionReader(f, off, chunk))
			req.ContentLength = chunk
			req.SetBasicAuth(c.login, c.secret)
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 204 {
				b.Fatalf("write: %d", resp.StatusCode)
			}
		}
		api += time.Since(t)
		f.Close()
	}
	mb := float64(total) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/api.Seconds(), "hearth-MB/s")
	b.ReportMetric(mb/dd.Seconds(), "dd-MB/s")
	b.ReportMetric(100*dd.Seconds()/api.Seconds(), "%-of-dd")
}

package eh

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// thousandServers is what /servers/info of 1,000 running servers holds before
// rendering: stored configuration plus runtime keys, aliases added.
func thousandServers(b *testing.B) []Props {
	b.Helper()
	objs := make([]Props, 1000)
	for i := range objs {
		cfg, err := NewServer(Props{"name": fmt.Sprintf("server %d", i), "cpu": "2000", "mem": "1024",
			"ide:0:0": fmt.Sprintf("b6049e7a-aa0b-4d2e-9d6f-%012d", i), "boot": "ide:0:0", "nic:0:model": "virtio",
			"nic:0:dhcp": "auto", "vnc": "auto", "password": "pw123456", "persistent": "true", "tags": "web prod"})
		if err != nil {
			b.Fatal(err)
		}
		cfg["server"], cfg["user"], cfg["status"] = fmt.Sprintf("55559c30-1f11-4363-ac54-%012d", i), drive1, "active"
		objs[i] = ServerInfo(cfg, Props{"started": "1291493868", "smp:cores": "1", "vnc:ip": "192.0.2.1", "vnc:port": fmt.Sprint(5900 + i),
			"nic:0:ip": fmt.Sprintf("10.%d.%d.2", i/256, i%256), "nic:0:mac": "02:68:00:00:00:01",
			"nic:0:rx:bytes": "679560", "nic:0:rx:packets": "644", "nic:0:tx:bytes": "21271", "nic:0:tx:packets": "251",
			"ide:0:0:read:bytes": "299696128", "ide:0:0:read:requests": "73168", "ide:0:0:write:bytes": "321044480", "ide:0:0:write:requests": "78380"})
	}
	return objs
}

func benchmarkServersInfo(b *testing.B, accept string) {
	objs := thousandServers(b)
	r := httptest.NewRequest("GET", "/servers/info", nil)
	r.Header.Set("Accept", accept)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		WriteBlocks(w, r, objs)
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/response")
}

// BenchmarkServersInfoText renders /servers/info of 1,000 servers as text blocks.
func BenchmarkServersInfoText(b *testing.B) { benchmarkServersInfo(b, "text/plain") }

// BenchmarkServersInfoJSON renders /servers/info of 1,000 servers as a typed JSON array.
func BenchmarkServersInfoJSON(b *testing.B) { benchmarkServersInfo(b, "application/json") }

// BenchmarkServerInfoBuild measures ServerInfo (aliases and counters) for 1,000 servers.
func BenchmarkServerInfoBuild(b *testing.B) {
	objs := thousandServers(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, o := range objs {
			ServerInfo(o, Props{"nic:0:ip": "10.0.0.2", "nic:0:rx:bytes": "1", "nic:0:tx:bytes": "2", "started": "1"})
		}
	}
}

func benchmarkCreate(b *testing.B, body string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, err := ParseProps(strings.NewReader(body), DefaultLimit)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := NewServer(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateText parses and validates a typical text create body.
func BenchmarkCreateText(b *testing.B) {
	benchmarkCreate(b, "name TestServer\ncpu 2000\nsmp auto\nmem 1024\npersistent false\nide:0:0 "+drive1+
		"\nboot ide:0:0\nnic:0:model e1000\nnic:0:dhcp auto\nvnc auto\npassword XXXXXXXX\n")
}

// BenchmarkCreateJSON parses and validates libcloud's JSON create body.
func BenchmarkCreateJSON(b *testing.B) {
	benchmarkCreate(b, `{"name": "test api node", "cpu": 2000, "mem": 1024, "ide:0:0": "`+drive1+`", "boot": "ide:0:0",
	  "smp": "auto", "nic:0:model": "virtio", "nic:0:dhcp": "auto", "vnc": "auto", "vnc:password": "vncpass1"}`)
}

package console

import (
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBridge compares Hearth's websocket bridge with Debian's
// websockify bridging the same console's native VNC port, in one run:
//
//   - throughput: full-screen Raw updates (1 MB each) pulled through the bridge;
//   - latency: one keystroke echoed by the guest, until the update arrives.
func BenchmarkBridge(b *testing.B) {
	m := NewRegistry(WithListen("127.0.0.1"), WithBasePort(0))
	defer m.Close()
	s := newFakeStream()
	s.echo = true
	ep, err := m.Attach("bench", "bench", s, "pw")
	if err != nil {
		b.Fatal(err)
	}
	s.waitSubscribed(b)
	bridges := map[string]string{"hearth": consoleServerB(b, m)}
	if path, err := exec.LookPath("websockify"); err == nil {
		bridges["websockify"] = startWebsockify(b, path, ep)
	} else {
		b.Log("websockify not installed (apt-get install websockify): comparing nothing")
	}
	for _, name := range []string{"hearth", "websockify"} {
		base, ok := bridges[name]
		if !ok {
			continue
		}
		b.Run(name+"/throughput", func(b *testing.B) {
			c := dialBridge(b, base)
			c.discardRaw = true
			c.requestUpdate(false)
			if err := c.readUpdate(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(c.width * c.height * 4))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.requestUpdate(false)
				if err := c.readUpdate(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/latency", func(b *testing.B) {
			c := dialBridge(b, base)
			c.setEncodings(encZRLE, encCopyRect)
			c.requestUpdate(false)
			if err := c.readUpdate(); err != nil {
				b.Fatal(err)
			}
			keystrokeLatency(b, c)
		})
	}
}

// keystrokeLatency types one key per iteration and waits for the update
// that draws its echo; it reports the median.
func keystrokeLatency(b *testing.B, c *rfbClient) {
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		c.requestUpdate(true)
		c.tap(uint32('a' + i%26))
		if err := c.readUpdate(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkKeystroke measures key event → framebuffer update delivered, over
// the native TCP port, with a guest that echoes what it is sent.
func BenchmarkKeystroke(b *testing.B) {
	m := NewRegistry(WithListen("127.0.0.1"), WithBasePort(0))
	defer m.Close()
	s := newFakeStream()
	s.echo = true
	ep, err := m.Attach("bench", "bench", s, "pw")
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c, err := dialRFB(conn, "003.008", "pw")
	if err != nil {
		b.Fatal(err)
	}
	c.setEncodings(encZRLE, encCopyRect)
	c.requestUpdate(false)
	if err := c.readUpdate(); err != nil {
		b.Fatal(err)
	}
	keystrokeLatency(b, c)
}

// BenchmarkConsoleMemory reports the heap held per open console (a full
// screen of coloured output, native port open, no viewer).
func BenchmarkConsoleMemory(b *testing.B) {
	const consoles = 20
	for i := 0; i < b.N; i++ {
		m := NewRegistry(WithListen("127.0.0.1"), WithBasePort(0))
		glyph('x', false) // the shared glyph cache is not per console
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		streams := make([]*fakeStream, consoles)
		for j := range streams {
			streams[j] = newFakeStream()
			if _, err := m.Attach(fmt.Sprint("s", j), "bench", streams[j], "pw"); err != nil {
				b.Fatal(err)
			}
			for line := 0; line < 30; line++ {
				streams[j].emit([]byte(fmt.Sprintf("\x1b[3%dmline %d of some output to fill the screen\x1b[0m\r\n", line%8, line)))
			}
		}
		for j := range streams {
			waitScreen(b, m.console(fmt.Sprint("s", j)), "line 29")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/consoles/(1<<20), "MiB/console")
		m.Close()
	}
}

// BenchmarkScreenFeed: how fast guest output (coloured log lines, 4 KiB
// chunks as a tty delivers them) is parsed, diffed and drawn.
func BenchmarkScreenFeed(b *testing.B) {
	sc := newScreen(DefaultColumns, DefaultRows, "bench")
	var chunk []byte
	for i := 0; len(chunk) < 4096; i++ {
		chunk = fmt.Appendf(chunk, "\x1b[3%dm%5d\x1b[0m some log output of a busy guest, line after line\r\n", i%8, i)
	}
	b.SetBytes(int64(len(chunk)))
	for i := 0; i < b.N; i++ {
		sc.feed(chunk)
	}
}

// BenchmarkEncodeFullScreen: a full screen of coloured text as ZRLE (what
// noVNC gets on connect) and Raw; reports the bytes sent per update.
func BenchmarkEncodeFullScreen(b *testing.B) {
	sc := newScreen(DefaultColumns, DefaultRows, "bench")
	for i := 0; i < DefaultRows; i++ {
		sc.feed(fmt.Appendf(nil, "\x1b[3%dm%3d\x1b[0m the quick brown fox jumps over the lazy dog; \x1b[1mbold\x1b[0m text\r\n", i%8, i))
	}
	for _, tc := range []struct {
		name string
		zrle bool
	}{{"zrle", true}, {"raw", false}} {
		b.Run(tc.name, func(b *testing.B) {
			v := newViewer("bench")
			v.enc.setPixelFormat(noVNCPixelFormat)
			v.enc.zrle = tc.zrle
			sc.addViewer(v)
			defer sc.removeViewer(v)
			size := 0
			for i := 0; i < b.N; i++ {
				sc.mu.Lock()
				v.damage.markAll(sc.cols)
				v.requested = true
				size = len(sc.updateLocked(v))
				sc.mu.Unlock()
			}
			b.ReportMetric(float64(size), "bytes/update")
		})
	}
}

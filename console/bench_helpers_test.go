package console

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"hearth/internal/wsstream"
)

// consoleServerB serves the websocket bridge for benchmarks (owner requests).
func consoleServerB(b *testing.B, m *Registry) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /servers/{server}/vnc", webBridge(m, true))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/servers/bench/vnc"
}

// startWebsockify runs Debian's websockify in front of the console's VNC port.
func startWebsockify(b *testing.B, path string, ep Endpoint) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(path, addr, net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("websockify did not start listening")
		}
	}
	return "ws://" + addr + "/"
}

func dialBridge(b *testing.B, url string) *rfbClient {
	d := websocket.Dialer{Subprotocols: []string{"binary"}, ReadBufferSize: 64 << 10, WriteBufferSize: 16 << 10}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	c, err := dialRFB(wsstream.New(ws), "003.008", "pw")
	if err != nil {
		b.Fatal(err)
	}
	return c
}

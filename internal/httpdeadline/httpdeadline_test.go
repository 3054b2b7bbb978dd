package httpdeadline

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var short = Limits{Body: 300 * time.Millisecond, Write: time.Second, Progress: 1024, Window: 300 * time.Millisecond}

// serve answers with how many body bytes it read, after bounding the
// request and, for /stream, trading that for progress deadlines.
func serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		short.Bound(w)
		if r.URL.Path == "/stream" {
			w, r = short.Stream(w, r)
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return // the deadline cut the connection
		}
		fmt.Fprintf(w, "read %d", n)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// post sends a body of chunks × size bytes, one chunk per pause, and
// returns the answer's status line, or the error that ended it.
func post(t *testing.T, addr, path string, chunks, size int, pause time.Duration) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, chunks*size)
	for range chunks {
		if _, err := c.Write([]byte(strings.Repeat("x", size))); err != nil {
			return "", err
		}
		time.Sleep(pause)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestTrickledBodyIsCutOff(t *testing.T) {
	addr := serve(t)
	if line, err := post(t, addr, "/", 1, 10, 0); line != "HTTP/1.1 200 OK" {
		t.Fatalf("a prompt body: %q, %v", line, err)
	}
	// Ten bytes a second: the body would take 2 s, its deadline is 0.3 s.
	if line, err := post(t, addr, "/", 20, 1, 100*time.Millisecond); err == nil {
		t.Fatalf("a trickled body was answered: %q", line)
	}
}

func TestStreamLivesWhileDataMoves(t *testing.T) {
	addr := serve(t)
	// 2 KiB every 50 ms for over 1 s: far longer than one window, always
	// more than Progress per window.
	if line, err := post(t, addr, "/stream", 24, 2048, 50*time.Millisecond); line != "HTTP/1.1 200 OK" {
		t.Fatalf("a steady stream: %q, %v", line, err)
	}
	// 10 bytes every 50 ms: under 1 KiB per window.
	if line, err := post(t, addr, "/stream", 40, 10, 50*time.Millisecond); err == nil {
		t.Fatalf("a trickled stream was answered: %q", line)
	}
}

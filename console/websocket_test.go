package console

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialWS opens the websocket bridge like noVNC does (subprotocol "binary").
func dialWS(t *testing.T, base, path string, origin string) (*wsConn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{Subprotocols: []string{"binary"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+path, h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &wsConn{ws: ws}, resp, nil
}

func TestWebsocketBridge(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := testRegistry(t, WithClock(clock))
	s, _ := attach(t, m, "s1", "pw")
	owner := consoleServer(t, m, true, nil)
	anon := consoleServer(t, m, false, nil)

	t.Run("owner with password", func(t *testing.T) {
		conn, resp, err := dialWS(t, owner.URL, "/servers/s1/vnc", owner.URL)
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.Header.Get("Sec-Websocket-Protocol"); p != "binary" {
			t.Errorf("subprotocol %q, want binary", p)
		}
		c, err := dialRFB(conn, "003.008", "pw")
		if err != nil {
			t.Fatal(err)
		}
		c.setEncodings(encZRLE, encCopyRect)
		c.requestUpdate(false)
		if err := c.readUpdate(); err != nil {
			t.Fatal(err)
		}
		c.tap('q')
		s.waitInput(t, "q")
	})
	t.Run("owner with wrong password", func(t *testing.T) {
		conn, _, err := dialWS(t, owner.URL, "/servers/s1/vnc", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dialRFB(conn, "003.008", "nope"); !errors.Is(err, errAuthFailed) {
			t.Fatalf("wrong password: %v", err)
		}
	})
	t.Run("token stands in for the password", func(t *testing.T) {
		conn, _, err := dialWS(t, anon.URL, "/servers/s1/vnc?token="+m.Token("s1"), anon.URL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dialRFB(conn, "003.008", ""); err != nil {
			t.Fatal(err)
		}
	})
	expired := m.Token("s1")
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	for _, tc := range []struct {
		name, base, path, origin string
		status                   int
	}{
		{"no session no token", anon.URL, "/servers/s1/vnc", "", http.StatusUnauthorized},
		{"expired token", anon.URL, "/servers/s1/vnc?token=" + expired, "", http.StatusUnauthorized},
		{"token of another server", anon.URL, "/servers/s1/vnc?token=" + m.Token("s2"), "", http.StatusUnauthorized},
		{"garbage token", anon.URL, "/servers/s1/vnc?token=abc", "", http.StatusUnauthorized},
		{"foreign origin", owner.URL, "/servers/s1/vnc", "http://evil.example", http.StatusForbidden},
		{"no console", owner.URL, "/servers/s2/vnc", "", http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := dialWS(t, tc.base, tc.path, tc.origin)
			if err == nil {
				t.Fatal("websocket opened")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("%v (%v), want HTTP %d", err, resp, tc.status)
			}
		})
	}
}

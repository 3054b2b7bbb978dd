package console

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"hearth/internal/wsstream"
)

// webBridge plays the web layer's console endpoint (web/consolews.go) for
// the tests here: the owner, or the viewer with a console token of theirs
// (subprotocol hearth-token.TOKEN), gets an RFB session over binary
// websocket messages.
func webBridge(m *Registry, owner bool) http.HandlerFunc {
	upgrader := websocket.Upgrader{Subprotocols: []string{"binary"}}
	return func(w http.ResponseWriter, r *http.Request) {
		server := r.PathValue("server")
		tokenOK := false
		for _, p := range websocket.Subprotocols(r) {
			if token, ok := strings.CutPrefix(p, "hearth-token."); ok {
				tokenOK = m.CheckToken(server, tokenUser, token) == nil
			}
		}
		if !owner && !tokenOK {
			http.Error(w, "no session and no token", http.StatusUnauthorized)
			return
		}
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		m.Serve(wsstream.New(ws), server, Peer{Addr: host, Via: "web", TokenChecked: tokenOK})
	}
}

// dialWS opens the websocket bridge like noVNC does (subprotocol "binary").
func dialWS(t *testing.T, base, path string, origin string) (*wsstream.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := wsstream.Dial("ws"+strings.TrimPrefix(base, "http")+path, h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp, nil
}

// serveOver runs Registry.Serve for server on one end of a pipe and returns
// the viewer's end and the session's result.
func serveOver(t *testing.T, m *Registry, server string, peer Peer) (net.Conn, <-chan error) {
	t.Helper()
	viewer, conn := net.Pipe()
	t.Cleanup(func() { viewer.Close() })
	done := make(chan error, 1)
	go func() { done <- m.Serve(conn, server, peer) }()
	return viewer, done
}

// TestServe: a transport hands a connection to Registry.Serve; the viewer
// proves the VNC password unless the transport checked a console token.
func TestServe(t *testing.T) {
	m := testRegistry(t)
	s, _ := attach(t, m, "s1", "pw")

	t.Run("password", func(t *testing.T) {
		conn, _ := serveOver(t, m, "s1", Peer{Addr: "192.0.2.1", Via: "web"})
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
	t.Run("wrong password", func(t *testing.T) {
		conn, done := serveOver(t, m, "s1", Peer{Addr: "192.0.2.2", Via: "web"})
		if _, err := dialRFB(conn, "003.008", "nope"); !errors.Is(err, errAuthFailed) {
			t.Fatalf("wrong password: %v", err)
		}
		conn.Close()
		if err := <-done; !errors.Is(err, ErrAuth) {
			t.Fatalf("Serve after a wrong password: %v, want ErrAuth", err)
		}
	})
	t.Run("checked token stands in for the password", func(t *testing.T) {
		conn, _ := serveOver(t, m, "s1", Peer{Addr: "192.0.2.3", Via: "web", TokenChecked: true})
		if _, err := dialRFB(conn, "003.008", ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no console", func(t *testing.T) {
		_, done := serveOver(t, m, "s2", Peer{Addr: "192.0.2.4", Via: "web"})
		if err := <-done; !errors.Is(err, ErrNoConsole) {
			t.Fatalf("Serve for a server without console: %v", err)
		}
	})
}

// tokenUser is the user the tests' console tokens are minted for.
const tokenUser = "token-user"

func TestTokens(t *testing.T) {
	now := time.Now()
	m := testRegistry(t, WithClock(func() time.Time { return now }))
	attach(t, m, "s1", "pw")
	good := m.Token("s1", tokenUser)
	if err := m.CheckToken("s1", tokenUser, good); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if err := m.CheckToken("s1", tokenUser, good); !errors.Is(err, ErrBadToken) {
		t.Fatalf("the same token twice: %v, want ErrBadToken", err)
	}
	if !m.HasConsole("s1") || m.HasConsole("s2") {
		t.Fatal("HasConsole disagrees with what is attached")
	}
	expired := m.Token("s1", tokenUser)
	now = now.Add(31 * time.Second)
	for name, token := range map[string]string{
		"expired": expired, "another server's": m.Token("s2", tokenUser), "another user's": m.Token("s1", "someone"), "garbage": "abc",
	} {
		if err := m.CheckToken("s1", tokenUser, token); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s token: %v, want ErrBadToken", name, err)
		}
	}
}

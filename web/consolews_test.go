package web

import (
	"bufio"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/console"
	"hearth/internal/wsstream"
)

// quietTerminal is a guest terminal that prints nothing and swallows input.
type quietTerminal struct{}

func (quietTerminal) Subscribe() ([]byte, <-chan []byte, func()) {
	ch := make(chan []byte)
	var once sync.Once
	return nil, ch, func() { once.Do(func() { close(ch) }) }
}

func (quietTerminal) Write(p []byte) (int, error) { return len(p), nil }

// dialConsole opens the console websocket like noVNC does (subprotocol "binary").
func dialConsole(t *testing.T, base, path, origin string, set func(*http.Request)) (*wsstream.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if set != nil {
		r, _ := http.NewRequest("GET", base, nil)
		set(r)
		h = r.Header
	}
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

// securityOffered runs the RFB version exchange and returns the one
// security type the server offers (2: VNC password, 1: none).
func securityOffered(t *testing.T, conn io.ReadWriter) (byte, *bufio.Reader) {
	t.Helper()
	br := bufio.NewReader(conn)
	version := make([]byte, 12)
	if _, err := io.ReadFull(br, version); err != nil || string(version) != "RFB 003.008\n" {
		t.Fatalf("server version %q: %v", version, err)
	}
	io.WriteString(conn, "RFB 003.008\n")
	types := make([]byte, 2)
	if _, err := io.ReadFull(br, types); err != nil || types[0] != 1 {
		t.Fatalf("security types %v: %v", types, err)
	}
	return types[1], br
}

// TestConsoleWebsocket: the web layer's console endpoint in front of a real
// console registry: the owner is asked for the VNC password, a token stands
// in for it, and the HTTP answers say what is missing.
func TestConsoleWebsocket(t *testing.T) {
	e := newEnv(t)
	alice := e.user("alice", false)
	id := alice.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512").expect(t, 200).props(t)["server"]
	other := alice.post("/servers/create/stopped", "name t\ncpu 1000\nmem 512").expect(t, 200).props(t)["server"]
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := console.NewRegistry(console.WithClock(clock))
	t.Cleanup(func() { reg.Close() })
	if _, err := reg.Attach(id, "s", quietTerminal{}, "pw"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{API: e.svc, Console: reg}))
	defer srv.Close()
	asAlice := func(r *http.Request) { r.SetBasicAuth(alice.login, alice.secret) }
	path := "/servers/" + id + "/vnc"

	t.Run("owner is asked for the password", func(t *testing.T) {
		conn, resp, err := dialConsole(t, srv.URL, path, srv.URL, asAlice)
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.Header.Get("Sec-Websocket-Protocol"); p != "binary" {
			t.Errorf("subprotocol %q, want binary", p)
		}
		if sec, _ := securityOffered(t, conn); sec != 2 {
			t.Fatalf("security type %d offered to the owner, want 2 (VNC password)", sec)
		}
	})
	t.Run("token stands in for the password, once", func(t *testing.T) {
		token := reg.Token(id, alice.id)
		withToken := func(r *http.Request) {
			asAlice(r)
			r.Header.Set("Sec-WebSocket-Protocol", "binary, hearth-token."+token)
		}
		conn, resp, err := dialConsole(t, srv.URL, path, srv.URL, withToken)
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.Header.Get("Sec-Websocket-Protocol"); p != "binary" {
			t.Errorf("subprotocol %q, want binary", p)
		}
		sec, br := securityOffered(t, conn)
		if sec != 1 {
			t.Fatalf("security type %d offered with a token, want 1 (none)", sec)
		}
		conn.Write([]byte{1})
		var result uint32
		if err := binary.Read(br, binary.BigEndian, &result); err != nil || result != 0 {
			t.Fatalf("security result %d: %v", result, err)
		}
		conn.Write([]byte{1}) // ClientInit: shared
		var init struct {
			Width, Height uint16
			Format        [16]byte
			NameLen       uint32
		}
		if err := binary.Read(br, binary.BigEndian, &init); err != nil || init.Width == 0 || init.Height == 0 {
			t.Fatalf("server init %+v: %v", init, err)
		}
		if _, resp, err := dialConsole(t, srv.URL, path, srv.URL, withToken); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the same token again: %v (%v), want 401", err, resp)
		}
	})
	expired := reg.Token(id, alice.id)
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	token := func(t string) func(*http.Request) {
		return func(r *http.Request) { asAlice(r); r.Header.Set("X-Hearth-Console-Token", t) }
	}
	for _, tc := range []struct {
		name, path, origin string
		set                func(*http.Request)
		status             int
	}{
		{"no session no token", path, "", nil, http.StatusUnauthorized},
		{"a token without a session", path, "", func(r *http.Request) { r.Header.Set("X-Hearth-Console-Token", reg.Token(id, alice.id)) }, http.StatusUnauthorized},
		{"expired token", path, "", token(expired), http.StatusUnauthorized},
		{"token of another server", path, "", token(reg.Token(other, alice.id)), http.StatusUnauthorized},
		{"token of another user", path, "", token(reg.Token(id, "someone-else")), http.StatusUnauthorized},
		{"garbage token", path, "", token("abc"), http.StatusUnauthorized},
		{"token in the URL", path + "?token=" + reg.Token(id, alice.id), "", asAlice, http.StatusBadRequest},
		{"foreign origin", path, "http://evil.example", asAlice, http.StatusForbidden},
		{"no console", "/servers/" + other + "/vnc", "", asAlice, http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := dialConsole(t, srv.URL, tc.path, tc.origin, tc.set)
			if err == nil {
				t.Fatal("websocket opened")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("%v (%v), want HTTP %d", err, resp, tc.status)
			}
		})
	}
}

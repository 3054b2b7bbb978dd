package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"hearth/console"
)

// recordingConsole notes which servers the web root asked the console
// service about; it has no consoles (so a request that gets that far is
// answered 409) and accepts the token "tok-SERVER-USER".
type recordingConsole struct {
	mu    sync.Mutex
	calls []string
}

func (c *recordingConsole) CheckToken(server, user, token string) error {
	if token != "tok-"+server+"-"+user {
		return console.ErrBadToken
	}
	return nil
}

func (c *recordingConsole) HasConsole(server string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, server)
	return false
}

func (c *recordingConsole) Serve(conn io.ReadWriteCloser, server string, peer console.Peer) error {
	panic("Serve without a console")
}

func (c *recordingConsole) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func (c *recordingConsole) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return ""
	}
	return c.calls[len(c.calls)-1]
}

// TestConsoleRoute: /servers/S/vnc reaches the console service for the
// server's owner or an admin (Basic auth or dashboard session); a console
// token does not let anyone else in, and never travels in the URL.
func TestConsoleRoute(t *testing.T) {
	e := newEnv(t)
	alice := e.user("alice", false)
	bob := e.user("bob", false)
	root := e.user("root", true)
	id := alice.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512").expect(t, 200).props(t)["server"]
	cons := &recordingConsole{}
	sessions := map[string]string{"alice-cookie": alice.id, "bob-cookie": bob.id}
	srv := httptest.NewServer(New(Config{API: e.svc, Console: cons, Dashboard: http.NotFoundHandler(),
		Session: func(r *http.Request) (string, bool) {
			c, err := r.Cookie("s")
			if err != nil {
				return "", false
			}
			u, ok := sessions[c.Value]
			return u, ok
		}}))
	defer srv.Close()
	for _, tc := range []struct {
		name       string
		set        func(*http.Request)
		want       string
		wantStatus int
	}{
		{"owner basic", func(r *http.Request) { r.SetBasicAuth(alice.login, alice.secret) }, id, 409},
		{"admin basic", func(r *http.Request) { r.SetBasicAuth(root.login, root.secret) }, id, 409},
		{"other basic", func(r *http.Request) { r.SetBasicAuth(bob.login, bob.secret) }, "", 401},
		{"owner session", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "s", Value: "alice-cookie"}) }, id, 409},
		{"other session", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "s", Value: "bob-cookie"}) }, "", 401},
		{"anonymous", func(r *http.Request) {}, "", 401},
		{"anonymous with a token", func(r *http.Request) { r.Header.Set("X-Hearth-Console-Token", "tok-"+id+"-"+alice.id) }, "", 401},
		{"other basic with the owner's token", func(r *http.Request) {
			r.SetBasicAuth(bob.login, bob.secret)
			r.Header.Set("X-Hearth-Console-Token", "tok-"+id+"-"+alice.id)
		}, "", 401},
		{"owner with their token", func(r *http.Request) {
			r.SetBasicAuth(alice.login, alice.secret)
			r.Header.Set("X-Hearth-Console-Token", "tok-"+id+"-"+alice.id)
		}, id, 409},
		{"owner with another user's token", func(r *http.Request) {
			r.SetBasicAuth(alice.login, alice.secret)
			r.Header.Set("X-Hearth-Console-Token", "tok-"+id+"-"+bob.id)
		}, "", 401},
		{"owner with a token in the URL", func(r *http.Request) {
			r.SetBasicAuth(alice.login, alice.secret)
			r.URL.RawQuery = "token=tok-" + id + "-" + alice.id
		}, "", 400},
		{"wrong secret", func(r *http.Request) { r.SetBasicAuth(alice.login, "wrong") }, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := cons.count()
			req, _ := http.NewRequest("GET", srv.URL+"/servers/"+strings.ToUpper(id)+"/vnc", nil)
			tc.set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.want != "" && cons.last() != tc.want {
				t.Errorf("console got %q, want %q", cons.last(), tc.want)
			}
			if tc.want == "" && cons.count() != calls {
				t.Errorf("console reached without credentials")
			}
		})
	}
	// Without a console service the websocket path is 404; other paths go to the dashboard.
	plain := httptest.NewServer(New(Config{API: e.svc}))
	defer plain.Close()
	resp, _ := http.Get(plain.URL + "/servers/" + id + "/vnc")
	if resp.StatusCode != 404 || resp.Header.Get("X-Elastic-Error") != "missing" {
		t.Errorf("no console service: %d", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/login")
	if resp.StatusCode != 404 || resp.Header.Get("X-Elastic-Error") != "" {
		t.Errorf("dashboard path not handed to the dashboard: %d %v", resp.StatusCode, resp.Header)
	}
}

package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recordingConsole notes what the web root told the console service.
type recordingConsole struct {
	mu    sync.Mutex
	calls []string
}

func (c *recordingConsole) ServeWebsocket(w http.ResponseWriter, r *http.Request, server string, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	who := "other"
	if owner {
		who = "owner"
	}
	c.calls = append(c.calls, server+" "+who)
	w.WriteHeader(http.StatusTeapot)
}

func (c *recordingConsole) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return ""
	}
	return c.calls[len(c.calls)-1]
}

// TestConsoleRoute: /servers/S/vnc goes to the console service with owner set
// only for the server's owner or an admin (Basic auth or dashboard session);
// anyone else (unauthenticated included) is passed on as a non-owner, whom the
// console service asks for a token.
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
		{"owner basic", func(r *http.Request) { r.SetBasicAuth(alice.login, alice.secret) }, id + " owner", 418},
		{"admin basic", func(r *http.Request) { r.SetBasicAuth(root.login, root.secret) }, id + " owner", 418},
		{"other basic", func(r *http.Request) { r.SetBasicAuth(bob.login, bob.secret) }, id + " other", 418},
		{"owner session", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "s", Value: "alice-cookie"}) }, id + " owner", 418},
		{"other session", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "s", Value: "bob-cookie"}) }, id + " other", 418},
		{"anonymous", func(r *http.Request) {}, id + " other", 418},
		{"wrong secret", func(r *http.Request) { r.SetBasicAuth(alice.login, "wrong") }, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cons.last()
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
			if tc.want == "" && cons.last() != before {
				t.Errorf("console reached with bad credentials")
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

package console

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hearth/assets"
)

// consoleServer serves the static assets and the websocket bridge as the
// web layer does; owner says whether requests count as the owner's.
// POST /test/restart runs restart (the browser test stops and starts the
// server's console with it).
func consoleServer(t *testing.T, m *Registry, owner bool, restart func()) *httptest.Server {
	t.Helper()
	static, err := fs.Sub(assets.Static, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /servers/{server}/vnc", webBridge(m, owner))
	if !owner { // the dashboard's part: a fresh single-use token per connection
		mux.HandleFunc("GET /ui/servers/{server}/console.json", func(w http.ResponseWriter, r *http.Request) {
			server := r.PathValue("server")
			json.NewEncoder(w).Encode(map[string]any{"server": server, "hasPassword": true, "token": m.Token(server, tokenUser)})
		})
	}
	if restart != nil {
		mux.HandleFunc("POST /test/restart", func(w http.ResponseWriter, r *http.Request) { restart() })
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// needBrowser skips unless Node, playwright-core, Debian's Chromium and the
// noVNC assets (`./task assets`) are all there.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("browser test needs node on PATH")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("browser test needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
	}
	if _, err := os.Stat("../node_modules/playwright-core"); err != nil {
		t.Skip("browser test needs playwright-core in node_modules (./task assets)")
	}
	if _, err := fs.Stat(assets.Static, "static/novnc/core/rfb.js"); err != nil {
		t.Skip("browser test needs noVNC in assets/static/novnc (./task assets)")
	}
}

func TestBrowser(t *testing.T) {
	needBrowser(t)
	for _, tc := range []struct {
		name     string
		owner    bool // false: the dashboard hands the page a console token
		password string
	}{
		{"token", false, ""},
		{"password", true, "pw123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testRegistry(t)
			s, _ := attach(t, m, "srv-"+tc.name, "pw123")
			s.echo = true
			srv := consoleServer(t, m, tc.owner, func() {
				m.Detach("srv-" + tc.name)
				if _, err := m.Attach("srv-"+tc.name, "guest-srv-"+tc.name, s, "pw123"); err != nil {
					t.Error(err)
				}
			})
			q := url.Values{"server": {"srv-" + tc.name}, "name": {"browser " + tc.name}}
			shots, err := filepath.Abs(filepath.Join("..", "test-artifacts", "console", t.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(shots, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("node", "testdata/browser.mjs", srv.URL+"/static/console/index.html?"+q.Encode(), shots, tc.password)
			cmd.Stderr = testWriter{t}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("browser script: %v\n%s", err, out)
			}
			var res struct {
				Before, After           struct{ N, Width, Height int }
				Status, Title, Retrying string
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("browser script output %q: %v", out, err)
			}
			t.Logf("browser saw %+v; screenshots in %s", res, shots)
			if res.Before.Width != DefaultColumns*cellWidth || res.Before.Height != (DefaultRows+1)*cellHeight {
				t.Errorf("canvas %d×%d", res.Before.Width, res.Before.Height)
			}
			if res.Before.N < 200 {
				t.Errorf("only %d lit pixels on the canvas before typing: the status line is not drawn", res.Before.N)
			}
			if res.Status != "Connected" {
				t.Errorf("status %q", res.Status)
			}
			if !strings.Contains(res.Retrying, "retrying in 1 s") {
				t.Errorf("status after the console closed: %q, want a retry in 1 s", res.Retrying)
			}
			s.waitInput(t, "echo $((6*7)) typed-in-browser\r")
			s.waitInput(t, "pasted-line ünï €✓") // UTF-8 through the extended clipboard
			s.waitInput(t, "\x1b[3;7~")          // Ctrl-Alt-Del from the toolbar
			s.waitInput(t, "\x1b[15~")           // F5 from the key menu
			waitScreen(t, m.console("srv-"+tc.name), "echo $((6*7)) typed-in-browser")
		})
	}
}

// testWriter sends a subprocess's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

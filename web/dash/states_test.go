package dash

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"hearth/web/eh"
)

// TestShutdownShownAsItHappens: after Shut down the server is "shutting down
// (N s left)" in the list and on its page, with only Stop left to press; the
// flash announcing it waits for the server to be stopped (the page's script
// follows it), and the page says stopped once the guest is gone.
func TestShutdownShownAsItHappens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boot, err := e.service.CreateDrive(ctx, e.admin, eh.Props{"name": "web1 boot", "size": "4M"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := e.service.CreateServer(ctx, e.admin, eh.Props{"name": "web1", "cpu": "1000", "mem": "256", "persistent": "true",
		"ide:0:0": boot["drive"], "boot": "ide:0:0"}, true)
	if err != nil || srv["status"] != "active" {
		t.Fatalf("create: %v %v", srv["status"], err)
	}
	id := srv["server"]
	b := e.browser()
	b.login("root", e.secret)
	b.get("/ui/servers/" + id)

	r := b.post("/ui/servers/"+id+"/shutdown", url.Values{"back": {"/ui/servers/" + id}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("shutdown: %d %s", r.status, r.body)
	}
	page := b.get(r.location).body
	flash := regexp.MustCompile(`<div class="flash flash-info" data-await-server="` + id + `" data-await="stopped" data-done="Server web1 shut down.">Shutting down server web1…</div>`)
	if !flash.MatchString(page) {
		t.Errorf("the page after shutdown lacks the awaiting flash:\n%s", section(page, `class="flashes"`))
	}
	left := regexp.MustCompile(`shutting down \((\d+) s left\)`)
	head := section(page, `class="page-head"`)
	if m := left.FindStringSubmatch(head); m == nil || m[1] == "0" || !strings.Contains(head, `data-state="shutting-down"`) {
		t.Errorf("page head while shutting down:\n%s", head)
	}
	if strings.Contains(head, "/shutdown") || strings.Contains(head, "/pause") || !strings.Contains(head, `href="/ui/servers/`+id+`/stop?back=`) {
		t.Errorf("while shutting down, only Stop (through its question) should be offered:\n%s", head)
	}
	row := section(b.get("/ui/servers/rows").body, `id="server-`+id+`"`)
	if !left.MatchString(row) || !strings.Contains(row, `data-state="shutting-down"`) {
		t.Errorf("list row while shutting down:\n%s", row)
	}

	// The script gets the same flash as JSON.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/servers/"+id+"/shutdown", strings.NewReader(url.Values{"back": {"/ui/servers"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Hearth-Fetch", "1")
	req.Header.Set("X-CSRF-Token", b.csrf)
	var ans struct {
		Message, Kind string
		Await         *awaitFlash
	}
	if err := json.Unmarshal([]byte(b.do(req).body), &ans); err != nil || ans.Kind != "info" || ans.Await == nil ||
		*ans.Await != (awaitFlash{Server: id, States: "stopped", Done: "Server web1 shut down."}) {
		t.Errorf("fetched shutdown answer %+v %v", ans, err)
	}

	// Stop's page asks first, offering the way back.
	if ask := b.get("/ui/servers/" + id + "/stop?back=%2Fui%2Fservers"); ask.status != http.StatusOK || !strings.Contains(ask.body, "Stop server web1 now?") ||
		!strings.Contains(ask.body, `name="confirmed" value="yes"`) || !strings.Contains(ask.body, `<a class="btn" href="/ui/servers">Cancel</a>`) {
		t.Errorf("stop's page: %d\n%s", ask.status, section(ask.body, "<main"))
	}
	if err := e.service.ServerAction(ctx, e.admin, id, "stop"); err != nil { // the guest is gone
		t.Fatal(err)
	}
	head = section(b.get("/ui/servers/"+id).body, `class="page-head"`)
	if !strings.Contains(head, `data-state="stopped"`) || !strings.Contains(head, `>stopped</span>`) {
		t.Errorf("page head once stopped:\n%s", head)
	}
}

// TestStartFailedShown: a start that fails says so in plain words in the
// list and on the page, and the activity log has the request with who asked
// and the failure.
func TestStartFailedShown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv, err := e.service.CreateServer(ctx, e.admin, eh.Props{"name": "empty1", "cpu": "1000", "mem": "256", "persistent": "true"}, false)
	if err != nil {
		t.Fatal(err)
	}
	id := srv["server"]
	b := e.browser()
	b.login("root", e.secret)
	b.get("/ui/servers")
	if r := b.post("/ui/servers/"+id+"/start", url.Values{"back": {"/ui/servers"}}); r.status != http.StatusSeeOther {
		t.Fatalf("start: %d", r.status)
	}
	info, _ := e.service.ServerInfo(ctx, e.admin, id)
	if info["status"] != "dead" || info["error"] == "" {
		t.Fatalf("a server without a boot drive after start: %v", info)
	}
	row := section(b.get("/ui/servers/rows").body, `id="server-`+id+`"`)
	if !strings.Contains(row, `class="badge badge-start-failed">start failed</span>`) || !strings.Contains(row, html.EscapeString(info["error"])) {
		t.Errorf("list row after a failed start (error %q):\n%s", info["error"], row)
	}
	page := b.get("/ui/servers/" + id).body
	if !strings.Contains(page, "<strong>Start failed:</strong> "+html.EscapeString(info["error"])) {
		t.Errorf("server page lacks the reason %q", info["error"])
	}
	activity := section(page, `class="activity"`)
	for _, want := range []string{"start requested — by root", "stopped → dead: " + html.EscapeString(info["error"])} {
		if !strings.Contains(activity, want) {
			t.Errorf("activity lacks %q:\n%s", want, activity)
		}
	}
}

// section returns the part of page from the element holding marker to
// its end, roughly: enough to look at one row, head or list.
func section(page, marker string) string {
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	if j := strings.Index(rest, "</tr>"); j >= 0 && strings.HasPrefix(marker, `id="server-`) {
		return rest[:j]
	}
	if len(rest) > 3000 {
		rest = rest[:3000]
	}
	return rest
}

// TestPendingStartShown: a server the dashboard starts once its boot drive
// is copied is "starting" meanwhile, and "start failed" with the reason when
// that start could not be made.
func TestPendingStartShown(t *testing.T) {
	e := newEnv(t)
	srv, err := e.service.CreateServer(context.Background(), e.admin, eh.Props{"name": "web1", "cpu": "1000", "mem": "256"}, false)
	if err != nil {
		t.Fatal(err)
	}
	id := srv["server"]
	b := e.browser()
	b.login("root", e.secret)
	e.dash.starts.set(id, pendingStart{waiting: true})
	row := section(b.get("/ui/servers/rows").body, `id="server-`+id+`"`)
	if !strings.Contains(row, `data-state="starting"`) || !strings.Contains(row, `>starting</span>`) || !strings.Contains(row, "waiting for its boot drive to be copied") || strings.Contains(row, "/start") {
		t.Errorf("row while waiting to start:\n%s", row)
	}
	e.dash.starts.set(id, pendingStart{failure: "its boot drive could not be read: gone"})
	head := section(b.get("/ui/servers/"+id).body, `class="page-head"`)
	if !strings.Contains(head, `>start failed</span>`) || !strings.Contains(head, "<strong>Start failed:</strong> its boot drive could not be read: gone") {
		t.Errorf("page head after the pending start failed:\n%s", head)
	}
}

// TestCreateFlashWaitsForRunning: the flash of a server created with "Start
// it" stays until the server is running, and says so if its start fails.
func TestCreateFlashWaitsForRunning(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	r := b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}, "start": {"true"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	page := b.get(r.location).body
	want := `<div class="flash flash-info" data-await-server="` + id + `" data-await="active" data-done="Server web1 created. It is running." ` +
		`data-failed="Server web1 could not start: its page says why.">Server web1 created. Starting it…</div>`
	if !strings.Contains(page, want) {
		t.Errorf("the page after create-and-start lacks the awaiting flash:\n%s", section(page, `class="flashes"`))
	}
	// Created without starting: a plain flash, nothing to wait for.
	r = b.post("/ui/servers/new", url.Values{"name": {"db1"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}})
	if page := b.get(r.location).body; !strings.Contains(page, `<div class="flash flash-ok">Server db1 created.</div>`) {
		t.Errorf("the page after create lacks the plain flash:\n%s", section(page, `class="flashes"`))
	}
}

package dash

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/internal/ratelimit"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
	"hearth/web/api"
	"hearth/web/eh"
)

// clock is the real time plus an offset the test moves forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// env is a dashboard over a real store and API service, served on a
// loopback port.
type env struct {
	t       testing.TB
	store   *storage.Store
	service *api.Service
	dash    *Dashboard
	srv     *httptest.Server
	clock   *clock
	admin   api.Caller
	secret  string // the admin's
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clk := &clock{}
	store, err := storage.Open(t.TempDir(), storage.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// The guest layer is the real Manager over the fake hypervisor, whose
	// guests report a little traffic and I/O.
	backend := vmmtest.NewBackend()
	backend.FixedCounters = &guest.Counters{
		NICs:  map[int]guest.NICCounters{0: {RxBytes: 1 << 20, TxBytes: 3 << 10}},
		Disks: map[string]guest.DiskCounters{"ide:0:0": {ReadBytes: 40 << 10, WriteBytes: 4 << 10}},
	}
	backend.FixedUsage = &guest.Usage{CPUNanos: 3e9, MemoryBytes: 48 << 20}
	guests, err := vmm.NewManager(context.Background(), backend, store, vmm.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	svc := api.New(store, api.WithGuests(guests), api.WithConsoleLog(guests), api.WithLogger(logtest.Logger(t)))
	minted := 0
	d, err := New(Config{Backend: svc, Sessions: store, History: store, ConsoleToken: func(server, user string) string {
		minted++
		return fmt.Sprintf("tok-%s-%s-%d", server, user, minted)
	}, Runtime: "io.containerd.runc.v2", Accelerator: "tcg", DataDir: t.TempDir(), Logger: logtest.Logger(t), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	u, secret, err := store.CreateUser(context.Background(), "root", true)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: store, service: svc, dash: d, srv: srv, clock: clk,
		admin: api.Caller{ID: u.ID, Name: u.Name, Admin: true}, secret: secret}
}

// user adds a plain user and returns it with its secret.
func (e *env) user(name string) (api.Caller, string) {
	e.t.Helper()
	u, secret, err := e.store.CreateUser(context.Background(), name, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return api.Caller{ID: u.ID, Name: u.Name}, secret
}

// emptyLibraryImage publishes an empty 4 MiB drive to everyone's library,
// as `hearth image import` would publish an image, owned by the admin.
func (e *env) emptyLibraryImage(name string) storage.Drive {
	e.t.Helper()
	d, err := e.store.CreateDrive(context.Background(), storage.Drive{Owner: e.admin.ID, Name: name, Size: 4 << 20, Library: true,
		Props: map[string]string{"readers": storage.Everyone}})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// browser is one client with its cookies and the CSRF token of its session.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type response struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) response {
	b.e.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, body: string(body), location: res.Header.Get("Location"), header: res.Header}
	if m := regexp.MustCompile(`data-csrf="([^"]+)"`).FindStringSubmatch(r.body); m != nil {
		b.csrf = m[1]
	}
	return r
}

func (b *browser) get(path string) response {
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form; the session's CSRF token is added unless the form has one.
func (b *browser) post(path string, form url.Values) response {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// login logs in through the form and fails the test if it does not work.
func (b *browser) login(login, secret string) {
	b.e.t.Helper()
	if r := b.tryLogin(login, secret); r.status != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: %d %s", login, r.status, r.body)
	}
	if r := b.get("/ui/servers"); r.status != http.StatusOK || b.csrf == "" {
		b.e.t.Fatalf("servers page after login: %d", r.status)
	}
}

func (b *browser) tryLogin(login, secret string) response {
	page := b.get("/login")
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page.body)
	if token == nil {
		b.e.t.Fatalf("login page has no form token: %s", page.body)
	}
	return b.post("/login", url.Values{"token": {token[1]}, "login": {login}, "secret": {secret}, "csrf": nil})
}

// createStarted creates a running server through the create form (the
// browser logged in as the admin), with an empty 64 MiB boot drive (NAME
// boot) and no network, and returns its info.
func (b *browser) createStarted(name string) eh.Props {
	b.e.t.Helper()
	r := b.post("/ui/servers/new", url.Values{"name": {name}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}, "start": {"true"}})
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("create %s: %d %s", name, r.status, r.body)
	}
	info, err := b.e.service.ServerInfo(context.Background(), b.e.admin, strings.TrimPrefix(r.location, "/ui/servers/"))
	if err != nil || info["status"] != "active" {
		b.e.t.Fatalf("%s after create: %v %v", name, info, err)
	}
	return info
}

// errorNextTo returns the message shown next to a form field.
func errorNextTo(body, field string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(field) + `-error">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if r := b.get("/ui/servers"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, "/login?next=") {
		t.Fatalf("anonymous servers page: %d %q", r.status, r.location)
	}
	if r := b.tryLogin("root", "wrong"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong user name or secret") {
		t.Fatalf("wrong secret: %d", r.status)
	}
	b.login(e.admin.ID, e.secret) // by UUID
	b2 := e.browser()
	b2.login("root", e.secret) // by name
	r := b.get("/ui/servers")
	if !strings.Contains(r.body, "root") || !strings.Contains(r.body, "runc containers") {
		t.Fatalf("servers page lacks the user or runtime: %s", r.body)
	}
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL)) {
		if c.Name == sessionCookie && c.Value == "" {
			t.Fatal("empty session cookie")
		}
	}
	if r := b.post("/logout", url.Values{"csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Fatalf("logout with a wrong token: %d", r.status)
	}
	if r := b.post("/logout", nil); r.status != http.StatusSeeOther || r.location != "/login?bye" {
		t.Fatalf("logout: %d %q", r.status, r.location)
	}
	if r := b.get("/ui/servers"); r.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", r.status)
	}
	// A form sent after the session ended leads to the login page, back to where it was sent from.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/new", strings.NewReader("name=x&size=1M"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", e.srv.URL+"/ui/drives")
	if r := b.do(req); r.status != http.StatusSeeOther || r.location != "/login?next=%2Fui%2Fdrives" {
		t.Fatalf("form after logout: %d %q", r.status, r.location)
	}
	if r := b2.get("/ui/servers"); r.status != http.StatusOK {
		t.Fatalf("the other session ended too: %d", r.status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t)
	e.dash.cfg.Secure = true // as under TLS
	b := e.browser()
	page := b.get("/login")
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page.body)
	// The jar keeps Secure cookies away from http://, so send the form token by hand.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login", strings.NewReader(url.Values{
		"token": {token[1]}, "login": {"root"}, "secret": {e.secret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: token[1]})
	r := b.do(req)
	var set string
	for _, c := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			set = c
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Secure", "Path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
}

func TestLoginFormNeedsItsToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := b.post("/login", url.Values{"login": {"root"}, "secret": {e.secret}, "csrf": nil})
	if r.status != http.StatusForbidden {
		t.Fatalf("login without the form token: %d", r.status)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for i := 0; i < ratelimit.LoginMaxFailures; i++ {
		if r := b.tryLogin("root", "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	r := b.tryLogin("root", e.secret)
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed logins") {
		t.Fatalf("correct secret after %d failures: %d", ratelimit.LoginMaxFailures, r.status)
	}
	e.clock.advance(ratelimit.LoginWindow)
	if r := b.tryLogin("root", e.secret); r.status != http.StatusSeeOther {
		t.Fatalf("after the window: %d", r.status)
	}
}

// One user's failed logins never lock out another user from the same
// address; parallel wrong guesses get no more tries than sequential ones.
func TestLoginRateLimitIsPerUser(t *testing.T) {
	e := newEnv(t)
	_, bobSecret := e.user("bob")
	b := e.browser()
	for range ratelimit.LoginMaxFailures {
		b.tryLogin("root", "wrong")
	}
	if r := b.tryLogin("root", e.secret); r.status != http.StatusTooManyRequests {
		t.Fatalf("root after %d failures: %d, want 429", ratelimit.LoginMaxFailures, r.status)
	}
	if r := b.tryLogin("bob", bobSecret); r.status != http.StatusSeeOther {
		t.Fatalf("bob from the same address after root's failures: %d, want logged in", r.status)
	}
}

// restart replaces the dashboard by a new one on the same store, as a
// restart of Hearth does.
func (e *env) restart() {
	e.t.Helper()
	e.srv.Close()
	e.dash.Close()
	d, err := New(Config{Backend: e.service, Sessions: e.store, History: e.store, Runtime: "io.containerd.runc.v2", DataDir: e.t.TempDir(), Logger: logtest.Logger(e.t), Now: e.clock.now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	e.dash, e.srv = d, httptest.NewServer(d)
	e.t.Cleanup(e.srv.Close)
}

// Sessions outlive a restart of Hearth; the database holds only hashes of
// their ids; a new secret ends the user's sessions.
func TestSessionsSurviveRestartAndEndWithTheSecret(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	u, _ := url.Parse(e.srv.URL)
	var id string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			id = c.Value
		}
	}
	e.restart()
	if r := b.get("/ui/servers"); r.status != http.StatusOK {
		t.Fatalf("the session after a restart: %d, want the page", r.status)
	}
	if _, err := e.store.Session(context.Background(), id); err != nil {
		t.Fatalf("the session is not in the store: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(e.store.Dir(), "hearth.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(e.store.Dir(), "hearth.db-wal"))
	if id == "" || bytes.Contains(append(raw, wal...), []byte(id)) {
		t.Fatal("the session id is stored as it is, not hashed")
	}
	if _, _, err := e.store.RotateSecret(context.Background(), "root"); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/ui/servers"); r.status != http.StatusSeeOther {
		t.Fatalf("the session after a new secret: %d, want the login page", r.status)
	}
	if r := b.tryLogin("root", e.secret); r.status != http.StatusUnauthorized {
		t.Fatalf("the old secret: %d, want 401", r.status)
	}
}

func TestIdleExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	e.clock.advance(20 * time.Minute)
	if r := b.get("/ui/drives"); r.status != http.StatusOK {
		t.Fatalf("used after 20 minutes: %d", r.status)
	}
	e.clock.advance(31 * time.Minute)
	if r := b.get("/ui/drives"); r.status != http.StatusSeeOther {
		t.Fatalf("idle for 31 minutes: %d", r.status)
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	form := url.Values{"name": {"d1"}, "size": {"1M"}}
	for _, token := range []string{"", "forged"} {
		f := url.Values{"csrf": {token}}
		for k, v := range form {
			f[k] = v
		}
		if r := b.post("/ui/drives/new", f); r.status != http.StatusForbidden {
			t.Errorf("token %q: %d", token, r.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/new", strings.NewReader(url.Values{
		"csrf": {b.csrf}, "name": {"d1"}, "size": {"1M"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if r := b.do(req); r.status != http.StatusForbidden {
		t.Errorf("cross-origin post: %d", r.status)
	}
	drives, _ := e.service.DrivesInfo(context.Background(), e.admin)
	if len(drives) != 0 {
		t.Fatalf("a refused form created %d drives", len(drives))
	}
	if r := b.post("/ui/drives/new", form); r.status != http.StatusSeeOther {
		t.Fatalf("with the token: %d %s", r.status, r.body)
	}
}

func TestServerLifecycleThroughForms(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)

	r := b.get("/ui/servers/new")
	if r.status != http.StatusOK || !strings.Contains(r.body, "At most 8 characters") {
		t.Fatalf("create page: %d", r.status)
	}
	r = b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"auto"}, "password": {"pass1234"}, "persistent": {"true"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, "/ui/servers/") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	info, err := e.service.ServerInfo(context.Background(), e.admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if info["status"] != "stopped" || info["ide:0:0"] == "" || info["boot"] != "ide:0:0" || info["cpu"] != "1000" || info["password"] != "pass1234" {
		t.Fatalf("created server: %v", info)
	}
	page := b.get(r.location)
	if !strings.Contains(page.body, "Server web1 created.") || !strings.Contains(page.body, "web1 boot") {
		t.Fatalf("server page after create lacks the flash or the drive: %s", page.body)
	}

	// Start in the background as the script does: JSON back, no redirect.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/servers/"+id+"/start", strings.NewReader("back=/ui/servers"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Hearth-Fetch", "1")
	req.Header.Set("X-CSRF-Token", b.csrf)
	// The flash waits for the server to be running (or to fail to start).
	if r := b.do(req); r.status != http.StatusOK || !strings.Contains(r.body, `"message":"Starting server web1…"`) ||
		!strings.Contains(r.body, `"states":"active","done":"Server web1 started.","failed":"Server web1 could not start: its page says why."`) {
		t.Fatalf("fetch start: %d %s", r.status, r.body)
	}
	rows := b.get("/ui/servers/rows")
	if !strings.Contains(rows.body, "badge-active") || strings.Contains(rows.body, "<html") {
		t.Fatalf("live rows fragment: %s", rows.body)
	}
	live := b.get("/ui/servers/" + id + "/live")
	if !strings.Contains(live.body, "Network in") || !strings.Contains(live.body, "/static/console/?server="+id) {
		t.Fatalf("live server fragment lacks counters or the console button: %s", live.body)
	}
	if !strings.Contains(live.body, "Activity") || !strings.Contains(live.body, `server &#34;web1&#34; created`) {
		t.Fatalf("live server fragment lacks the activity log: %s", live.body)
	}
	var cj, again map[string]any
	if err := json.Unmarshal([]byte(b.get("/ui/servers/"+id+"/console.json").body), &cj); err != nil || cj["password"] != "pass1234" {
		t.Fatalf("console.json: %v %v", cj, err)
	}
	// A console token for this user and server, a fresh one each time.
	json.Unmarshal([]byte(b.get("/ui/servers/"+id+"/console.json").body), &again)
	if tok, _ := cj["token"].(string); !strings.HasPrefix(tok, "tok-"+id+"-"+e.admin.ID+"-") || again["token"] == tok {
		t.Fatalf("console.json tokens %v then %v: want a fresh token of this server and user each time", cj["token"], again["token"])
	}

	// A running server takes live keys; the page offers only those.
	r = b.post("/ui/servers/"+id+"/set", url.Values{"name": {"web2"}, "cpu": {"1500"}, "password": {"pass1234"},
		"tags": {"prod"}, "persistent-shown": {"1"}, "persistent": {"true"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("live set: %d %s", r.status, r.body)
	}
	info, _ = e.service.ServerInfo(context.Background(), e.admin, id)
	if info["name"] != "web2" || info["cpu"] != "1500" || info["tags"] != "prod" {
		t.Fatalf("after live set: %v", info)
	}
	// A key that needs a stopped server (sent by a crafted form) is refused next to its field.
	r = b.post("/ui/servers/"+id+"/set", url.Values{"mem": {"2048"}})
	if r.status != http.StatusBadRequest || errorNextTo(r.body, "mem") == "" {
		t.Fatalf("mem on a running server: %d, error next to mem %q", r.status, errorNextTo(r.body, "mem"))
	}

	for _, action := range []string{"pause", "resume"} {
		if r := b.post("/ui/servers/"+id+"/"+action, url.Values{"back": {"/ui/servers"}}); r.status != http.StatusSeeOther || r.location != "/ui/servers" {
			t.Fatalf("%s: %d %q", action, r.status, r.location)
		}
	}
	// Stop (a power cut) asks first when the form does not say it was confirmed.
	if r := b.post("/ui/servers/"+id+"/stop", url.Values{"back": {"/ui/servers"}}); r.status != http.StatusOK || !strings.Contains(r.body, "Stop server web2 now?") {
		t.Fatalf("stop without confirmation: %d", r.status)
	}
	if info, _ = e.service.ServerInfo(context.Background(), e.admin, id); info["status"] != "active" {
		t.Fatalf("stop without confirmation stopped the server: %s", info["status"])
	}
	if r := b.post("/ui/servers/"+id+"/stop", url.Values{"back": {"/ui/servers"}, "confirmed": {"yes"}}); r.status != http.StatusSeeOther || r.location != "/ui/servers" {
		t.Fatalf("stop: %d %q", r.status, r.location)
	}
	info, _ = e.service.ServerInfo(context.Background(), e.admin, id)
	if info["status"] != "stopped" {
		t.Fatalf("after stop: %s", info["status"])
	}
	// Destroy asks first when the form does not say it was confirmed.
	if r := b.post("/ui/servers/"+id+"/destroy", nil); r.status != http.StatusOK || !strings.Contains(r.body, "Destroy server web2?") {
		t.Fatalf("destroy without confirmation: %d", r.status)
	}
	if r := b.post("/ui/servers/"+id+"/destroy", url.Values{"confirmed": {"yes"}}); r.status != http.StatusSeeOther || r.location != "/ui/servers" {
		t.Fatalf("destroy: %d %q", r.status, r.location)
	}
	if _, err := e.service.ServerInfo(context.Background(), e.admin, id); err == nil {
		t.Fatal("server still there after destroy")
	}
}

func TestServerFormErrorsNextToField(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	base := url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"}, "drivesize": {"64M"}, "nic0": {"auto"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, val := range base {
			f[key] = val
		}
		f.Set(k, v)
		return f
	}
	cases := []struct{ key, value, field, want string }{
		{"password", "123456789", "password", "password"},
		{"drivesize", "lots", "drivesize", "lots"},
		{"size", "custom", "cpu", "cpu"}, // custom with no CPU given
	}
	for _, c := range cases {
		r := b.post("/ui/servers/new", with(c.key, c.value))
		msg := errorNextTo(r.body, c.field)
		t.Logf("%s=%q → next to %s: %q", c.key, c.value, c.field, msg)
		if r.status != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("%s=%q: %d, next to %s: %q", c.key, c.value, r.status, c.field, msg)
		}
		if !regexp.MustCompile(`id="` + c.field + `"[^>]*aria-describedby="[^"]*` + c.field + `-error`).MatchString(r.body) {
			t.Errorf("%s: the field is not described by its error", c.field)
		}
	}
	servers, _ := e.service.ServersInfo(context.Background(), e.admin)
	drives, _ := e.service.DrivesInfo(context.Background(), e.admin)
	if len(servers) != 0 || len(drives) != 0 {
		t.Fatalf("refused forms left %d servers and %d drives", len(servers), len(drives))
	}
}

func TestOtherUsersObjectsAreMissing(t *testing.T) {
	e := newEnv(t)
	alice, aliceSecret := e.user("alice")
	ctx := context.Background()
	srv, err := e.service.CreateServer(ctx, e.admin, eh.Props{"name": "secret-box", "cpu": "1000", "mem": "256"}, false)
	if err != nil {
		t.Fatal(err)
	}
	drv, err := e.service.CreateDrive(ctx, e.admin, eh.Props{"name": "root-disk", "size": "1M"})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login(alice.Name, aliceSecret)
	if r := b.get("/ui/servers"); strings.Contains(r.body, "secret-box") {
		t.Fatal("alice sees root's server in the list")
	}
	if r := b.get("/ui/servers/" + srv["server"]); r.status != http.StatusNotFound {
		t.Fatalf("alice opens root's server: %d", r.status)
	}
	if r := b.get("/ui/servers/" + srv["server"] + "/console.json"); r.status != http.StatusNotFound {
		t.Fatalf("alice's console.json of root's server: %d", r.status)
	}
	if r := b.post("/ui/servers/"+srv["server"]+"/destroy", url.Values{"confirmed": {"yes"}}); r.status != http.StatusSeeOther {
		t.Fatalf("alice destroys root's server: %d", r.status)
	}
	if _, err := e.service.ServerInfo(ctx, e.admin, srv["server"]); err != nil {
		t.Fatal("alice destroyed root's server")
	}
	if r := b.get("/ui/drives/" + drv["drive"] + "/download"); r.status != http.StatusNotFound {
		t.Fatalf("alice downloads root's drive: %d", r.status)
	}
	if r := b.get("/ui/users"); r.status != http.StatusForbidden || !strings.Contains(r.body, "Only an admin manages users.") {
		t.Fatalf("alice opens the users page: %d, want 403 saying only an admin manages users", r.status)
	}
	mine, err := e.service.CreateServer(ctx, alice, eh.Props{"name": "alices-box", "cpu": "1000", "mem": "256"}, false)
	if err != nil {
		t.Fatal(err)
	}
	root := e.browser()
	root.login("root", e.secret)
	list := root.get("/ui/servers").body
	if !strings.Contains(list, "alices-box") || !strings.Contains(list, `data-label="Owner">alice<`) || !strings.Contains(list, "All servers") {
		t.Fatal("the admin does not see alice's server with its owner")
	}
	if r := root.get("/ui/servers/" + mine["server"]); r.status != http.StatusOK {
		t.Fatalf("the admin opens alice's server: %d", r.status)
	}
	if r := b.get("/ui/servers"); strings.Contains(r.body, `href="/ui/users"`) {
		t.Fatal("alice's menu offers the users page")
	}
}

func TestDrivesPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	if r := b.post("/ui/drives/new", url.Values{"name": {"data"}, "size": {"lots"}}); r.status != http.StatusBadRequest || !strings.Contains(errorNextTo(r.body, "size"), "lots") {
		t.Fatalf("bad size: %d, next to size: %q", r.status, errorNextTo(r.body, "size"))
	}

	// Upload as the script does: create, then gzip-compressed chunks.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/new", strings.NewReader("name=upload&size=2M"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Hearth-Fetch", "1")
	req.Header.Set("X-CSRF-Token", b.csrf)
	r := b.do(req)
	var created map[string]any
	if err := json.Unmarshal([]byte(r.body), &created); err != nil || created["drive"] == nil {
		t.Fatalf("fetch create: %d %s", r.status, r.body)
	}
	id := created["drive"].(string)
	content := bytes.Repeat([]byte("hearth!\n"), 128<<10) // 1 MiB
	for off := 0; off < len(content); off += 256 << 10 {
		var zipped bytes.Buffer
		zw := gzip.NewWriter(&zipped)
		zw.Write(content[off : off+256<<10])
		zw.Close()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/"+id+"/write/"+itoa(off), &zipped)
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("X-Hearth-Fetch", "1")
		req.Header.Set("X-CSRF-Token", b.csrf)
		if r := b.do(req); r.status != http.StatusOK {
			t.Fatalf("chunk at %d: %d %s", off, r.status, r.body)
		}
	}
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/"+id+"/write/0", strings.NewReader("x"))
	req.Header.Set("X-Hearth-Fetch", "1")
	if r := b.do(req); r.status != http.StatusForbidden {
		t.Fatalf("chunk without the CSRF header: %d", r.status)
	}
	dl := b.get("/ui/drives/" + id + "/download")
	if dl.status != http.StatusOK || len(dl.body) != 2<<20 || !bytes.Equal([]byte(dl.body[:len(content)]), content) ||
		!strings.Contains(dl.header.Get("Content-Disposition"), `filename="upload.img"`) {
		t.Fatalf("download: %d, %d bytes, %q", dl.status, len(dl.body), dl.header.Get("Content-Disposition"))
	}
	if r := b.post("/ui/drives/"+id+"/resize", url.Values{"size": {"4M"}}); r.status != http.StatusSeeOther {
		t.Fatalf("resize: %d", r.status)
	}
	if r := b.post("/ui/drives/"+id+"/share", url.Values{"share": {"true"}}); r.status != http.StatusSeeOther {
		t.Fatalf("share: %d", r.status)
	}
	bob, bobSecret := e.user("bob")
	other := e.browser()
	other.login(bob.Name, bobSecret)
	if r := other.get("/ui/servers/new"); !strings.Contains(r.body, "lib:"+id) {
		t.Fatal("a shared drive is not offered to another user as an image")
	}
	if r := b.post("/ui/drives/"+id+"/share", url.Values{"share": {"false"}}); r.status != http.StatusSeeOther {
		t.Fatalf("unshare: %d", r.status)
	}
	if r := other.get("/ui/servers/new"); strings.Contains(r.body, "lib:"+id) {
		t.Fatal("an unshared drive is still offered to another user")
	}
	page := b.get("/ui/drives")
	if !strings.Contains(page.body, "Drive upload is now 4 MiB.") || !strings.Contains(page.body, "upload") {
		t.Fatalf("drives page after resize: %s", page.body)
	}
	if r := b.post("/ui/drives/"+id+"/destroy", nil); r.status != http.StatusOK || !strings.Contains(r.body, "Destroy drive upload?") {
		t.Fatalf("destroy without confirmation: %d", r.status)
	}
	if r := b.post("/ui/drives/"+id+"/destroy", url.Values{"confirmed": {"yes"}}); r.status != http.StatusSeeOther {
		t.Fatalf("destroy: %d", r.status)
	}
	if _, err := e.service.DriveInfo(context.Background(), e.admin, id); err == nil {
		t.Fatal("drive still there")
	}
}

func TestUploadWithoutScript(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	var body bytes.Buffer
	body.WriteString("--XX\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nplain\r\n")
	body.WriteString("--XX\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n1M\r\n")
	body.WriteString("--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"disk.img\"\r\n\r\nHELLO\r\n--XX--\r\n")
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui/drives/upload?csrf="+url.QueryEscape(b.csrf), &body)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	if r := b.do(req); r.status != http.StatusSeeOther {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	drives, _ := e.service.DrivesInfo(context.Background(), e.admin)
	if len(drives) != 1 || drives[0]["name"] != "plain" {
		t.Fatalf("drives: %v", drives)
	}
	rd, err := e.service.OpenDrive(context.Background(), e.admin, drives[0]["drive"], 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if got, err := io.ReadAll(rd); err != nil || string(got) != "HELLO" {
		t.Fatalf("content %q, %v", got, err)
	}
}

func TestResourcesPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	if r := b.post("/ui/resources/ip/new", url.Values{"name": {"front"}}); r.status != http.StatusSeeOther {
		t.Fatalf("reserve ip: %d %s", r.status, r.body)
	}
	if r := b.post("/ui/resources/vlan/new", url.Values{"name": {"backnet"}}); r.status != http.StatusSeeOther {
		t.Fatalf("create vlan: %d %s", r.status, r.body)
	}
	page := b.get("/ui/resources")
	ips, _ := e.service.ResourcesInfo(context.Background(), e.admin, "ip")
	if len(ips) != 1 || !strings.Contains(page.body, ips[0]["resource"]) || !strings.Contains(page.body, "backnet") {
		t.Fatalf("resources page: %v %s", ips, page.body)
	}
	vlans, _ := e.service.ResourcesInfo(context.Background(), e.admin, "vlan")
	if r := b.post("/ui/resources/vlan/"+vlans[0]["resource"]+"/set", url.Values{"name": {"backnet2"}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename vlan: %d %s", r.status, r.body)
	}
	if vlans, _ = e.service.ResourcesInfo(context.Background(), e.admin, "vlan"); vlans[0]["name"] != "backnet2" {
		t.Fatalf("vlan after rename: %v", vlans[0])
	}
	create := b.get("/ui/servers/new")
	if !strings.Contains(create.body, "Static IP "+ips[0]["resource"]) || !strings.Contains(create.body, "backnet2") {
		t.Fatal("the create page does not offer the IP and VLAN")
	}
	if r := b.post("/ui/resources/ip/"+ips[0]["resource"]+"/destroy", url.Values{"confirmed": {"yes"}}); r.status != http.StatusSeeOther {
		t.Fatalf("release: %d", r.status)
	}
	if ips, _ := e.service.ResourcesInfo(context.Background(), e.admin, "ip"); len(ips) != 0 {
		t.Fatal("ip not released")
	}
	if r := b.post("/ui/resources/disk/new", nil); r.status != http.StatusSeeOther {
		t.Fatalf("unknown type: %d", r.status)
	}
}

func TestUsersPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	r := b.post("/ui/users/new", url.Values{"name": {"bob"}})
	m := regexp.MustCompile(`data-secret>([0-9a-f]+)<`).FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	if strings.Contains(b.get("/ui/users").body, m[1]) {
		t.Fatal("the secret is shown again")
	}
	if r := b.post("/ui/users/new", url.Values{"name": {"has space"}}); r.status != http.StatusBadRequest || errorNextTo(r.body, "name") == "" {
		t.Fatalf("bad name: %d %q", r.status, errorNextTo(r.body, "name"))
	}
	bob := e.browser()
	bob.login("bob", m[1])
	users, _ := e.service.Users(context.Background(), e.admin)
	var bobID string
	for _, u := range users {
		if u.Name == "bob" {
			bobID = u.ID
		}
	}
	if r := b.post("/ui/users/"+bobID+"/remove", url.Values{"confirmed": {"yes"}}); r.status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if r := bob.get("/ui/servers"); r.status != http.StatusSeeOther {
		t.Fatalf("removed user's session still works: %d", r.status)
	}
}

func TestCreateFromLibraryStartsAfterImaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lib := e.emptyLibraryImage("busybox")
	alice, secret := e.user("alice")
	b := e.browser()
	b.login(alice.Name, secret)
	page := b.get("/ui/servers/new")
	if !strings.Contains(page.body, "lib:"+lib.ID) {
		t.Fatalf("create page does not offer the library image: %s", page.body)
	}
	r := b.post("/ui/servers/new", url.Values{"name": {"fromlib"}, "size": {"small"}, "source": {"lib:" + lib.ID},
		"drivesize": {"8M"}, "nic0": {"none"}, "start": {"true"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := e.service.ServerInfo(ctx, alice, id)
		if err != nil {
			t.Fatal(err)
		}
		if info["status"] == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start after imaging: %v (pending start %+v)", info, e.dash.starts.get(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Booting from one of your drives as it is: no new drive, no copy.
	own, err := e.service.CreateDrive(ctx, alice, eh.Props{"name": "mine", "size": "4M"})
	if err != nil {
		t.Fatal(err)
	}
	r = b.post("/ui/servers/new", url.Values{"name": {"direct"}, "size": {"small"}, "source": {"use:" + own["drive"]},
		"drivesize": {"ignored"}, "nic0": {"none"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create booting from an own drive: %d %s", r.status, errorNextTo(r.body, "source"))
	}
	direct, _ := e.service.ServerInfo(ctx, alice, strings.TrimPrefix(r.location, "/ui/servers/"))
	drives, _ := e.service.DrivesInfo(ctx, alice)
	if direct["ide:0:0"] != own["drive"] || len(drives) != 2 { // fromlib's boot drive and "mine"
		t.Fatalf("direct boot: ide:0:0 %q, %d drives", direct["ide:0:0"], len(drives))
	}
	if small := b.post("/ui/servers/new", url.Values{"name": {"tiny"}, "size": {"small"}, "source": {"lib:" + lib.ID},
		"drivesize": {"1M"}, "nic0": {"none"}}); small.status != http.StatusBadRequest || !strings.Contains(errorNextTo(small.body, "drivesize"), "at least 4 MiB") {
		t.Fatalf("drive smaller than the image: %d %q", small.status, errorNextTo(small.body, "drivesize"))
	}
}

func TestStaticAndSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, p := range []string{"/static/hearth.css", "/static/hearth.js", "/static/favicon.svg"} {
		if r := b.get(p); r.status != http.StatusOK {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	r := b.get("/login")
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(r.body, "style=") {
		t.Fatalf("login page: CSP %q or inline style", csp)
	}
	b.login("root", e.secret)
	srv, err := e.service.CreateServer(context.Background(), e.admin, eh.Props{"name": "s", "cpu": "1000", "mem": "256"}, false)
	if err != nil {
		t.Fatal(err)
	}
	inline := regexp.MustCompile(`(?i)\sstyle=|<script>|<script\s+[^>]*>[^<]+</script>|\son[a-z]+=`)
	for _, p := range []string{"/ui/servers", "/ui/servers/new", "/ui/servers/" + srv["server"], "/ui/drives", "/ui/resources", "/ui/users"} {
		r := b.get(p)
		if r.status != http.StatusOK || inline.MatchString(r.body) || r.header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: %d, inline style/script %q", p, r.status, inline.FindString(r.body))
		}
	}
	if r := b.get("/nowhere"); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.status)
	}
	if r := b.get("/"); r.status != http.StatusSeeOther {
		t.Fatalf("root: %d", r.status)
	}
}

// A server needs a name (the form says so next to the field, and renaming
// to nothing is refused the same way); a name the user already has comes
// back once with a warning, and the same form sent again creates a second.
func TestServerNameRequiredAndDuplicateWarned(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	form := func(name string, extra ...string) url.Values {
		f := url.Values{"name": {name}, "size": {"small"}, "source": {"blank"}, "drivesize": {"64M"}, "nic0": {"auto"}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	count := func() int {
		servers, _ := e.service.ServersInfo(context.Background(), e.admin)
		return len(servers)
	}
	r := b.post("/ui/servers/new", form("  "))
	if r.status != http.StatusBadRequest || errorNextTo(r.body, "name") != "Give the server a name." ||
		!regexp.MustCompile(`id="name"[^>]*aria-invalid="true"[^>]*aria-describedby="name-hint name-error"`).MatchString(r.body) {
		t.Fatalf("empty name: %d, next to name %q", r.status, errorNextTo(r.body, "name"))
	}
	if r := b.post("/ui/servers/new", form("web1")); r.status != http.StatusSeeOther {
		t.Fatalf("create web1: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(b.post("/ui/servers/new", form("other")).location, "/ui/servers/")
	r = b.post("/ui/servers/new", form("Web1"))
	warning := regexp.MustCompile(`id="name-warning"[^>]*>([^<]*)<`).FindStringSubmatch(r.body)
	if r.status != http.StatusConflict || warning == nil || !strings.Contains(html.UnescapeString(warning[1]), "You already have a server named Web1") ||
		!strings.Contains(r.body, `name="duplicate" value="Web1"`) || count() != 2 {
		t.Fatalf("duplicate name: %d, warning %q, %d servers", r.status, warning, count())
	}
	if r := b.post("/ui/servers/new", form("Web1", "duplicate", "Web1")); r.status != http.StatusSeeOther || count() != 3 {
		t.Fatalf("duplicate name sent again: %d, %d servers", r.status, count())
	}
	// The confirmation covers that name only.
	if r := b.post("/ui/servers/new", form("other", "duplicate", "Web1")); r.status != http.StatusConflict || count() != 3 {
		t.Fatalf("another duplicate with a stale confirmation: %d, %d servers", r.status, count())
	}
	r = b.post("/ui/servers/"+id+"/set", url.Values{"name": {""}})
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); r.status != http.StatusBadRequest || errorNextTo(r.body, "name") == "" || info["name"] != "other" {
		t.Fatalf("renamed to nothing: %d, next to name %q, name now %q", r.status, errorNextTo(r.body, "name"), info["name"])
	}
	// Renaming to a name the user has is warned about the same way.
	r = b.post("/ui/servers/"+id+"/set", url.Values{"name": {"WEB1"}, "cpu": {"1500"}})
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); r.status != http.StatusConflict ||
		!strings.Contains(r.body, `id="name-warning"`) || !strings.Contains(r.body, `name="duplicate" value="WEB1"`) || info["name"] != "other" {
		t.Fatalf("renamed to a name in use: %d, name now %q", r.status, info["name"])
	}
	r = b.post("/ui/servers/"+id+"/set", url.Values{"name": {"WEB1"}, "cpu": {"1500"}, "duplicate": {"WEB1"}})
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); r.status != http.StatusSeeOther || info["name"] != "WEB1" || info["cpu"] != "1500" {
		t.Fatalf("renamed to a name in use, sent again: %d, now %v", r.status, info)
	}
	// Its own name is no duplicate (the other two servers are web1 and Web1).
	if r := b.post("/ui/servers/"+id+"/set", url.Values{"name": {"WEB1"}, "cpu": {"1600"}}); r.status != http.StatusSeeOther {
		t.Fatalf("saved with its own name: %d", r.status)
	}
}

// Drives and VLANs need a name in their create forms too, and a name the
// user already has is warned about once, next to the field.
func TestDriveAndVLANNamesRequiredAndDuplicateWarned(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	ctx := context.Background()
	count := func(typ string) int {
		if typ == "drive" {
			l, _ := e.service.DrivesInfo(ctx, e.admin)
			return len(l)
		}
		l, _ := e.service.ResourcesInfo(ctx, e.admin, typ)
		return len(l)
	}
	for _, tc := range []struct{ typ, path, field string }{
		{"drive", "/ui/drives/new", "name"},
		{"vlan", "/ui/resources/vlan/new", "vlan-name"},
	} {
		form := func(name string, extra ...string) url.Values {
			f := url.Values{"name": {name}, "size": {"1M"}}
			if len(extra) == 2 {
				f.Set(extra[0], extra[1])
			}
			return f
		}
		r := b.post(tc.path, form(" "))
		if r.status != http.StatusBadRequest || !strings.Contains(errorNextTo(r.body, tc.field), "Give the") ||
			!regexp.MustCompile(`id="`+tc.field+`"[^>]*aria-invalid="true"`).MatchString(r.body) || count(tc.typ) != 0 {
			t.Fatalf("%s without a name: %d, next to it %q, %d made", tc.typ, r.status, errorNextTo(r.body, tc.field), count(tc.typ))
		}
		if r := b.post(tc.path, form("backend")); r.status != http.StatusSeeOther {
			t.Fatalf("%s backend: %d %s", tc.typ, r.status, r.body)
		}
		r = b.post(tc.path, form("Backend"))
		warning := regexp.MustCompile(`id="` + tc.field + `-warning"[^>]*>([^<]*)<`).FindStringSubmatch(r.body)
		if r.status != http.StatusConflict || warning == nil || !strings.Contains(warning[1], "You already have a") ||
			!regexp.MustCompile(`id="`+tc.field+`"[^>]*aria-describedby="`+tc.field+`-warning"`).MatchString(r.body) || count(tc.typ) != 1 {
			t.Fatalf("%s duplicate: %d, warning %q, %d made", tc.typ, r.status, warning, count(tc.typ))
		}
		if r := b.post(tc.path, form("Backend", "duplicate", "Backend")); r.status != http.StatusSeeOther || count(tc.typ) != 2 {
			t.Fatalf("%s duplicate sent again: %d, %d made", tc.typ, r.status, count(tc.typ))
		}
	}
}

// A drive attached to a running server is shown with that server and not
// offered (nor taken) as another server's boot drive; a library image is
// offered to copy, even to the admin who owns it, never to boot directly.
func TestInUseDrivesNotOfferedForBoot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lib := e.emptyLibraryImage("busybox")
	b := e.browser()
	b.login("root", e.secret)
	boot := b.createStarted("web1")["ide:0:0"]
	page := b.get("/ui/servers/new").body
	if !regexp.MustCompile(`<option value="use:` + boot + `" disabled>web1 boot \([^)]*\) — in use by web1</option>`).MatchString(page) {
		t.Errorf("the running server's drive is not greyed with its server: %s", page)
	}
	if !strings.Contains(page, `value="lib:`+lib.ID+`"`) || strings.Contains(page, `value="use:`+lib.ID+`"`) || strings.Contains(page, `value="drive:`+lib.ID+`"`) {
		t.Errorf("the library image is not offered only as a copy")
	}
	servers, _ := e.service.ServersInfo(ctx, e.admin)
	r := b.post("/ui/servers/new", url.Values{"name": {"web2"}, "size": {"small"}, "source": {"use:" + boot}, "nic0": {"none"}, "start": {"true"}})
	after, _ := e.service.ServersInfo(ctx, e.admin)
	if msg := errorNextTo(r.body, "source"); r.status != http.StatusBadRequest || msg != "web1 boot is attached to running server web1 — stop web1 first, or boot from a copy of it." || !regexp.MustCompile(`id="source"[^>]*aria-invalid="true"[^>]*aria-describedby="source-hint source-error"`).MatchString(r.body) || len(after) != len(servers) {
		t.Fatalf("booting another server from web1's drive: %d, next to source %q, %d servers before, %d after", r.status, msg, len(servers), len(after))
	}
}

// Destroy asks on a page of its own, offering to delete the boot drive too
// (ticked when the create form made it), and the flash says what it did.
func TestDestroyOffersTheBootDrive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := e.browser()
	b.login("root", e.secret)
	web1 := b.createStarted("web1")
	id, boot := web1["server"], web1["ide:0:0"]
	if page := b.get("/ui/servers/" + id).body; !strings.Contains(page, `href="/ui/servers/`+id+`/destroy?back=%2Fui%2Fservers%2F`+id+`"`) {
		t.Fatalf("the server page has no destroy link: %s", page)
	}
	ask := b.get("/ui/servers/" + id + "/destroy?back=/ui/servers/" + id)
	if ask.status != http.StatusOK || !strings.Contains(ask.body, "Destroy server web1?") ||
		!regexp.MustCompile(`<input type="checkbox" name="deletedrive" value="`+boot+`" checked>`).MatchString(ask.body) ||
		!strings.Contains(ask.body, "Also delete its boot drive web1 boot (64 MiB)") {
		t.Fatalf("destroy page: %d %s", ask.status, ask.body)
	}
	// Only the server's own boot drive goes with it.
	other, err := e.service.CreateDrive(ctx, e.admin, eh.Props{"name": "data", "size": "1M"})
	if err != nil {
		t.Fatal(err)
	}
	r := b.post("/ui/servers/"+id+"/destroy", url.Values{"confirmed": {"yes"}, "deletedrive": {other["drive"]}})
	if _, err := e.service.ServerInfo(ctx, e.admin, id); err != nil || r.status != http.StatusSeeOther {
		t.Fatalf("destroy with another drive: %d, server %v", r.status, err)
	}
	r = b.post("/ui/servers/"+id+"/destroy", url.Values{"confirmed": {"yes"}, "deletedrive": {boot}, "back": {"/ui/servers/" + id}})
	if r.status != http.StatusSeeOther || r.location != "/ui/servers" {
		t.Fatalf("destroy: %d %q", r.status, r.location)
	}
	if flash := b.get("/ui/servers").body; !strings.Contains(flash, "Server web1 and its boot drive web1 boot destroyed.") {
		t.Errorf("flash after destroy does not say what it did: %s", flash)
	}
	if _, err := e.service.DriveInfo(ctx, e.admin, boot); err == nil {
		t.Error("the boot drive is still there")
	}

	// A drive the server booted from as it was is offered unticked, and kept.
	r = b.post("/ui/servers/new", url.Values{"name": {"db"}, "size": {"small"}, "source": {"use:" + other["drive"]}, "nic0": {"none"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create db: %d %s", r.status, r.body)
	}
	id = strings.TrimPrefix(r.location, "/ui/servers/")
	ask = b.post("/ui/servers/"+id+"/destroy", nil)
	if !regexp.MustCompile(`<input type="checkbox" name="deletedrive" value="` + other["drive"] + `">`).MatchString(ask.body) {
		t.Fatalf("destroy page for db: %s", ask.body)
	}
	b.post("/ui/servers/"+id+"/destroy", url.Values{"confirmed": {"yes"}})
	if flash := b.get("/ui/servers").body; !strings.Contains(flash, "Server db destroyed.") {
		t.Errorf("flash after destroy: %s", flash)
	}
	if _, err := e.service.DriveInfo(ctx, e.admin, other["drive"]); err != nil {
		t.Errorf("the drive was not kept: %v", err)
	}
}

// The create form starts with a generated VNC password the owner can read
// and change, so a first server has a console; a longer one is never cut by
// the browser (no maxlength) but refused next to the field, kept as typed.
func TestConsoleOnByDefault(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := e.browser()
	b.login("root", e.secret)
	passwordOf := func(body string) string {
		m := regexp.MustCompile(`<input id="password" name="password" type="text" value="([^"]*)"[^>]*>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no visible password field: %s", body)
		}
		if strings.Contains(m[0], "maxlength") {
			t.Errorf("the password field cuts what is pasted: %s", m[0])
		}
		return html.UnescapeString(m[1])
	}
	first, second := passwordOf(b.get("/ui/servers/new").body), passwordOf(b.get("/ui/servers/new").body)
	if !regexp.MustCompile(`^[`+vncPasswordChars+`]{8}$`).MatchString(first) || first == second {
		t.Fatalf("generated passwords %q and %q: want 8 random characters each time", first, second)
	}
	form := url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"}, "drivesize": {"64M"}, "nic0": {"none"}, "start": {"true"}, "password": {first}}
	r := b.post("/ui/servers/new", form)
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	if info, _ := e.service.ServerInfo(ctx, e.admin, id); info["password"] != first || info["vnc"] != "auto" {
		t.Fatalf("created server's console: password %q vnc %q", info["password"], info["vnc"])
	}
	if page := b.get(r.location).body; !strings.Contains(page, `href="/static/console/?server=`+id+`"`) {
		t.Error("the new server has no Console button")
	}

	form.Set("name", "web2")
	form.Set("password", "123456789")
	r = b.post("/ui/servers/new", form)
	if msg := errorNextTo(r.body, "password"); r.status != http.StatusBadRequest || !strings.Contains(msg, "9 characters; VNC allows at most 8") ||
		passwordOf(r.body) != "123456789" || !regexp.MustCompile(`id="password"[^>]*aria-invalid="true"[^>]*aria-describedby="password-hint password-error"`).MatchString(r.body) {
		t.Fatalf("9-character password: %d, next to it %q", r.status, msg)
	}
	r = b.post("/ui/servers/"+id+"/set", url.Values{"password": {"abcdefghij"}})
	if msg := errorNextTo(r.body, "password"); r.status != http.StatusBadRequest || !strings.Contains(msg, "10 characters") || passwordOf(r.body) != "abcdefghij" {
		t.Fatalf("10-character password on the server page: %d, next to it %q", r.status, msg)
	}
	if info, _ := e.service.ServerInfo(ctx, e.admin, id); info["password"] != first {
		t.Fatalf("password changed to %q", info["password"])
	}
}

// A first-time user learns where the first credentials are, and where
// images come from while the library is empty.
func TestFirstRunHints(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	login := b.get("/login").body
	if !strings.Contains(login, "<code>DATA/admin.credentials</code>") || !strings.Contains(login, "on its console, above the login prompt") {
		t.Errorf("the login page does not say where the first credentials are: %s", login)
	}
	b.login("root", e.secret)
	page := b.get("/ui/servers/new").body
	if !strings.Contains(page, `id="no-images"`) || !strings.Contains(page, "<code>hearth image import --name debian12 FILE</code>") ||
		!strings.Contains(page, `<a href="/ui/drives">Drives</a>`) {
		t.Errorf("the create form without library images does not say where images come from: %s", page)
	}
	alice, secret := e.user("alice")
	ab := e.browser()
	ab.login(alice.Name, secret)
	if page := ab.get("/ui/servers/new").body; !strings.Contains(page, "Ask an admin to import one") {
		t.Errorf("a user is told to import images themselves: %s", page)
	}
	e.emptyLibraryImage("busybox")
	if page := b.get("/ui/servers/new").body; strings.Contains(page, `id="no-images"`) {
		t.Error("the empty state stays with a library image")
	}
}

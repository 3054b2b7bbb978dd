package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/internal/httpdeadline"
	"hearth/internal/logtest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/web/api"
	"hearth/web/eh"
)

// env is a Hearth API served over real HTTP on a fresh data directory.
type env struct {
	t      testing.TB
	store  *storage.Store
	svc    *api.Service
	srv    *httptest.Server
	guests *fakeGuests
}

type envOption func(*envConfig)

type envConfig struct {
	guests    bool
	prefix    string
	store     []storage.Option
	deadlines httpdeadline.Limits
}

func withGuests() envOption         { return func(c *envConfig) { c.guests = true } }
func withPrefix(p string) envOption { return func(c *envConfig) { c.prefix = p } }

func withDeadlines(l httpdeadline.Limits) envOption { return func(c *envConfig) { c.deadlines = l } }

// withStore adds options to the store's Open.
func withStore(opts ...storage.Option) envOption {
	return func(c *envConfig) { c.store = append(c.store, opts...) }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	store, err := storage.Open(t.TempDir(), append([]storage.Option{storage.WithLogger(logtest.Logger(t))}, cfg.store...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store}
	var apiOpts []api.Option
	if cfg.guests {
		e.guests = &fakeGuests{store: store}
		apiOpts = append(apiOpts, api.WithGuests(e.guests), api.WithConsoleLog(e.guests))
	}
	e.svc = api.New(store, apiOpts...)
	e.srv = httptest.NewServer(New(Config{API: e.svc, Prefix: cfg.prefix, Deadlines: cfg.deadlines, Runtime: func() string { return "test-runtime" }}))
	t.Cleanup(e.srv.Close)
	return e
}

// user creates a user and returns a client authenticated as them.
func (e *env) user(name string, admin bool) *client {
	e.t.Helper()
	u, secret, err := e.store.CreateUser(context.Background(), name, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	return &client{t: e.t, base: e.srv.URL, login: u.ID, secret: secret, id: u.ID}
}

// client speaks to the API as one user.
type client struct {
	t             testing.TB
	base          string
	login, secret string
	id            string
	json          bool // send Accept: application/json
}

func (c *client) asJSON() *client { d := *c; d.json = true; return &d }

// response is an answer with its body read.
type response struct {
	*http.Response
	body string
}

func (r response) word() string { return r.Header.Get("X-Elastic-Error") }

// props parses a text or JSON single-object answer.
func (r response) props(t testing.TB) eh.Props {
	t.Helper()
	p, err := eh.ParseProps(strings.NewReader(r.body), 1<<20)
	if err != nil {
		t.Fatalf("answer %q: %v", r.body, err)
	}
	return p
}

// blocks parses a text answer of blank-line-separated blocks.
func (r response) blocks(t testing.TB) []eh.Props {
	t.Helper()
	var out []eh.Props
	for _, b := range strings.Split(r.body, "\n\n") {
		if strings.TrimSpace(b) == "" {
			continue
		}
		p, err := eh.ParseProps(strings.NewReader(b), 1<<20)
		if err != nil {
			t.Fatalf("block %q: %v", b, err)
		}
		out = append(out, p)
	}
	return out
}

// jsonArray parses a JSON array of objects.
func (r response) jsonArray(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("answer %q is not a JSON array: %v", r.body, err)
	}
	return out
}

func (c *client) do(method, path string, body io.Reader, header ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.login != "" {
		req.SetBasicAuth(c.login, c.secret)
	}
	if c.json {
		req.Header.Set("Accept", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{resp, string(b)}
}

func (c *client) get(path string) response { c.t.Helper(); return c.do("GET", path, nil) }
func (c *client) post(path, body string) response {
	c.t.Helper()
	return c.do("POST", path, strings.NewReader(body))
}

// ok fails unless the answer has the status.
func (r response) expect(t testing.TB, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d (%s: %q), want %d", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.word(), r.body, status)
	}
	return r
}

// expectError checks an error answer: status, word, and a message naming what.
func (r response) expectError(t testing.TB, status int, word, what string) {
	t.Helper()
	if r.StatusCode != status || r.word() != word || !strings.Contains(r.body, what) {
		t.Errorf("%s %s: %d %s %q, want %d %s naming %q", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.word(), r.body, status, word, what)
	}
	if strings.Count(strings.TrimRight(r.body, "\n"), "\n") != 0 {
		t.Errorf("error body is not one line: %q", r.body)
	}
}

// fakeGuests is a guest runtime double for handler tests: it keeps statuses
// and claims in the store as the real one does, without running anything.
type fakeGuests struct {
	store    *storage.Store
	mu       sync.Mutex
	applied  []map[string]string
	applyErr error
	startErr error // the guest fails to boot: dead with this error
	refuse   error // the start is refused: the server stays as it was
	calls    []string
	passing  map[string]vmm.Transient // what Transient reports, by server
}

func (g *fakeGuests) Transient(id string) (vmm.Transient, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.passing[id]
	return t, ok
}

func (g *fakeGuests) record(call, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, call+" "+id)
}

func (g *fakeGuests) Start(ctx context.Context, id string) error {
	g.record("start", id)
	if g.startErr != nil {
		_, err := g.store.SetServerStatus(ctx, id, storage.StatusDead, time.Time{}, g.startErr.Error())
		if err != nil {
			return err
		}
		return g.startErr
	}
	if g.refuse != nil {
		return g.refuse
	}
	if err := g.store.Claim(ctx, id); err != nil {
		return err
	}
	srv, err := g.store.Server(ctx, id)
	if err != nil {
		return err
	}
	if srv.Config["nic:0:dhcp"] == "auto" {
		if _, err := g.store.AllocateLease(ctx, id); err != nil {
			return err
		}
	}
	_, err = g.store.SetServerStatus(ctx, id, storage.StatusActive, time.Unix(1700000000, 0), "")
	return err
}

func (g *fakeGuests) Stop(ctx context.Context, id string) error {
	g.record("stop", id)
	g.store.ReleaseClaims(ctx, id)
	g.store.ReleaseLease(ctx, id)
	srv, err := g.store.SetServerStatus(ctx, id, storage.StatusStopped, time.Time{}, "")
	if err != nil {
		return err
	}
	if srv.Config["persistent"] != "true" {
		return g.store.DeleteServer(ctx, id)
	}
	return nil
}

func (g *fakeGuests) Shutdown(ctx context.Context, id string) error { return g.Stop(ctx, id) }
func (g *fakeGuests) Destroy(ctx context.Context, id string) error {
	g.record("destroy", id)
	g.store.ReleaseClaims(ctx, id)
	g.store.ReleaseLease(ctx, id)
	if _, err := g.store.SetServerStatus(ctx, id, storage.StatusStopped, time.Time{}, ""); err != nil {
		return err
	}
	return g.store.DeleteServer(ctx, id)
}
func (g *fakeGuests) Reset(ctx context.Context, id string) error { g.record("reset", id); return nil }
func (g *fakeGuests) Pause(ctx context.Context, id string) error {
	g.record("pause", id)
	_, err := g.store.UpdateServer(ctx, id, func(s *storage.Server) error { s.Status = storage.StatusPaused; return nil })
	return err
}
func (g *fakeGuests) Resume(ctx context.Context, id string) error {
	g.record("resume", id)
	_, err := g.store.UpdateServer(ctx, id, func(s *storage.Server) error { s.Status = storage.StatusActive; return nil })
	return err
}

// Set runs update as vmm.Manager does: active by the row, and a refused
// live apply (applyErr) puts the stored configuration back.
func (g *fakeGuests) Set(ctx context.Context, id string, update func(context.Context, bool) (map[string]string, error)) error {
	before, err := g.store.Server(ctx, id)
	if err != nil {
		return err
	}
	active := before.Status == storage.StatusActive || before.Status == storage.StatusPaused
	changed, err := update(ctx, active)
	if err != nil || !active || len(changed) == 0 {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.applyErr != nil {
		if _, err := g.store.UpdateServer(ctx, id, func(s *storage.Server) error { s.Config = before.Config; return nil }); err != nil {
			return err
		}
		return g.applyErr
	}
	g.applied = append(g.applied, changed)
	return nil
}
func (g *fakeGuests) Observe(ctx context.Context, id string) (vmm.Observation, bool) {
	o := vmm.Observation{SMP: 1, Disks: map[string]guest.DiskCounters{"ide:0:0": {ReadBytes: 4096}}}
	if srv, err := g.store.Server(ctx, id); err == nil && srv.Config["nic:0:model"] != "" {
		o.NICs = []vmm.NICState{{Index: 0, MAC: "02:00:00:00:00:01",
			Counters: &guest.NICCounters{RxBytes: 1000, TxBytes: 2000, RxPackets: 10, TxPackets: 20}}}
	}
	return o, true
}
func (g *fakeGuests) ConsoleOutput(ctx context.Context, id string) ([]byte, error) {
	return []byte("hearth-guest login: \n"), nil
}

// gz compresses data.
func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

var osStat = os.Stat

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func runtimeGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }

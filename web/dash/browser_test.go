package dash

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hearth/console"
	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/storage"
	"hearth/vmm"
	"hearth/vmm/containerd"
	"hearth/vmm/vmmtest"
	"hearth/web"
	"hearth/web/api"
	"hearth/web/eh"
)

// TestBrowser drives the whole appliance in Debian's Chromium through
// playwright-core: the dashboard, the API service, the guest layer (runc
// under a private containerd), the consoles and the one port's handler,
// wired as `hearth serve` wires them. Each scenario (browserScenarios) is a
// script in testdata/browser/ run with a user of its own, then checked from
// the service's side. Screenshots go to test-artifacts/dashboard/SCENARIO/.
func TestBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: browser test skipped")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("/usr/bin/chromium is not installed: browser test skipped")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules/playwright-core")); err != nil {
		t.Skip("node_modules/playwright-core is missing (npm ci): browser test skipped")
	}
	if _, err := os.Stat(filepath.Join(root, "assets/static/novnc/core/rfb.js")); err != nil {
		t.Skip("noVNC is not in assets/static/novnc (./task assets): browser test skipped")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s on PATH for the guest layer: browser test skipped", bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and containerd: browser test skipped")
	}
	out := filepath.Join(root, "test-artifacts/dashboard")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	e := newStack(t)
	lib := e.libraryImage(testguest.Image(t, 32<<20))
	for _, sc := range browserScenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := filepath.Join(out, sc.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			user, secret := e.user("u-" + sc.name)
			if sc.before != nil {
				sc.before(t, e, user)
			}
			script := filepath.Join("testdata/browser", sc.name+".js")
			output, err := exec.Command(node, script, e.srv.URL, user.Name, secret, lib.Name, dir).CombinedOutput()
			t.Logf("%s:\n%s", script, output)
			if err != nil {
				t.Fatalf("browser scenario failed: %v", err)
			}
			if !strings.HasSuffix(strings.TrimSpace(string(output)), "ok") {
				t.Fatalf("%s did not finish", script)
			}
			if sc.after != nil {
				sc.after(t, e, user)
			}
		})
	}
}

// browserScenario is one script of testdata/browser/ with what the service
// must hold before it runs and after it has finished.
type browserScenario struct {
	name          string
	before, after func(t *testing.T, e *env, user api.Caller)
}

var browserScenarios = []browserScenario{
	{
		name: "first-server",
		before: func(t *testing.T, e *env, user api.Caller) {
			if _, err := e.service.CreateServer(context.Background(), user, eh.Props{"name": "db1", "cpu": "4000", "mem": "4096",
				"persistent": "true"}, false); err != nil { // a stopped neighbour in the list
				t.Fatal(err)
			}
		},
		after: func(t *testing.T, e *env, user api.Caller) {
			ctx := context.Background()
			servers, _ := e.service.ServersInfo(ctx, user)
			drives, _ := e.service.DrivesInfo(ctx, user)
			if len(servers) != 1 || servers[0]["name"] != "db1" || servers[0]["status"] != "stopped" || len(drives) != 1 || drives[0]["name"] != "uploaded" {
				t.Fatalf("after the browser run: servers %v, drives %v", servers, drives)
			}
		},
	},
	{name: "graphs", before: graphsBefore},
	{name: "console-phone", before: consolePhoneBefore},
}

// newStack is newEnv with the real guest layer and consoles behind the API,
// served through the one port's handler (web.New) as `hearth serve` does.
func newStack(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	data := vmmtest.DataDir(t)
	store, err := storage.Open(data, storage.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	suffix := make([]byte, 4)
	rand.Read(suffix)
	ns := "hearth-dash-" + hex.EncodeToString(suffix)
	idBase, claim, err := containerd.ClaimIDBase(ns, 0) // host ids of its own, as every Hearth's
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { claim.Close() })
	host, err := containerd.Open(ctx, data, containerd.WithNamespace(ns),
		containerd.WithRuntime(containerd.RuntimeRunc), containerd.WithIDBase(idBase), containerd.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	consoles := console.NewRegistry(console.WithListen("127.0.0.1"), console.WithBasePort(0), console.WithLogger(logtest.Logger(t)))
	manager, err := vmm.NewManager(ctx, host, store, vmm.WithConsoles(consoles), vmm.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // guests outlive Hearth by design: remove them, then close
		for _, g := range host.Guests(ctx) {
			if err := host.Delete(ctx, g.Spec.ID); err != nil {
				t.Errorf("cleanup: delete guest %s: %v", g.Spec.ID, err)
			}
		}
		host.Close()
		consoles.Close()
	})
	svc := api.New(store, api.WithGuests(manager), api.WithConsoleLog(manager), api.WithLogger(logtest.Logger(t)))
	d, err := New(Config{Backend: svc, Sessions: store, History: store, Runtime: host.Name(), DataDir: data, Logger: logtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(web.New(web.Config{
		API:       svc,
		Runtime:   host.Name,
		Dashboard: d,
		Session:   d.SessionCaller,
		Console:   consoles,
	}))
	t.Cleanup(srv.Close)
	u, secret, err := store.CreateUser(ctx, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: store, service: svc, dash: d, srv: srv, clock: &clock{},
		admin: api.Caller{ID: u.ID, Name: u.Name, Admin: true}, secret: secret}
}

// libraryImage makes a library drive, readable by everyone, from an image file.
func (e *env) libraryImage(path string) storage.Drive {
	e.t.Helper()
	d, err := e.store.CreateDriveFrom(context.Background(), storage.Drive{Owner: e.admin.ID, Name: "busybox-guest",
		Library: true, Props: map[string]string{"readers": storage.Everyone}}, func(dst string) error {
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, src)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

package dash

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
// script in testdata/browser/ run with a user of its own (and the first
// admin's credentials in its environment), then checked from the service's
// side. Screenshots go to test-artifacts/dashboard/SCENARIO/.
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
			if sc.admin {
				user, secret = e.adminUser("u-" + sc.name + "-admin")
			}
			if sc.before != nil {
				sc.before(t, e, user)
			}
			script := filepath.Join("testdata/browser", sc.name+".js")
			cmd := exec.Command(node, script, e.srv.URL, user.Name, secret, lib.Name, dir)
			// The admin's login, and the scenario's input files (lib.js: t.admin, t.files).
			extra := map[string]any{"admin": map[string]string{"login": e.admin.Name, "secret": e.secret}}
			if sc.files != nil {
				extra["files"] = sc.files(t)
			}
			blob, _ := json.Marshal(extra)
			cmd.Env = append(os.Environ(), "HEARTH_SCENARIO="+string(blob))
			output, err := cmd.CombinedOutput()
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

// browserGrace is the shutdown grace period of the browser tests' appliance.
const browserGrace = 12 * time.Second

// browserScenario is one script of testdata/browser/ with what the service
// must hold before it runs and after it has finished.
type browserScenario struct {
	name          string
	admin         bool // the scenario's user is an admin (users and limits forms)
	before, after func(t *testing.T, e *env, user api.Caller)
	// files makes the scenario's input files: name → path (or, for a file
	// that cannot be made here, name → "skip: why").
	files func(t *testing.T) map[string]string
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
	{
		name: "states",
		before: func(t *testing.T, e *env, user api.Caller) {
			ctx := context.Background()
			// web1's guest ignores its power-off signal (the busybox init has
			// no handler for SIGWINCH), so a shutdown lasts the grace period.
			made, err := e.service.CreateServerWithDrive(ctx, user, api.ServerWithDrive{
				Config: eh.Props{"name": "web1", "cpu": "1000", "mem": "256", "persistent": "true", "shutdown:signal": "SIGWINCH"},
				Source: e.library(t, user), DriveName: "web1 boot", DriveSize: 64 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.waitImaged(t, user, made.Drive)
			// empty1 boots from a drive without a filesystem: its start fails.
			if _, err := e.service.CreateServerWithDrive(ctx, user, api.ServerWithDrive{
				Config:    eh.Props{"name": "empty1", "cpu": "1000", "mem": "256", "persistent": "true"},
				DriveName: "empty1 boot", DriveSize: 16 << 20,
			}); err != nil {
				t.Fatal(err)
			}
		},
		after: func(t *testing.T, e *env, user api.Caller) {
			ctx := context.Background()
			servers, _ := e.service.ServersInfo(ctx, user)
			status := map[string]string{}
			for _, p := range servers {
				status[p["name"]] = p["status"]
				if p["name"] == "web1" {
					events, _ := e.service.Events(ctx, user, p["server"], 50)
					if !slices.ContainsFunc(events, func(ev storage.Event) bool { return ev.Kind == "server.kill" }) {
						t.Errorf("web1's events lack the kill at the end of the grace period: %+v", events)
					}
				}
			}
			if status["web1"] != "stopped" || status["empty1"] != "dead" {
				t.Errorf("after the browser run: %v", status)
			}
		},
	},
	{
		name:  "forms",
		admin: true,
		after: func(t *testing.T, e *env, user api.Caller) {
			// Refused forms made nothing: the one server created for real and its boot drive.
			ctx := context.Background()
			servers, _ := e.service.ServersInfo(ctx, user)
			drives, _ := e.service.DrivesInfo(ctx, user)
			resources, _ := e.service.ResourcesInfo(ctx, user, "")
			servers, drives, resources = ownedBy(user, servers), ownedBy(user, drives), ownedBy(user, resources) // an admin sees everyone's
			if len(servers) != 1 || servers[0]["name"] != "web1" || len(drives) != 1 || drives[0]["name"] != "web1 boot" || len(resources) != 0 {
				t.Fatalf("after the forms run: servers %v, drives %v, resources %v", servers, drives, resources)
			}
			if err := e.service.ServerAction(ctx, user, servers[0]["server"], api.ActionDestroy); err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		// Every page, logged out, as a user and as an admin, at desktop and
		// phone widths, checked with axe-core: zero violations.
		name: "accessibility",
		after: func(t *testing.T, e *env, user api.Caller) {
			servers, _ := e.service.ServersInfo(context.Background(), user)
			if len(servers) != 0 {
				t.Fatalf("after the browser run: servers %v left", servers)
			}
		},
	},
	{
		name: "import",
		files: func(t *testing.T) map[string]string {
			files := map[string]string{"tarball": testguest.Tarball(t)}
			qemuImg, err := exec.LookPath("qemu-img")
			if err != nil {
				files["qcow2"] = "skip: qemu-img (Debian's qemu-utils) is not installed"
				return files
			}
			qcow2 := filepath.Join(t.TempDir(), "guest.qcow2")
			if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", testguest.Image(t, 32<<20), qcow2).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img convert: %v: %s", err, out)
			}
			files["qcow2"] = qcow2
			return files
		},
		after: func(t *testing.T, e *env, user api.Caller) {
			ctx := context.Background()
			shared, _ := e.service.SharedDrives(ctx, user)
			images := map[string]bool{}
			for _, sd := range shared {
				images[sd.Props["name"]] = sd.Image
			}
			servers, _ := e.service.ServersInfo(ctx, user)
			if !images["imported-tar"] || len(servers) != 1 || servers[0]["name"] != "from-import" || servers[0]["status"] != "active" {
				t.Fatalf("after the browser run: library %v, servers %v", images, servers)
			}
			if _, err := exec.LookPath("qemu-img"); err == nil && !images["imported-qcow2"] {
				t.Errorf("library %v: the qcow2 image is missing", images)
			}
			e.runDirEmpty()
			if err := e.service.ServerAction(ctx, user, servers[0]["server"], "destroy"); err != nil {
				t.Error(err)
			}
		},
	},
	{name: "graphs", before: graphsBefore},
	{name: "console-phone", before: consolePhoneBefore},
	{
		name: "vm-console",
		before: func(t *testing.T, e *env, user api.Caller) {
			if e.dash.cfg.Accelerator == "" {
				t.Skip("VMs cannot run here (no QEMU, see the log): vm-console skipped")
			}
		},
		after: func(t *testing.T, e *env, user api.Caller) {
			ctx := context.Background()
			servers, _ := e.service.ServersInfo(ctx, user)
			if len(servers) != 1 || servers[0]["type"] != "vm" || servers[0]["status"] != "active" || servers[0]["nic:0:model"] != "" {
				t.Fatalf("after the vm-console run: servers %v, want vm1 a running VM (no network here)", servers)
			}
			if err := e.service.ServerAction(ctx, user, servers[0]["server"], api.ActionDestroy); err != nil {
				t.Error(err)
			}
		},
	},
}

// library returns the library image every scenario's user may copy.
func (e *env) library(t *testing.T, user api.Caller) string {
	shared, err := e.service.SharedDrives(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, sd := range shared {
		if sd.Image {
			return sd.Props["drive"]
		}
	}
	t.Fatal("no library image")
	return ""
}

// waitImaged returns once a drive's copy has finished.
func (e *env) waitImaged(t *testing.T, user api.Caller, drive string) {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		p, err := e.service.DriveInfo(context.Background(), user, drive)
		if err != nil {
			t.Fatal(err)
		}
		if p["imaging"] == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("drive %s still imaging after a minute: %s", drive, p["imaging"])
		}
	}
}

// ownedBy keeps the objects of user.
func ownedBy(user api.Caller, objects []eh.Props) []eh.Props {
	var out []eh.Props
	for _, p := range objects {
		if p["user"] == user.ID {
			out = append(out, p)
		}
	}
	return out
}

// adminUser adds an admin and returns it with its secret.
func (e *env) adminUser(name string) (api.Caller, string) {
	e.t.Helper()
	u, secret, err := e.store.CreateUser(context.Background(), name, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return api.Caller{ID: u.ID, Name: u.Name, Admin: true}, secret
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
	// A short grace period, so the states scenario sees a shutdown end in a kill.
	manager, err := vmm.NewManager(ctx, host, store, vmm.WithConsoles(consoles), vmm.WithLogger(logtest.Logger(t)),
		vmm.WithGracePeriod(browserGrace))
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
	d, err := New(Config{Backend: svc, Sessions: store, History: store, Runtime: host.Name(), Accelerator: host.Accelerator(), DataDir: data, Logger: logtest.Logger(t),
		NoNetwork: "This test appliance has no guest network."}) // containerd.Open above has no WithNetwork
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

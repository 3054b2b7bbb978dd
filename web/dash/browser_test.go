package dash

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hearth/storage"
)

// TestBrowser drives the dashboard in Debian's Chromium through
// playwright-core (testdata/browser.js): log in, create a server from a
// library image and watch it become active live, open the console page,
// stop it, upload a drive with progress, log out. Screenshots go to
// test-artifacts/dashboard/. The guest layer here is the test double of
// these unit tests (servers change state, nothing runs).
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
		t.Skip("node_modules/playwright-core is missing (run npm ci): browser test skipped")
	}
	out := filepath.Join(root, "test-artifacts/dashboard")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t)
	lib, err := e.store.CreateDrive(context.Background(), storage.Drive{Owner: e.admin.ID, Name: "busybox-guest",
		Size: 32 << 20, Library: true, Props: map[string]string{"readers": storage.Everyone}})
	if err != nil {
		t.Fatal(err)
	}
	user, secret := e.user("alice")

	cmd := exec.Command(node, "testdata/browser.js", e.srv.URL, user.Name, secret, lib.Name, out)
	output, err := cmd.CombinedOutput()
	t.Logf("browser.js:\n%s", output)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(output)), "ok") {
		t.Fatal("browser.js did not finish")
	}
	servers, _ := e.service.ServersInfo(context.Background(), user)
	drives, _ := e.service.DrivesInfo(context.Background(), user)
	if len(servers) != 1 || servers[0]["status"] != "stopped" || len(drives) != 2 {
		t.Fatalf("after the browser run: servers %v, drives %v", servers, drives)
	}
}

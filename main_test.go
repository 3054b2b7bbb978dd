package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/testguest"
)

// TestMain lets a test run the binary's main as a child process.
func TestMain(m *testing.M) {
	if os.Getenv("HEARTH_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func hearth(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestUserCommands(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := hearth(t, "user", "add", "alice", "--admin", "--data", data)
	if code != 0 {
		t.Fatalf("user add: %d %s", code, errOut)
	}
	m := regexp.MustCompile(`^user ([0-9a-f-]{36})\nsecret ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("user add printed %q", out)
	}
	if _, _, code := hearth(t, "user", "add", "--data", data, "bob"); code != 0 {
		t.Fatal("user add with the flag first")
	}
	out, _, code = hearth(t, "user", "list", "--data", data)
	if code != 0 || !strings.HasPrefix(out, m[1]+" alice admin\n") || !regexp.MustCompile(`\n[0-9a-f-]{36} bob\n$`).MatchString(out) {
		t.Errorf("user list: %d %q", code, out)
	}
	if _, errOut, code := hearth(t, "user", "add", "alice", "--data", data); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("duplicate user: %d %q", code, errOut)
	}
	for _, args := range [][]string{{"user"}, {"user", "add"}, {"user", "add", "a", "b"}, {"user", "remove", "a"}, {"frobnicate"}, {"user", "add", "x", "--bogus"}, {"image", "import", "--data", data, "f"}, {"serve", "extra"}} {
		if _, errOut, code := hearth(t, args...); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("%v: %d %q", args, code, errOut)
		}
	}
}

func TestUserSetLimits(t *testing.T) {
	data := t.TempDir()
	if _, errOut, code := hearth(t, "user", "add", "bob", "--data", data); code != 0 {
		t.Fatalf("user add: %s", errOut)
	}
	out, errOut, code := hearth(t, "user", "set", "bob", "limit:mem", "4G", "limit:servers", "2", "limit:drives", "100G", "--data", data)
	if code != 0 {
		t.Fatalf("user set: %d %s", code, errOut)
	}
	for _, want := range []string{"limit:mem 4096\n", "limit:servers 2\n", "limit:drives 107374182400\n", "limit:cpu none\n", "usage:servers 0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("user set printed %q, want %q in it", out, want)
		}
	}
	if out, _, _ := hearth(t, "user", "set", "bob", "limit:mem", "none", "--data", data); !strings.Contains(out, "limit:mem none\n") || !strings.Contains(out, "limit:servers 2\n") {
		t.Errorf("removing one limit: %q", out)
	}
	for _, args := range [][]string{{"user", "set", "bob"}, {"user", "set", "bob", "limit:mem"}, {"user", "set", "bob", "limit:colour", "1"}, {"user", "set", "bob", "limit:cpu", "fast"}} {
		if _, errOut, code := hearth(t, append(args, "--data", data)...); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("%v: %d %q", args, code, errOut)
		}
	}
	if _, errOut, code := hearth(t, "user", "set", "nobody", "limit:mem", "1", "--data", data); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown user: %d %q", code, errOut)
	}
}

// TestUserSecret: a new secret works, the old one does not, and a first
// admin's credentials file naming the old one is removed.
func TestUserSecret(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := hearth(t, "user", "add", "admin", "--admin", "--data", data)
	if code != 0 {
		t.Fatalf("user add: %s", errOut)
	}
	creds := filepath.Join(data, "admin.credentials")
	os.WriteFile(creds, []byte(out), 0o600) // as the first serve writes it
	old := regexp.MustCompile(`secret (\w+)`).FindStringSubmatch(out)[1]
	out, errOut, code = hearth(t, "user", "secret", "admin", "--data", data)
	m := regexp.MustCompile(`^user ([0-9a-f-]{36})\nsecret ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[2] == old {
		t.Fatalf("user secret: %d %q %s", code, out, errOut)
	}
	store, err := openState(data)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Authenticate(t.Context(), "admin", old); err == nil {
		t.Error("the old secret still works")
	}
	if _, err := store.Authenticate(t.Context(), "admin", m[2]); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if _, err := os.Stat(creds); !os.IsNotExist(err) {
		t.Errorf("the stale admin.credentials is still there: %v", err)
	}
	if _, errOut, code := hearth(t, "user", "secret", "nobody", "--data", data); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown user: %d %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := hearth(t, "version")
	if code != 0 || !strings.HasPrefix(out, "hearth "+version+"\n") || !strings.Contains(out, "go go1.") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestImageImport(t *testing.T) {
	data := t.TempDir()
	tarball := testguest.Tarball(t)
	out, errOut, code := hearth(t, "image", "import", "--name", "busybox", "--size", "64M", "--data", data, tarball)
	if code != 0 {
		t.Fatalf("image import: %d %s", code, errOut)
	}
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "drive ")
	if !ok {
		t.Fatalf("image import printed %q", out)
	}
	info, err := os.Stat(filepath.Join(data, "drives", id+".img"))
	if err != nil || info.Size() != 64<<20 {
		t.Fatalf("image file: %v %v", info, err)
	}
	// The import made the first admin, who owns the library drive.
	if cred, err := os.Stat(filepath.Join(data, "admin.credentials")); err != nil || cred.Mode().Perm() != 0o600 {
		t.Errorf("admin.credentials: %v %v", cred, err)
	}
	if _, errOut, code := hearth(t, "image", "import", "--name", "bad", "--data", data, "/etc/hostname"); code != 1 || !strings.Contains(errOut, "image import") {
		t.Errorf("garbage import: %d %q", code, errOut)
	}
	if entries, _ := os.ReadDir(filepath.Join(data, "drives")); len(entries) != 1 {
		t.Errorf("%d files in drives/ after a failed import", len(entries))
	}
}

// TestServe runs `hearth serve` as a child process: first start creates the
// admin, /health and the API answer, `hearth user add` works beside it, and
// SIGTERM ends it cleanly.
func TestServe(t *testing.T) {
	data := t.TempDir()
	// A bridge and subnet of its own; no containerd (the guest layer has its
	// own tests): serve must run without one.
	bridge := fmt.Sprintf("hearthm%06x", rand.Uint32()&0xffffff)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(256))
	t.Cleanup(func() {
		if err := exec.Command("ip", "link", "del", bridge).Run(); err == nil {
			t.Logf("removed bridge %s left behind by the guest network", bridge)
		}
	})
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--data", data, "--subnet", subnet,
		"--bridge", bridge, "--containerd", filepath.Join(data, "no-containerd.sock"), "--vnc-listen", "127.0.0.1")
	cmd.Env = append(os.Environ(), "HEARTH_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var logged bytes.Buffer
	lines := bufio.NewScanner(io.TeeReader(stderr, &logged))
	addr := ""
	for lines.Scan() {
		if m := regexp.MustCompile(`serving http://([^\s"]+)`).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		t.Fatalf("no serving line in %q", logged.String())
	}
	go io.Copy(io.Discard, io.TeeReader(stderr, &logged))

	cred, err := os.ReadFile(filepath.Join(data, "admin.credentials"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^user ([0-9a-f-]{36})\nsecret ([0-9a-f]{64})\n$`).FindStringSubmatch(string(cred))
	if m == nil {
		t.Fatalf("admin.credentials %q", cred)
	}
	if info, _ := os.Stat(filepath.Join(data, "admin.credentials")); info.Mode().Perm() != 0o600 {
		t.Errorf("admin.credentials mode %v", info.Mode())
	}
	if strings.Contains(logged.String(), m[2]) {
		t.Error("the admin secret was logged")
	}
	if !strings.Contains(logged.String(), filepath.Join(data, "admin.credentials")) {
		t.Errorf("the credentials path was not logged: %q", logged.String())
	}
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "status ok") {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/resources/ip/create", nil)
	req.SetBasicAuth(m[1], m[2])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if first := strings.TrimSuffix(subnet, "0/24") + "2"; resp.StatusCode != 200 || !strings.Contains(string(body), "resource "+first+"\n") {
		t.Errorf("ip create from the --subnet pool: %d %q", resp.StatusCode, body)
	}
	// State commands work while serve runs.
	if out, errOut, code := hearth(t, "user", "add", "carol", "--data", data); code != 0 || !strings.HasPrefix(out, "user ") {
		t.Errorf("user add beside serve: %d %s", code, errOut)
	}
	req, _ = http.NewRequest("GET", "http://"+addr+"/servers/list", nil)
	req.SetBasicAuth("carol", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("carol with a wrong secret: %v %v", resp, err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, logged.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	// A second start keeps the admin: no new credentials file is written.
	again, _ := os.ReadFile(filepath.Join(data, "admin.credentials"))
	if !bytes.Equal(again, cred) {
		t.Error("credentials changed")
	}
}

func TestHostAddressIsOneOfTheHosts(t *testing.T) {
	ip := net.ParseIP(hostAddress())
	if ip == nil || ip.To4() == nil {
		t.Fatalf("hostAddress() = %q, want an IPv4 address", hostAddress())
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return
		}
	}
	t.Fatalf("hostAddress() = %s, not an address of this host (%v)", ip, addrs)
}

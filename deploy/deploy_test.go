package deploy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hearthBin is the hearth binary built for these tests, as the Taskfile
// builds it.
var hearthBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hearth-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hearthBin = filepath.Join(dir, "hearth")
	build := exec.Command("go", "build", "-trimpath", "-o", hearthBin, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hearth: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// unitFile is a parsed systemd unit: "Section.Key" → values in order.
type unitFile map[string][]string

func readUnit(t *testing.T, name string) unitFile {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not KEY=VALUE", name, line)
			}
			u[section+"."+key] = append(u[section+"."+key], value)
		}
	}
	return u
}

func (u unitFile) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("unit has %d %s lines, want 1", len(u[key]), key)
	}
	return u[key][0]
}

// TestUnitsAreValidSystemdUnits runs systemd-analyze verify over copies of
// the units whose programs point into a temporary root, and checks what the
// appliance relies on.
func TestUnitsAreValidSystemdUnits(t *testing.T) {
	root := t.TempDir()
	install(t, root)
	for _, name := range []string{"hearth.service", "hearth-firstboot.service", "hearth-banner.path"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		rooted := filepath.Join(root, name)
		os.WriteFile(rooted, bytes.ReplaceAll(data, []byte("/usr/local/"), []byte(root+"/usr/local/")), 0o644)
		out, err := exec.Command("systemd-analyze", "verify", rooted).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}

	u := readUnit(t, "hearth.service")
	for key, want := range map[string]string{
		"Service.Type":      "notify",     // hearth sends READY=1
		"Service.KillMode":  "process",    // guests survive a restart
		"Service.Restart":   "on-failure", // and Hearth comes back
		"Service.Delegate":  "yes",
		"Service.ExecStart": "/usr/local/bin/hearth serve --listen :443 --tls auto",
	} {
		if got := u.one(t, key); got != want {
			t.Errorf("hearth.service %s=%s, want %s", key, got, want)
		}
	}
	if !strings.Contains(u.one(t, "Unit.After"), "hearth-firstboot.service") {
		t.Errorf("hearth.service does not start after the first-boot service")
	}
	fb := readUnit(t, "hearth-firstboot.service")
	if !strings.Contains(fb.one(t, "Unit.Before"), "hearth.service") || fb.one(t, "Service.Type") != "oneshot" {
		t.Errorf("hearth-firstboot.service must be a oneshot ordered before hearth.service")
	}
	if p := readUnit(t, "hearth-banner.path"); p.one(t, "Path.PathChanged") != "/var/lib/hearth/admin.credentials" || p.one(t, "Path.Unit") != "hearth-firstboot.service" {
		t.Errorf("hearth-banner.path must run hearth-firstboot.service when admin.credentials changes")
	}
}

// install lays out the appliance's files under root as provision.sh does.
func install(t *testing.T, root string) {
	t.Helper()
	for src, dst := range map[string]string{
		hearthBin:          "usr/local/bin/hearth",
		"hearth-firstboot": "usr/local/lib/hearth/hearth-firstboot",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "issue"), []byte(debianIssue), 0o644)
}

const debianIssue = "Debian GNU/Linux 12 \\n \\l\n\n"

// firstBoot runs the first-boot script against root the way the appliance
// runs it, with the binary built for the test.
func firstBoot(t *testing.T, root string, env ...string) (output string, err error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "usr/local/lib/hearth/hearth-firstboot"))
	cmd.Env = append(os.Environ(), append([]string{"HEARTH_ROOT=" + root, "HEARTH_BIN=" + filepath.Join(root, "usr/local/bin/hearth")}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type credentials struct{ user, secret string }

func readCredentials(t *testing.T, path string) credentials {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "user":
			c.user = value
		case "secret":
			c.secret = value
		}
	}
	if c.user == "" || c.secret == "" {
		t.Fatalf("%s holds %q, want user and secret lines", path, data)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFirstBootPutsCredentialsOnTheBannerOnly(t *testing.T) {
	root := t.TempDir()
	install(t, root)
	out, err := firstBoot(t, root)
	if err != nil {
		t.Fatalf("first boot: %v\n%s", err, out)
	}
	data := filepath.Join(root, "var/lib/hearth")
	creds := readCredentials(t, filepath.Join(data, "admin.credentials"))
	if m := mode(t, filepath.Join(data, "admin.credentials")); m != 0o600 {
		t.Errorf("admin.credentials mode %v, want 0600", m)
	}
	if strings.Contains(out, creds.secret) {
		t.Errorf("the secret reached the script's output (the journal):\n%s", out)
	}

	issuePath := filepath.Join(root, "etc/issue")
	issue, _ := os.ReadFile(issuePath)
	for _, want := range []string{debianIssue, `https://\4/`, creds.user, creds.secret, "admin"} {
		if !strings.Contains(string(issue), want) {
			t.Errorf("banner lacks %q:\n%s", want, issue)
		}
	}
	if m := mode(t, issuePath); m != 0o600 {
		t.Errorf("banner mode %v, want 0600 (it holds a secret)", m)
	}
	users, err := exec.Command(hearthBin, "user", "list", "--data", data).Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(users)), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], creds.user+" admin") || !strings.HasSuffix(lines[0], "admin") {
		t.Errorf("user list = %q, want the one admin user %s", users, creds.user)
	}

	// Later boots make no other admin and write the same banner.
	out, err = firstBoot(t, root)
	if err != nil {
		t.Errorf("second boot: %v\n%s", err, out)
	}
	if again, _ := os.ReadFile(issuePath); !bytes.Equal(again, issue) {
		t.Errorf("second boot changed the banner:\n%s", again)
	}
	if users, _ := exec.Command(hearthBin, "user", "list", "--data", data).Output(); strings.Count(string(users), "\n") != 1 {
		t.Errorf("user list after a second boot = %q, want the one admin", users)
	}

	// Once the admin's secret is changed, the banner (rewritten when
	// hearth-banner.path sees admin.credentials go) shows it no more.
	if out, err := exec.Command(hearthBin, "user", "secret", "admin", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("user secret: %v\n%s", err, out)
	}
	if out, err := firstBoot(t, root); err != nil {
		t.Fatalf("banner refresh: %v\n%s", err, out)
	}
	issue, _ = os.ReadFile(issuePath)
	if strings.Contains(string(issue), creds.secret) || !strings.Contains(string(issue), `https://\4/`) || !strings.Contains(string(issue), "secret was changed") {
		t.Errorf("banner after the admin's secret changed:\n%s\nwant the address, a note and no secret", issue)
	}
}

func TestFirstBootOnAHandMadeSetupShowsTheAddressOnly(t *testing.T) {
	root := t.TempDir()
	install(t, root)
	data := filepath.Join(root, "var/lib/hearth")
	if out, err := exec.Command(hearthBin, "user", "add", "operator", "--admin", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	out, err := firstBoot(t, root, "HEARTH_URL=https://appliance.example:8443/")
	if err != nil {
		t.Fatalf("first boot: %v\n%s", err, out)
	}
	issue, _ := os.ReadFile(filepath.Join(root, "etc/issue"))
	if !strings.Contains(string(issue), "https://appliance.example:8443/") || strings.Contains(string(issue), "secret") {
		t.Errorf("banner:\n%s\nwant the address and no credentials", issue)
	}
	if _, err := os.Stat(filepath.Join(data, "admin.credentials")); err == nil {
		t.Errorf("made admin credentials although users existed")
	}
	users, _ := exec.Command(hearthBin, "user", "list", "--data", data).Output()
	if n := strings.Count(string(users), "\n"); n != 1 {
		t.Errorf("user list = %q, want the operator only", users)
	}
}

func TestFirstBootFailureLeavesNoHalfState(t *testing.T) {
	root := t.TempDir()
	install(t, root)
	out, err := firstBoot(t, root, "HEARTH_BIN=/bin/false")
	if err == nil {
		t.Fatalf("first boot with a failing hearth succeeded:\n%s", out)
	}
	if !strings.Contains(out, "/bin/false") {
		t.Errorf("error does not name the failing command:\n%s", out)
	}
	data := filepath.Join(root, "var/lib/hearth")
	entries, _ := os.ReadDir(data)
	if len(entries) != 0 {
		t.Errorf("DATA holds %v after a failed first boot; want nothing, so the next boot tries again", entries)
	}
	if issue, _ := os.ReadFile(filepath.Join(root, "etc/issue")); string(issue) != debianIssue {
		t.Errorf("banner changed by a failed first boot:\n%s", issue)
	}
}

// TestApplianceBootsAsTheUnitsSay runs the first boot, then `hearth serve`
// with the unit's ExecStart and Environment (only the listen port moved to a
// free loopback one, and paths into a temporary root), waits for READY=1 on
// a notify socket as systemd does for Type=notify, and checks HTTPS with the
// self-signed certificate, the credentials from the banner, the plain-HTTP
// redirect and a clean stop.
func TestApplianceBootsAsTheUnitsSay(t *testing.T) {
	root := t.TempDir()
	install(t, root)
	if out, err := firstBoot(t, root); err != nil {
		t.Fatalf("first boot: %v\n%s", err, out)
	}
	data := filepath.Join(root, "var/lib/hearth")
	creds := readCredentials(t, filepath.Join(data, "admin.credentials"))

	unit := readUnit(t, "hearth.service")
	args := strings.Fields(unit.one(t, "Service.ExecStart"))
	port := freePort(t)
	for i := range args {
		if i > 0 && args[i-1] == "--listen" {
			args[i] = "127.0.0.1:" + port
		}
	}
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(root, "notify.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	// The unit's defaults name host-wide things (bridge hearth0, its
	// subnet); this Hearth gets names of its own, and they go afterwards.
	bridge, subnet := uniqueNetwork()
	defer removeNetwork(t, bridge)
	env := append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(root, "notify.sock"),
		"HEARTH_VNC_LISTEN=127.0.0.1", "HEARTH_BRIDGE="+bridge, "HEARTH_SUBNET="+subnet)
	for _, assignment := range unit["Service.Environment"] {
		key, value, _ := strings.Cut(assignment, "=")
		if strings.HasPrefix(value, "/") {
			value = filepath.Join(root, value)
		}
		env = append(env, key+"="+value)
	}

	var logs bytes.Buffer
	serve := exec.Command(filepath.Join(root, args[0]), args[1:]...)
	serve.Env = env
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		if serve.ProcessState == nil {
			serve.Process.Kill()
			<-exited
		}
		killLeftovers(t, data)
	}()

	// NotifyAccess=main: like systemd, count only what the main process
	// sends (its containerd child may send a READY=1 of its own).
	startTimeout := unitDuration(t, unit.one(t, "Service.TimeoutStartSec"))
	if got := unit.one(t, "Service.NotifyAccess"); got != "main" {
		t.Fatalf("NotifyAccess=%s, want main", got)
	}
	waitReady(t, notify, serve.Process.Pid, startTimeout, &logs)

	for _, name := range []string{"cert.pem", "key.pem"} {
		if m := mode(t, filepath.Join(data, "tls", name)); m != 0o600 {
			t.Errorf("DATA/tls/%s mode %v, want 0600", name, m)
		}
	}
	pem, err := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("DATA/tls/cert.pem holds no certificate")
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   30 * time.Second,
	}
	defer client.CloseIdleConnections()
	base := "https://127.0.0.1:" + port
	if body := get(t, client, base+"/health", "", ""); !slices.Contains(strings.Split(body, "\n"), "status ok") {
		t.Errorf("/health = %q", body)
	}
	get(t, client, base+"/servers/list", creds.user, creds.secret)
	get(t, client, base+"/servers/list", "admin", creds.secret)

	plain := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	resp, err := plain.Get("http://127.0.0.1:" + port + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != base+"/health" {
		t.Errorf("plain HTTP: %s to %q, want 308 to %s/health", resp.Status, resp.Header.Get("Location"), base)
	}

	if strings.Contains(logs.String(), creds.secret) {
		t.Errorf("hearth logged the admin secret")
	}

	// systemd stops the unit with SIGTERM to the main process (KillMode=process).
	serve.Process.Signal(syscall.SIGTERM)
	stop := unitDuration(t, unit.one(t, "Service.TimeoutStopSec"))
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("hearth exited with %v on SIGTERM; log:\n%s", err, logs.String())
		}
	case <-time.After(stop):
		t.Errorf("hearth did not stop within TimeoutStopSec=%v of SIGTERM", stop)
	}
}

// waitReady reads the notify socket until the process pid sends READY=1,
// checking each sender by its credentials as systemd does.
func waitReady(t *testing.T, notify *net.UnixConn, pid int, timeout time.Duration, logs *bytes.Buffer) {
	t.Helper()
	raw, err := notify.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	notify.SetReadDeadline(time.Now().Add(timeout))
	buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	for {
		n, oobn, _, _, err := notify.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatalf("no READY=1 from hearth within TimeoutStartSec=%v: %v\nhearth's log:\n%s", timeout, err, logs.String())
		}
		sender := -1
		if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
			if cred, err := syscall.ParseUnixCredentials(&msgs[0]); err == nil {
				sender = int(cred.Pid)
			}
		}
		if sender == pid && slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			return
		}
	}
}

// unitDuration reads a systemd time span such as 30s or 2min.
func unitDuration(t *testing.T, span string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.Replace(span, "min", "m", 1))
	if err != nil {
		t.Fatalf("time span %q: %v", span, err)
	}
	return d
}

func get(t *testing.T, client *http.Client, url, user, secret string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.SetBasicAuth(user, secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s as %q: %s %s", url, user, resp.Status, body)
	}
	return string(body)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// uniqueNetwork names a bridge and a /24 for one Hearth under test.
func uniqueNetwork() (bridge, subnet string) {
	r := rand.Uint32()
	return fmt.Sprintf("hearthd%04x", r&0xffff), fmt.Sprintf("10.%d.%d.0/24", 200+(r>>16)%50, (r>>24)&0xff)
}

// removeNetwork deletes the test Hearth's bridge and any iptables rule
// naming it: Hearth keeps both on purpose when it stops, for its guests.
func removeNetwork(t *testing.T, bridge string) {
	t.Helper()
	if exec.Command("ip", "link", "show", bridge).Run() == nil {
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
			t.Errorf("removing bridge %s: %v %s", bridge, err, out)
		}
	}
	for _, table := range []string{"filter", "nat", "mangle"} {
		rules, _ := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		for _, rule := range strings.Split(string(rules), "\n") {
			if !strings.HasPrefix(rule, "-A ") || !strings.Contains(rule, bridge) {
				continue
			}
			// iptables -S prints rules as arguments; quoted comments hold no spaces here.
			args := append([]string{"-w", "-t", table, "-D"}, strings.Fields(strings.TrimPrefix(rule, "-A "))...)
			for i := range args {
				args[i] = strings.Trim(args[i], `"`)
			}
			if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
				t.Errorf("removing iptables rule %q: %v %s", rule, err, out)
			}
		}
	}
}

// killLeftovers fails the test for any process still running from the
// test's data directory (Hearth's own containerd must end with Hearth when
// no guest runs), and ends it.
func killLeftovers(t *testing.T, data string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := processesUsing(data)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for pid, cmdline := range pids {
				t.Errorf("process %d still runs after hearth stopped: %s", pid, cmdline)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func processesUsing(data string) map[int]string {
	found := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if line := strings.ReplaceAll(string(cmdline), "\x00", " "); strings.Contains(line, data) {
			found[pid] = line
		}
	}
	return found
}

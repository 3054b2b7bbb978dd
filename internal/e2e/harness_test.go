package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hearth/internal/instance"
	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/network"
	"hearth/vmm/vmmtest"
)

// binary is the hearth binary TestMain builds once for the whole package.
var binary string

// serveFlags are the flags `hearth serve --help` lists, so the harness
// passes --bridge and friends only where the binary has them.
var serveFlags string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hearth-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hearth")
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go list -m:", err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = strings.TrimSpace(string(root))
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build hearth: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	help, _ := exec.Command(binary, "serve", "--help").CombinedOutput()
	serveFlags = string(help)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func hasFlag(name string) bool { return strings.Contains(serveFlags, "  -"+name+" ") }

// user is one API identity.
type user struct{ id, secret string }

// hearth is one appliance under test: a data directory that outlives
// restarts of the `hearth serve` process running on it.
type hearth struct {
	t         testing.TB
	data      string
	bridge    string
	subnet    string
	extra     []string
	derived   bool   // no --bridge: the instance's own public bridge
	instance  string // the instance's name
	namespace string // its containerd namespace

	mu      sync.Mutex
	cmd     *exec.Cmd
	addr    string // scheme://host:port from the "serving" line
	exited  chan struct{}
	logs    logtest.Buffer // everything every run of this Hearth printed on stderr
	secrets []string       // every secret handed out, none of which may be logged
	exposed []string       // answers that named a host path (see client.do)

	admin user
}

type option func(*hearth)

// withData runs Hearth on dir (e.g. a small loop-mounted filesystem).
func withData(dir string) option { return func(h *hearth) { h.data = dir } }

// withSubnet sets the guest address pool.
func withSubnet(cidr string) option { return func(h *hearth) { h.subnet = cidr } }

// withDerivedNames runs Hearth without --bridge: its public bridge is the
// one its instance derives.
func withDerivedNames() option { return func(h *hearth) { h.derived = true } }

// withArgs adds serve flags.
func withArgs(args ...string) option { return func(h *hearth) { h.extra = append(h.extra, args...) } }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomInt(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// startHearth runs `hearth serve` on a fresh data directory with its own
// port, bridge and subnet, and arranges that everything is torn down (and
// checked for leaks) when the test ends.
func startHearth(t testing.TB, opts ...option) *hearth {
	t.Helper()
	h := &hearth{
		t:      t,
		data:   vmmtest.DataDir(t), // searchable by unprivileged guests
		bridge: "hearth" + randomHex(4)[:7],
		subnet: fmt.Sprintf("10.%d.%d.0/24", 100+randomInt(150), randomInt(256)),
	}
	for _, o := range opts {
		o(h)
	}
	name, err := instance.FromData(h.data)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(h.extra, "--instance"); i >= 0 && i+1 < len(h.extra) {
		name = h.extra[i+1]
	}
	h.instance, h.namespace = name, instance.Prefixed(name)
	if h.derived {
		h.bridge = network.NamesOf(name).PublicBridge()
	}
	h.start()
	cred, err := os.ReadFile(filepath.Join(h.data, "admin.credentials"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^user (\S+)\nsecret (\S+)\n$`).FindStringSubmatch(string(cred))
	if m == nil {
		t.Fatalf("admin.credentials: %q", cred)
	}
	h.admin = user{m[1], m[2]}
	h.secrets = append(h.secrets, m[2])
	t.Cleanup(h.cleanup)
	return h
}

func (h *hearth) args() []string {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", h.data, "--subnet", h.subnet, "--vnc-listen", "127.0.0.1"}
	if hasFlag("bridge") && !h.derived {
		args = append(args, "--bridge", h.bridge)
	}
	if hasFlag("shutdown-grace") {
		args = append(args, "--shutdown-grace", "2s")
	}
	return append(args, h.extra...)
}

// start runs the serve process and waits for its "serving" line.
func (h *hearth) start() {
	h.t.Helper()
	cmd := exec.Command(binary, h.args()...)
	cmd.Env = os.Environ()
	if !h.derived {
		cmd.Env = append(cmd.Env, "HEARTH_BRIDGE="+h.bridge)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	exited := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		re := regexp.MustCompile(`serving (https?://[^\s"]+)`)
		for lines.Scan() {
			fmt.Fprintln(&h.logs, lines.Text())
			if m := re.FindStringSubmatch(lines.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}()
	select {
	case addr := <-addrc:
		h.mu.Lock()
		h.cmd, h.addr, h.exited = cmd, addr, exited
		h.mu.Unlock()
	case <-exited:
		h.t.Fatalf("hearth serve exited before serving:\n%s", h.logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		h.t.Fatalf("hearth serve did not start in 60 s:\n%s", h.logs.String())
	}
}

// url is the base URL of the running process.
func (h *hearth) url() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

func (h *hearth) pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cmd.Process.Pid
}

// kill SIGKILLs the serve process (power failure of Hearth, not the host):
// guests, shims and the private containerd are left as they are.
func (h *hearth) kill() {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop SIGTERMs the serve process and waits for it to end.
func (h *hearth) stop() {
	h.t.Helper()
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if st := cmd.ProcessState; st != nil && !st.Success() {
			h.t.Errorf("hearth serve ended with %v after SIGTERM", st)
		}
	case <-time.After(60 * time.Second):
		h.t.Errorf("hearth serve did not stop within 60 s of SIGTERM")
		cmd.Process.Kill()
		<-exited
	}
}

// restart SIGKILLs (kill=true) or SIGTERMs Hearth and starts it again on
// the same data directory.
func (h *hearth) restart(kill bool) {
	h.t.Helper()
	if kill {
		h.kill()
	} else {
		h.stop()
	}
	h.start()
}

// addUser creates a user with the CLI beside the running serve.
func (h *hearth) addUser(name string, admin bool) *client {
	h.t.Helper()
	args := []string{"user", "add", name, "--data", h.data}
	if admin {
		args = append(args, "--admin")
	}
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("hearth user add: %v %s", err, out)
	}
	m := regexp.MustCompile(`user (\S+)\nsecret (\S+)\n`).FindStringSubmatch(string(out))
	if m == nil {
		h.t.Fatalf("user add printed %q", out)
	}
	h.mu.Lock()
	h.secrets = append(h.secrets, m[2])
	h.mu.Unlock()
	return h.client(user{m[1], m[2]})
}

// importLibrary makes the busybox test guest a library drive (readable by
// everyone) with the CLI and returns its UUID.
func (h *hearth) importLibrary(size string) string {
	h.t.Helper()
	return h.importImage(testguest.Tarball(h.t), size)
}

// secret registers a secret the test uses (e.g. a VNC password), which
// must never appear in Hearth's log.
func (h *hearth) secret(s string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, s)
	return s
}

// checkLogs fails the test if any secret handed out appears in what Hearth logged.
func (h *hearth) checkLogs() {
	logs := h.logs.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.exposed {
		h.t.Errorf("an answer names a host path: %s", e)
	}
	for _, s := range h.secrets {
		if strings.Contains(logs, s) {
			h.t.Errorf("a secret (%s…) appears in Hearth's log", s[:6])
		}
	}
}

// cleanup destroys every server through the API, stops Hearth, checks that
// nothing is left on the host, and removes whatever was.
func (h *hearth) cleanup() {
	h.mu.Lock()
	running := h.cmd != nil && h.cmd.ProcessState == nil
	h.mu.Unlock()
	var servers []string
	if running {
		select {
		case <-h.exited:
		default:
			admin := h.client(h.admin)
			servers = admin.ids("/servers/list")
			for _, id := range servers {
				if r := admin.post("/servers/"+id+"/destroy", ""); r.status != 204 && r.status != 404 {
					h.t.Errorf("cleanup: destroy %s: %d %s", id, r.status, r.body)
				}
			}
			if tasks := h.tasks(); len(tasks) != 0 {
				h.t.Errorf("cleanup: containerd tasks left after destroying every server: %v", tasks)
			}
			h.stop()
		}
	}
	h.checkLogs()
	for _, leak := range h.leaks(false) {
		h.t.Errorf("leak after Hearth stopped: %s", leak)
	}
	// Filter rules carry their server's id (tables may be shared with
	// other Hearths the suite runs at once).
	if rules, err := exec.Command("nft", "list", "ruleset").Output(); err == nil {
		for _, id := range servers {
			if strings.Contains(string(rules), "hearth:"+id+":") {
				h.t.Errorf("leak after Hearth stopped: nftables rules of server %s", id)
			}
		}
	}
	h.forceClean()
}

// leaks lists what Hearth left on the host that a stopped Hearth with no
// servers must not have: loop devices, mounts, namespaces, veths, the
// bridge, processes. While Hearth runs (running=true), the bridge and the
// processes under DATA are expected.
func (h *hearth) leaks(running bool) []string {
	var out []string
	for _, l := range h.loops() {
		out = append(out, "loop device "+l)
	}
	for _, m := range h.mounts() {
		out = append(out, "mount "+m)
	}
	if ns, _ := os.ReadDir(filepath.Join(h.data, "run", "netns")); len(ns) > 0 {
		for _, e := range ns {
			out = append(out, "netns "+e.Name())
		}
	}
	for _, v := range h.veths() {
		out = append(out, "veth "+v)
	}
	if !running {
		if exec.Command("ip", "link", "show", h.bridge).Run() == nil {
			out = append(out, "bridge "+h.bridge)
		}
		for _, p := range h.processes() {
			out = append(out, "process "+p)
		}
	}
	return out
}

// loops lists loop devices whose backing file is under DATA.
func (h *hearth) loops() []string {
	out, _ := exec.Command("losetup", "-a", "-n", "-O", "NAME,BACK-FILE", "--raw").Output()
	var loops []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[1], h.data+"/") {
			loops = append(loops, f[0]+" "+f[1])
		}
	}
	return loops
}

// mounts lists mount points under DATA (but not DATA itself).
func (h *hearth) mounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], h.data+"/") {
			ms = append(ms, f[4])
		}
	}
	return ms
}

// veths lists the links whose master is this run's bridge.
func (h *hearth) veths() []string {
	out, err := exec.Command("ip", "-o", "link", "show", "master", h.bridge).Output()
	if err != nil {
		return nil
	}
	var vs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			vs = append(vs, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return vs
}

// processes lists live processes whose command line names DATA
// (containerd, shims, guests started from its drives).
func (h *hearth) processes() []string {
	entries, _ := os.ReadDir("/proc")
	var ps []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(h.data)) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
			continue
		}
		ps = append(ps, e.Name()+" "+strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "))
	}
	return ps
}

// containerdSocket is the private containerd's socket.
func (h *hearth) containerdSocket() string {
	return filepath.Join(h.data, "containerd", "containerd.sock")
}

// ctr runs ctr on the private containerd, in the instance's namespace.
func (h *hearth) ctr(args ...string) ([]byte, error) {
	return exec.Command("ctr", append([]string{"--address", h.containerdSocket(), "-n", h.namespace}, args...)...).Output()
}

// tasks lists the containerd tasks of Hearth's namespace as "ID STATUS"
// (RUNNING, PAUSED, STOPPED, CREATED...).
func (h *hearth) tasks() []string {
	var tasks []string
	for id, t := range h.taskTable() {
		tasks = append(tasks, id+" "+t.status)
	}
	return tasks
}

type taskRow struct{ pid, status string }

// taskTable is `ctr tasks ls` by task id.
func (h *hearth) taskTable() map[string]taskRow {
	out, err := h.ctr("tasks", "ls")
	if err != nil {
		h.t.Logf("ctr tasks ls: %v", err)
		return nil
	}
	tasks := map[string]taskRow{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		if f := strings.Fields(line); len(f) == 3 {
			tasks[f[0]] = taskRow{pid: f[1], status: f[2]}
		}
	}
	return tasks
}

// containers lists the containerd containers of Hearth's namespace.
func (h *hearth) containers() []string {
	out, err := h.ctr("containers", "ls", "-q")
	if err != nil {
		h.t.Logf("ctr containers ls: %v", err)
		return nil
	}
	return strings.Fields(string(out))
}

// forceClean removes what a failed test left, so one failure does not
// leak into the host: processes, mounts, loop devices, veths, the bridge.
func (h *hearth) forceClean() {
	for _, p := range h.processes() {
		var pid int
		fmt.Sscan(p, &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range slices.Backward(h.mounts()) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	for _, l := range h.loops() {
		exec.Command("losetup", "-d", strings.Fields(l)[0]).Run()
	}
	for _, v := range h.veths() {
		exec.Command("ip", "link", "del", v).Run()
	}
	exec.Command("ip", "link", "del", h.bridge).Run()
}

// client speaks the ElasticHosts API to one Hearth as one user.
type client struct {
	h     *hearth
	u     user
	json  bool
	hc    *http.Client
	libID string // a library drive the test images from
}

// sharedTransport trusts any certificate: --tls auto makes a self-signed one.
var sharedTransport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}

func (h *hearth) client(u user) *client {
	return &client{h: h, u: u, hc: &http.Client{Transport: sharedTransport, Timeout: 2 * time.Minute}}
}

// anonymous is a client without credentials.
func (h *hearth) anonymous() *client { return h.client(user{}) }

// reply is one answer.
type reply struct {
	status int
	word   string // X-Elastic-Error
	body   string
	header http.Header
	err    error
	took   time.Duration
}

func (c *client) do(method, path string, body io.Reader, header ...string) reply {
	req, err := http.NewRequest(method, c.h.url()+path, body)
	if err != nil {
		return reply{err: err}
	}
	if c.u.id != "" || c.u.secret != "" {
		req.SetBasicAuth(c.u.id, c.u.secret)
	}
	if c.json {
		req.Header.Set("Accept", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	c.h.noteHostPaths(method, path, string(b))
	return reply{status: resp.StatusCode, word: resp.Header.Get("X-Elastic-Error"), body: string(b), header: resp.Header, err: err, took: time.Since(start)}
}

// noteHostPaths records an answer that names where Hearth keeps its state
// (DATA, containerd's and runc's state): every error path of every test
// is walked for them. Drive contents and guest console output are the
// guest's business and are not checked.
func (h *hearth) noteHostPaths(method, path, body string) {
	if strings.Contains(path, "/read") || strings.HasSuffix(path, "/console") {
		return
	}
	for _, p := range []string{h.data, "/run/containerd", "/var/lib/containerd"} { // the login page names the default DATA, /var/lib/hearth, on purpose
		if p != "" && strings.Contains(body, p) {
			h.mu.Lock()
			h.exposed = append(h.exposed, fmt.Sprintf("%s %s: %.200q", method, path, body))
			h.mu.Unlock()
			return
		}
	}
}

func (c *client) get(path string) reply { return c.do("GET", path, nil) }

func (c *client) post(path, body string) reply { return c.do("POST", path, strings.NewReader(body)) }

// must fails the test unless the reply has the status.
func (r reply) must(t testing.TB, status int) reply {
	t.Helper()
	if r.err != nil || r.status != status {
		t.Fatalf("want %d, got %d %s %q (%v)", status, r.status, r.word, r.body, r.err)
	}
	return r
}

// props parses a KEY VALUE text answer.
func (r reply) props() map[string]string {
	p := map[string]string{}
	for _, line := range strings.Split(r.body, "\n") {
		k, v, _ := strings.Cut(line, " ")
		if k != "" {
			p[k] = v
		}
	}
	return p
}

// ids returns the first column of a list.
func (c *client) ids(path string) []string {
	r := c.get(path)
	if r.status != 200 {
		c.h.t.Errorf("GET %s: %d %q", path, r.status, r.body)
		return nil
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// driveFrom makes a new drive imaged from src and waits until the copy is done.
func (c *client) driveFrom(t testing.TB, src, size string) string {
	t.Helper()
	id := c.post("/drives/create", "name boot-"+randomHex(3)+"\nsize "+size).must(t, 200).props()["drive"]
	c.post("/drives/"+id+"/image/"+src, "").must(t, 200)
	c.waitImaged(t, id)
	return id
}

func (c *client) waitImaged(t testing.TB, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p := c.get("/drives/"+id+"/info").must(t, 200).props()
		if p["imaging"] == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("drive %s still imaging (%s)", id, p["imaging"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitNoImaging waits until no drive of any user is being imaged.
func (h *hearth) waitNoImaging(t testing.TB) {
	t.Helper()
	admin := h.client(h.admin)
	for _, p := range admin.infos(t, "/drives/info") {
		if p["imaging"] != "" {
			admin.waitImaged(t, p["drive"])
		}
	}
}

// guestConfig is a small busybox guest booting from drive.
func guestConfig(name, drive string) string {
	return "name " + name + "\ncpu 500\nmem 64\npersistent true\nide:0:0 " + drive + "\nboot ide:0:0\n"
}

// waitStatus polls a server's info until its status is want.
func (c *client) waitStatus(t testing.TB, id, want string, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	var p map[string]string
	for time.Now().Before(deadline) {
		r := c.get("/servers/" + id + "/info")
		if r.status == 200 {
			if p = r.props(); p["status"] == want {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("server %s not %s within %s: %v", id, want, within, p)
	return nil
}

// waitConsole polls a server's console output until it contains want.
func (c *client) waitConsole(t testing.TB, id, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var body string
	for time.Now().Before(deadline) {
		if r := c.get("/servers/" + id + "/console"); r.status == 200 {
			if body = r.body; strings.Contains(body, want) {
				return body
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("console of %s never showed %q; last: %q", id, want, body)
	return ""
}

// ctxTimeout is a context for one test step.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

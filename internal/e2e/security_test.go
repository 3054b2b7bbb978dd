package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// role is who asks.
type role int

const (
	anonymous   role = iota // no Authorization header
	wrongSecret             // the owner's UUID with a wrong secret
	other                   // a user with no relation to the objects
	reader                  // a user the drive's readers name
	owner                   // the objects' owner
	admin                   // an admin
	roles
)

var roleNames = [roles]string{"no auth", "wrong secret", "other user", "reader", "owner", "admin"}

// access is one row of the security matrix: a request and what each role
// gets. Placeholders: {S} the owner's server, {D} the owner's drive shared
// with the reader, {MINE} a drive of the caller's own (the owner's for the
// unauthenticated roles), {IP} and {VLAN} the owner's resources, {U} the
// owner's user UUID. Rows run in
// order, and roles in order within a row, so state changes (start, stop,
// destroy) are part of the expectation: the owner starts a server, then the
// admin finds it already active (409).
type access struct {
	method, path, body string
	want               [roles]string // "STATUS" or "STATUS word"
}

const (
	unauth  = "401 auth"
	missing = "404 missing"
	busy    = "409 busy"
)

// securityMatrix is every API endpoint × every role. `go test -run
// TestSecurityMatrix -v` prints it as the Markdown table in the README.
var securityMatrix = []access{
	{"GET", "/servers/list", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/servers/info", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/servers/info/full", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"POST", "/servers/create/stopped", "name m\ncpu 500\nmem 64", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/servers/{S}/info", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"GET", "/servers/{S}/info/full", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/servers/{S}/set", "tags matrix", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/servers/{S}/start", "", [roles]string{unauth, unauth, missing, missing, "204", busy}},
	{"GET", "/servers/{S}/console", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/servers/{S}/pause", "", [roles]string{unauth, unauth, missing, missing, "204", busy}},
	{"POST", "/servers/{S}/resume", "", [roles]string{unauth, unauth, missing, missing, "204", busy}},
	{"POST", "/servers/{S}/reset", "", [roles]string{unauth, unauth, missing, missing, "204", "204"}},
	{"POST", "/servers/{S}/stop", "", [roles]string{unauth, unauth, missing, missing, "204", busy}},
	{"POST", "/servers/{S}/shutdown", "", [roles]string{unauth, unauth, missing, missing, busy, busy}},
	{"POST", "/servers/{S}/destroy", "", [roles]string{unauth, unauth, missing, missing, "204", missing}},

	{"GET", "/drives/list", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/drives/info", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/drives/info/full", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/drives/list/standard", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/drives/info/standard", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"POST", "/drives/create", "name m\nsize 1M", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/drives/{D}/info", "", [roles]string{unauth, unauth, missing, "200", "200", "200"}},
	{"GET", "/drives/{D}/read/0/512", "", [roles]string{unauth, unauth, missing, "200", "200", "200"}},
	{"POST", "/drives/{D}/write/0", strings.Repeat("w", 512), [roles]string{unauth, unauth, missing, missing, "204", "204"}},
	{"POST", "/drives/{D}/set", "tags matrix", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/drives/{MINE}/image/{D}", "", [roles]string{unauth, unauth, missing, "200", "200", "200"}},
	{"POST", "/drives/{D}/image/{MINE}", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/drives/{D}/clone", "name c", [roles]string{unauth, unauth, missing, "200", "200", "200"}},
	{"POST", "/drives/{D}/destroy", "", [roles]string{unauth, unauth, missing, missing, "204", missing}},

	{"GET", "/resources/list", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/resources/info", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/resources/ip/list", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/resources/vlan/info", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"POST", "/resources/ip/create", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"POST", "/resources/vlan/create", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/resources/ip/{IP}/info", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/resources/ip/{IP}/set", "tags matrix", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/resources/vlan/{VLAN}/set", "name matrix", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/resources/ip/{IP}/destroy", "", [roles]string{unauth, unauth, missing, missing, "204", missing}},
	{"POST", "/resources/vlan/{VLAN}/destroy", "", [roles]string{unauth, unauth, missing, missing, "204", missing}},

	{"GET", "/users/info", "", [roles]string{unauth, unauth, "200", "200", "200", "200"}},
	{"GET", "/users/{U}/info", "", [roles]string{unauth, unauth, missing, missing, "200", "200"}},
	{"POST", "/users/{U}/set", "limit:vlans 100", [roles]string{unauth, unauth, unauth, unauth, unauth, "200"}},
}

// TestSecurityMatrix runs every row of securityMatrix against a real
// Hearth and checks status and X-Elastic-Error for each role; it also
// checks the websocket, path tricks, size limits and drive bounds, and
// (in cleanup) that no secret was logged.
func TestSecurityMatrix(t *testing.T) {
	// The wrong-secret column fails once per row: far more than the login
	// limit, which TestLoginLimits checks on its own.
	h := startHearth(t, withArgs("--login-failures", "1000"))
	lib := h.importLibrary("64M")
	ownerC := h.addUser("owner-"+randomHex(2), false)
	otherC := h.addUser("other-"+randomHex(2), false)
	readerC := h.addUser("reader-"+randomHex(2), false)
	adminC := h.client(h.admin)
	clients := [roles]*client{
		h.anonymous(),
		h.client(user{ownerC.u.id, strings.Repeat("0", len(ownerC.u.secret))}),
		otherC, readerC, ownerC, adminC,
	}

	boot := ownerC.driveFrom(t, lib, "64M")
	server := ownerC.post("/servers/create/stopped", guestConfig("matrix", boot)+"password "+h.secret("vnc"+randomHex(2))+"\n").must(t, 200).props()["server"]
	shared := ownerC.post("/drives/create", "name shared\nsize 1M\nreaders "+readerC.u.id).must(t, 200).props()["drive"]
	ip := ownerC.post("/resources/ip/create", "").must(t, 200).props()["resource"]
	vlan := ownerC.post("/resources/vlan/create", "").must(t, 200).props()["resource"]
	mine := [roles]string{}
	for r := other; r < roles; r++ {
		mine[r] = clients[r].post("/drives/create", "name mine\nsize 1M").must(t, 200).props()["drive"]
	}
	mine[anonymous], mine[wrongSecret] = mine[owner], mine[owner]
	expand := func(s string, r role) string {
		return strings.NewReplacer("{S}", server, "{D}", shared, "{MINE}", mine[r], "{IP}", ip, "{VLAN}", vlan, "{U}", ownerC.u.id).Replace(s)
	}

	for _, row := range securityMatrix {
		for r := range roles {
			path := expand(row.path, r)
			if strings.Contains(row.path, "D}") && r >= other {
				// A drive being imaged, or read as an image source, is busy
				// (409) for everyone: let the earlier rows' copies end.
				h.waitNoImaging(t)
			}
			got := clients[r].do(row.method, path, strings.NewReader(row.body))
			if got.err != nil {
				t.Fatalf("%s %s as %s: %v", row.method, row.path, roleNames[r], got.err)
			}
			status, word, _ := strings.Cut(row.want[r], " ")
			if strconv.Itoa(got.status) != status || got.word != word {
				t.Errorf("%s %s as %s: got %d %q, want %s (%q)", row.method, row.path, roleNames[r], got.status, got.word, row.want[r], strings.TrimSpace(got.body))
			}
			if row.path == "/servers/{S}/start" && r == owner && got.status == 204 {
				ownerC.waitStatus(t, server, "active", 30*time.Second)
			}
			if row.path == "/servers/{S}/info" && r == other && got.status == 404 {
				// Another user's object answers exactly as a missing one.
				ghost := clients[r].get("/servers/00000000-0000-4000-8000-000000000000/info")
				if strings.ReplaceAll(got.body, server, "ID") != strings.ReplaceAll(ghost.body, "00000000-0000-4000-8000-000000000000", "ID") {
					t.Errorf("another user's server answers %q, a missing one %q", got.body, ghost.body)
				}
			}
		}
	}
	// Lists show only one's own (readers see shared drives only in the library lists).
	for _, path := range []string{"/servers/list", "/drives/list", "/resources/list", "/servers/info", "/drives/info"} {
		if r := otherC.get(path); strings.Contains(r.body, shared) || strings.Contains(r.body, ip) || strings.Contains(r.body, boot) {
			t.Errorf("%s shows the owner's objects to another user: %q", path, r.body)
		}
	}
	// Credentials in the wrong places are refused, and (checked when the
	// test ends) never logged: a secret as the login, another user's
	// secret. (TestDashboardSession does the same through the login form.)
	for _, u := range []user{{ownerC.u.secret, ownerC.u.secret}, {ownerC.u.id, otherC.u.secret}, {"nobody", adminC.u.secret}} {
		h.client(u).get("/servers/list").must(t, 401)
	}
	t.Logf("security matrix:\n%s", matrixMarkdown())
}

// matrixMarkdown renders securityMatrix as the README's table.
func matrixMarkdown() string {
	var b strings.Builder
	b.WriteString("| request |")
	for _, n := range roleNames {
		b.WriteString(" " + n + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", int(roles)) + "\n")
	for _, row := range securityMatrix {
		fmt.Fprintf(&b, "| `%s %s` |", row.method, row.path)
		for _, w := range row.want {
			b.WriteString(" " + w + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestConsoleWebsocketRefused: the VNC websocket without credentials, with
// wrong ones, with another user's, or from a foreign Origin is refused
// before any RFB byte is sent.
func TestConsoleWebsocketRefused(t *testing.T) {
	h := startHearth(t)
	lib := h.importLibrary("64M")
	ownerC := h.addUser("owner-"+randomHex(2), false)
	otherC := h.addUser("other-"+randomHex(2), false)
	boot := ownerC.driveFrom(t, lib, "64M")
	server := ownerC.post("/servers/create", guestConfig("ws", boot)+"password "+h.secret("vnc"+randomHex(2))+"\n").must(t, 200).props()["server"]
	ownerC.waitStatus(t, server, "active", 30*time.Second)
	host := strings.TrimPrefix(h.url(), "http://")

	cases := []struct {
		name          string
		u             user
		origin, query string
		refused       bool
	}{
		{"no session or token", user{}, "http://" + host, "", true},
		{"forged token", user{}, "http://" + host, "?token=" + randomHex(16), true},
		{"wrong secret", user{ownerC.u.id, strings.Repeat("0", 64)}, "http://" + host, "", true},
		{"other user", otherC.u, "http://" + host, "", true},
		{"owner, foreign Origin", ownerC.u, "http://evil.example", "", true},
		{"owner, same Origin", ownerC.u, "http://" + host, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, first := websocketHandshake(t, host, "/servers/"+server+"/vnc"+c.query, c.u, c.origin)
			if c.refused {
				if status == http.StatusSwitchingProtocols {
					t.Fatalf("websocket accepted (first frame %q)", first)
				}
				if status >= 500 || status < 400 {
					t.Errorf("refused with %d, want a 4xx", status)
				}
				return
			}
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("owner's websocket refused: %d", status)
			}
			// The first binary frame carries the RFB version banner.
			if !bytes.Contains(first, []byte("RFB 003.")) {
				t.Errorf("first frame %q is not an RFB banner", first)
			}
		})
	}
	// A server without a VNC password has no console.
	plain := ownerC.post("/servers/create/stopped", guestConfig("novnc", ownerC.driveFrom(t, lib, "64M"))).must(t, 200).props()["server"]
	if status, _ := websocketHandshake(t, host, "/servers/"+plain+"/vnc", ownerC.u, "http://"+host); status != http.StatusConflict {
		t.Errorf("websocket of a server without a password: %d, want 409", status)
	}
}

// websocketHandshake sends a websocket upgrade by hand and returns the
// status and, when switched, the first frame's payload.
func websocketHandshake(t *testing.T, host, path string, u user, origin string, cookies ...*http.Cookie) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+host+path, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "binary")
	req.Header.Set("Origin", origin)
	if u.id != "" {
		req.SetBasicAuth(u.id, u.secret)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// One server frame: FIN/opcode, length, payload (servers do not mask).
	hdr := make([]byte, 2)
	if _, err := ioReadFull(br, hdr); err != nil {
		return resp.StatusCode, nil
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		ioReadFull(br, ext)
		n = int(ext[0])<<8 | int(ext[1])
	}
	payload := make([]byte, n)
	ioReadFull(br, payload)
	return resp.StatusCode, payload
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestPathTricks: odd server and drive IDs are refused with 400 or 404 and
// never reach the filesystem or answer 500.
func TestPathTricks(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("tricks-"+randomHex(2), false)
	drive := c.post("/drives/create", "name d\nsize 1M").must(t, 200).props()["drive"]
	tricks := []string{
		"..", "%2e%2e", "..%2f..%2fhearth.db", "%2F", "..%5c..%5chearth.db", "%00", drive + "%00",
		strings.Repeat("a", 8000), "not-a-uuid", strings.ToUpper(drive) + "x", "drives", "%E2%80%AE", "~root",
		"../../hearth.db", drive + "/../" + drive,
	}
	for _, trick := range tricks {
		for _, tmpl := range []string{"/servers/%s/info", "/servers/%s/start", "/servers/%s/console", "/drives/%s/info", "/drives/%s/read/0/16", "/drives/%s/write", "/drives/%s/destroy", "/drives/" + drive + "/image/%s", "/resources/ip/%s/info"} {
			path := fmt.Sprintf(tmpl, trick)
			r := c.do("POST", path, strings.NewReader("x"))
			if r.err != nil {
				t.Errorf("POST %.80s: %v", path, r.err)
				continue
			}
			if r.status != 400 && r.status != 404 && r.status != 405 {
				t.Errorf("POST %.80s: %d %q, want 400 or 404", path, r.status, r.body)
			}
		}
	}
	// The drive is intact and the database answers after all that.
	if p := c.get("/drives/"+drive+"/info").must(t, 200).props(); p["size"] != "1048576" {
		t.Errorf("drive after the tricks: %v", p)
	}
	if _, err := os.Stat(h.data + "/hearth.db"); err != nil {
		t.Error(err)
	}
}

// TestLimits: request headers and bodies have bounds, and a drive read
// cannot go past the drive's end.
func TestLimits(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("limits-"+randomHex(2), false)

	r := c.do("GET", "/servers/list", nil, "X-Padding", strings.Repeat("p", 256<<10))
	if r.err == nil && r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("256 KiB header: %d, want 431", r.status)
	}
	big := "name big\ncpu 500\nmem 64\ndescription " + strings.Repeat("d", 1<<20) + "\n"
	if r := c.post("/servers/create/stopped", big); r.err == nil && (r.status != 400 && r.status != 413) {
		t.Errorf("1 MiB create body: %d %q, want 400 or 413", r.status, r.body)
	}
	if ids := c.ids("/servers/list"); len(ids) != 0 {
		t.Errorf("servers after an oversize create: %v", ids)
	}

	const size = 1 << 20
	drive := c.post("/drives/create", "name d\nsize 1M").must(t, 200).props()["drive"]
	c.do("POST", "/drives/"+drive+"/write/0", bytes.NewReader(bytes.Repeat([]byte{0xab}, size))).must(t, 204)
	tail := c.get(fmt.Sprintf("/drives/%s/read/%d/4096", drive, size-10)).must(t, 200)
	if len(tail.body) != 10 {
		t.Errorf("read of 4096 bytes 10 before the end returned %d bytes", len(tail.body))
	}
	if r := c.get(fmt.Sprintf("/drives/%s/read/%d/16", drive, size)); r.status != 200 || len(r.body) != 0 {
		t.Errorf("read at the end: %d, %d bytes", r.status, len(r.body))
	}
	for _, off := range []string{strconv.Itoa(size + 1), "1T", "-1", "9223372036854775807"} {
		if r := c.get("/drives/" + drive + "/read/" + off + "/16"); r.status != 400 {
			t.Errorf("read at offset %s: %d %q, want 400", off, r.status, r.body)
		}
	}
	if r := c.do("POST", fmt.Sprintf("/drives/%s/write/%d", drive, size-10), bytes.NewReader(make([]byte, 20))); r.status != 400 {
		t.Errorf("write across the end: %d %q, want 400", r.status, r.body)
	}
	if r := c.do("POST", "/drives/"+drive+"/write/9223372036854775800", bytes.NewReader(make([]byte, 20))); r.status != 400 {
		t.Errorf("write at an overflowing offset: %d %q, want 400", r.status, r.body)
	}
	// A gzip bomb (64 MiB of zeros in 64 KiB) cannot write past the drive's end.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 64<<20))
	zw.Close()
	if r := c.do("POST", "/drives/"+drive+"/write/0", &bomb, "Content-Encoding", "gzip"); r.status != 400 && r.status != 507 {
		t.Errorf("gzip body inflating past the end: %d %q, want 400", r.status, r.body)
	}
	c.do("POST", "/drives/"+drive+"/write/"+strconv.Itoa(size-10), bytes.NewReader(bytes.Repeat([]byte{0xab}, 10))).must(t, 204)
	// None of the refused writes changed the file's size or its tail.
	if st, err := os.Stat(h.data + "/drives/" + drive + ".img"); err != nil || st.Size() != size {
		t.Errorf("drive file after refused writes: %v %v", st, err)
	}
	if got := c.get(fmt.Sprintf("/drives/%s/read/%d/10", drive, size-10)).must(t, 200).body; got != strings.Repeat("\xab", 10) {
		t.Errorf("tail after refused writes: %q", got)
	}
}

// dashboardLogin logs in through the login form like a browser and returns
// the session cookie (nil when refused) and the login answer.
func dashboardLogin(t *testing.T, h *hearth, login, secret string) (*http.Cookie, *http.Response) {
	t.Helper()
	page := h.anonymous().get("/login")
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page.body)
	if page.status != 200 || m == nil {
		t.Fatalf("login page: %d, no token in %.200q", page.status, page.body)
	}
	form := url.Values{"login": {login}, "secret": {secret}, "token": {m[1]}}
	req, _ := http.NewRequest("POST", h.url()+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", h.url())
	for _, c := range (&http.Response{Header: page.header}).Cookies() {
		req.AddCookie(c)
	}
	resp, err := sharedTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Value != "" && resp.StatusCode == http.StatusSeeOther && strings.Contains(strings.ToLower(c.Name), "session") {
			return c, resp
		}
	}
	return nil, resp
}

// TestDashboardSession: through the real binary, a dashboard login sets an
// HttpOnly, SameSite=Strict session cookie; state changes need the CSRF
// token and the same Origin; a wrong secret is refused and not logged; the
// session opens its owner's console websocket.
func TestDashboardSession(t *testing.T) {
	h := startHearth(t)
	lib := h.importLibrary("32M")
	ownerC := h.addUser("dash-"+randomHex(2), false)
	server := ownerC.post("/servers/create", guestConfig("dash", ownerC.driveFrom(t, lib, "32M"))+"password "+h.secret("vnc"+randomHex(2))+"\n").must(t, 200).props()["server"]

	if c, resp := dashboardLogin(t, h, "nobody", ownerC.u.secret); c != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with a wrong name: %d, session %v", resp.StatusCode, c)
	}
	session, resp := dashboardLogin(t, h, ownerC.u.id, ownerC.u.secret)
	if session == nil {
		t.Fatalf("login refused: %d", resp.StatusCode)
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %q: HttpOnly %v, SameSite %v", session.Name, session.HttpOnly, session.SameSite)
	}
	post := func(path, origin, csrf string) int {
		form := url.Values{"confirmed": {"yes"}} // Stop asks first otherwise
		if csrf != "" {
			form.Set("csrf", csrf)
		}
		req, _ := http.NewRequest("POST", h.url()+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.AddCookie(session)
		resp, err := sharedTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	host := strings.TrimPrefix(h.url(), "http://")
	if status, first := websocketHandshake(t, host, "/servers/"+server+"/vnc", user{}, h.url(), session); status != http.StatusSwitchingProtocols || !bytes.Contains(first, []byte("RFB 003.")) {
		t.Errorf("console websocket with the owner's session: %d %q", status, first)
	}
	if status, _ := websocketHandshake(t, host, "/servers/"+server+"/vnc", user{}, "http://evil.example", session); status != http.StatusForbidden {
		t.Errorf("console websocket with the session from a foreign Origin: %d, want 403", status)
	}
	if code := post("/ui/servers/"+server+"/stop", h.url(), ""); code != http.StatusForbidden {
		t.Errorf("stop without a CSRF token: %d, want 403", code)
	}
	req, _ := http.NewRequest("GET", h.url()+"/ui/servers/"+server, nil)
	req.AddCookie(session)
	page, err := sharedTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("server page has no CSRF token: %d", page.StatusCode)
	}
	if code := post("/ui/servers/"+server+"/stop", "http://evil.example", string(m[1])); code != http.StatusForbidden {
		t.Errorf("stop from a foreign Origin: %d, want 403", code)
	}
	if p := ownerC.get("/servers/"+server+"/info").must(t, 200).props(); p["status"] != "active" {
		t.Errorf("a refused stop stopped the server: %s", p["status"])
	}
	if code := post("/ui/servers/"+server+"/stop", h.url(), string(m[1])); code >= 400 {
		t.Errorf("stop with the token: %d", code)
	}
	ownerC.waitStatus(t, server, "stopped", 30*time.Second)
}

// TestTLS: with --tls auto, the API and the dashboard answer over HTTPS
// (a self-signed certificate kept in DATA/tls), plain HTTP on the same port
// is redirected, and the session cookie is Secure.
func TestTLS(t *testing.T) {
	h := startHearth(t, withArgs("--tls", "auto"))
	if !strings.HasPrefix(h.url(), "https://") {
		t.Fatalf("serving %s with --tls auto", h.url())
	}
	c := h.addUser("tls-"+randomHex(2), false)
	c.post("/drives/create", "name d\nsize 1M").must(t, 200)
	plain := "http://" + strings.TrimPrefix(h.url(), "https://")
	req, _ := http.NewRequest("GET", plain+"/servers/list", nil)
	req.SetBasicAuth(c.u.id, c.u.secret)
	resp, err := sharedTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("plain HTTP: %d Location %q, want 308 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	session, resp := dashboardLogin(t, h, c.u.id, c.u.secret)
	if session == nil {
		t.Fatalf("login over HTTPS refused: %d", resp.StatusCode)
	}
	if !session.Secure {
		t.Error("session cookie over HTTPS is not Secure")
	}
	if _, err := os.Stat(h.data + "/tls"); err != nil {
		t.Errorf("DATA/tls: %v", err)
	}
	// The same certificate after a restart.
	cert := func() []byte {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(h.url(), "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	before := cert()
	h.restart(false)
	if !bytes.Equal(before, cert()) {
		t.Error("--tls auto made a new certificate at the restart")
	}
}

// TestFileModes: what Hearth writes under DATA is not readable by other
// local users (drive images hold guests' disks; the database holds
// secret hashes and every configuration).
func TestFileModes(t *testing.T) {
	h := startHearth(t, withData(filepath.Join(t.TempDir(), "data"))) // Hearth creates DATA
	c := h.addUser("modes-"+randomHex(2), false)
	d := c.post("/drives/create", "name d\nsize 1M").must(t, 200).props()["drive"]
	c.do("POST", "/drives/"+d+"/write/0", strings.NewReader("data")).must(t, 204)
	h.importLibrary("32M")
	err := filepath.WalkDir(h.data, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil || info.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		rel, _ := filepath.Rel(h.data, path)
		switch {
		case rel == "." || rel == "run":
			// Searchable, never listable or writable: unprivileged guests'
			// roots are mounted below DATA/run, and runc reaches them from
			// inside the guest's user namespace.
			if info.Mode().Perm()&0o066 != 0 {
				t.Errorf("%s is mode %v: other users can list or write it", rel, info.Mode().Perm())
			}
		case rel == "drives" || rel == "hearth.db" || strings.HasPrefix(rel, "hearth.db-") ||
			strings.HasPrefix(rel, "drives/") || rel == "admin.credentials":
			if info.Mode().Perm()&0o007 != 0 {
				t.Errorf("%s is mode %v: other users can get at it", rel, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLoginLimits: wrong Basic secrets for one user from one address are
// refused with 429 after the limit (the right one too, until the window
// passes), while another user from the same address gets in; parallel
// guesses get no more evaluations than sequential ones.
func TestLoginLimits(t *testing.T) {
	h := startHearth(t)
	alice, bob := h.addUser("alice-"+randomHex(2), false), h.addUser("bob-"+randomHex(2), false)
	wrong := h.client(user{alice.u.id, strings.Repeat("0", 64)})
	statuses := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- wrong.get("/drives/list").status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[401] > 5 || counts[401]+counts[429] != 20 {
		t.Fatalf("20 parallel wrong secrets: %v; want at most 5 × 401, the rest 429", counts)
	}
	if r := alice.get("/drives/list"); r.status != 429 {
		t.Fatalf("the right secret after the burst: %d, want 429", r.status)
	}
	bob.get("/drives/list").must(t, 200)
}

// TestSlowClients: a client that trickles its headers (slowloris) is cut
// off by the header timeout, and one address gets no more than its share
// of connections, against the real binary.
func TestSlowClients(t *testing.T) {
	h := startHearth(t)
	addr := strings.TrimPrefix(strings.TrimPrefix(h.url(), "http://"), "https://")
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Slowloris: a header byte every second, for up to a minute.
	slow := dial()
	fmt.Fprint(slow, "GET /drives/list HTTP/1.1\r\nHost: hearth\r\nX-Slow: ")
	cut := false
	for range 60 {
		if _, err := slow.Write([]byte("a")); err != nil {
			cut = true
			break
		}
		slow.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := slow.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cut = true // closed (after a 408, or at once)
			break
		}
	}
	if !cut {
		t.Fatal("a client trickling its headers for a minute was not cut off")
	}
	// Connections per address: past the cap, a new one is closed at once.
	var held []net.Conn
	for range 128 {
		held = append(held, dial())
	}
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection 129 from one address: read %d bytes, %v; want it closed", n, err)
	}
	for _, c := range held {
		c.Close()
	}
	// Once they are gone, the address is served again.
	deadline := time.Now().Add(10 * time.Second)
	for h.anonymous().get("/health").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the address is not served again after its connections closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package dash

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"hearth/web/eh"
)

// refused checks a form sent back with bad input as a person meets it: a 4xx
// answer; at the top of the form an error summary (role alert) that takes
// focus and links to the field at fault; the field marked invalid and
// described by its message; what was typed kept; and the message plain —
// the want text, without UUIDs, Go error tails or API key prefixes.
func refused(t *testing.T, what string, r response, summary, field, typed, want string) {
	t.Helper()
	if r.status < 400 || r.status >= 500 {
		t.Errorf("%s: status %d, want 4xx", what, r.status)
	}
	box := regexp.MustCompile(`(?s)<div class="error-summary" id="` + summary + `" role="alert" tabindex="-1" autofocus data-error-summary>(.*?)</div>`).FindStringSubmatch(r.body)
	if box == nil {
		t.Fatalf("%s: no focused error summary %s in\n%s", what, summary, r.body)
	}
	if !strings.Contains(box[1], `<a href="#`+field+`">`) {
		t.Errorf("%s: summary does not link to #%s: %s", what, field, box[1])
	}
	text := plainText(box[1])
	if !strings.Contains(text, want) {
		t.Errorf("%s: summary %q, want it to say %q", what, text, want)
	}
	for _, bad := range []string{"invalid argument", ": busy", "key ", "not found:"} {
		if strings.Contains(text, bad) {
			t.Errorf("%s: summary %q reads like API output (%q)", what, text, bad)
		}
	}
	if uuid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`); uuid.MatchString(text) {
		t.Errorf("%s: summary %q shows a UUID", what, text)
	}
	input := regexp.MustCompile(`<(?:input|select|textarea)[^>]*\bid="` + regexp.QuoteMeta(field) + `"[^>]*>`).FindString(r.body)
	if !strings.Contains(input, `aria-invalid="true"`) || !regexp.MustCompile(`aria-describedby="[^"]*(`+regexp.QuoteMeta(field)+`-error|`+summary+`)`).MatchString(input) {
		t.Errorf("%s: field %s is not marked invalid and described by its message: %s", what, field, input)
	}
	if typed != "" && !strings.Contains(input, `value="`+typed+`"`) {
		t.Errorf("%s: field %s lost what was typed (%q): %s", what, field, typed, input)
	}
}

// plainText is the text of an HTML fragment.
func plainText(fragment string) string {
	return html.UnescapeString(strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(fragment, " ")), " "))
}

func TestFormsSummarizeErrors(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)

	r := b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"custom"}, "cpu": {"99"}, "mem": {"512"},
		"source": {"blank"}, "drivesize": {"64M"}, "nic0": {"auto"}})
	refused(t, "create server", r, "create-problems", "cpu", "99", "Custom CPU (MHz): 99 is out of range 100–100000 MHz")

	r = b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"}, "drivesize": {"99T"}, "nic0": {"auto"}})
	refused(t, "create server, drive too large", r, "create-problems", "drivesize", "99T", "Drive size: 99 TiB is too large: the largest drive is 16 TiB")

	srv, err := e.service.CreateServer(context.Background(), e.admin, eh.Props{"name": "web2", "cpu": "1000", "mem": "256"}, false)
	if err != nil {
		t.Fatal(err)
	}
	r = b.post("/ui/servers/"+srv["server"]+"/set", url.Values{"mem": {"lots"}})
	refused(t, "server settings", r, "server-problems", "mem", "lots", `Memory (MB): "lots" is not a whole number of MB`)

	r = b.post("/ui/drives/new", url.Values{"name": {"big"}, "size": {"99T"}})
	refused(t, "create drive", r, "drive-problems", "size", "99T", "Size: 99 TiB is too large: the largest drive is 16 TiB")
	r = b.post("/ui/drives/new", url.Values{"name": {""}, "size": {"1G"}})
	refused(t, "create drive without a name", r, "drive-problems", "name", "", "Name: Give the drive a name.")

	r = b.post("/ui/resources/vlan/new", url.Values{"name": {strings.Repeat("v", eh.MaxNameLength+1)}})
	refused(t, "create VLAN", r, "vlan-problems", "vlan-name", strings.Repeat("v", eh.MaxNameLength+1), "Name of the new VLAN: Longer than 256 bytes")
	r = b.post("/ui/resources/ip/new", url.Values{"name": {strings.Repeat("i", eh.MaxNameLength+1)}})
	refused(t, "reserve IP", r, "ip-problems", "ip-name", strings.Repeat("i", eh.MaxNameLength+1), "Name of the new IP: Longer than 256 bytes")
	if vlan := regexp.MustCompile(`<input[^>]*id="vlan-name"[^>]*>`).FindString(r.body); strings.Contains(vlan, "iiii") || strings.Contains(vlan, "aria-invalid") {
		t.Errorf("reserve IP: the VLAN form got the IP form's input or error: %s", vlan)
	}

	alice, _ := e.user("alice")
	r = b.post("/ui/users/"+alice.ID+"/limits", url.Values{"limit:mem": {"plenty"}})
	refused(t, "account limits", r, "limits-problems", "limit:mem", "plenty", `Limit of Memory (all servers): "plenty" is not a number of MB or a size (or none)`)

	r = b.post("/ui/users/new", url.Values{"name": {"has space"}})
	refused(t, "add user", r, "user-problems", "name", "has space", `User name: "has space": a user name has no spaces, colons or control characters`)
	r = b.post("/ui/users/new", url.Values{"name": {""}})
	refused(t, "add user without a name", r, "user-problems", "name", "", "User name: Must not be empty")

	out := e.browser()
	r = out.tryLogin("root", "wrong")
	refused(t, "login", r, "login-error", "login", "root", "Wrong user name or secret.")
	if !strings.Contains(r.body, `id="secret"`) || !regexp.MustCompile(`<input[^>]*id="secret"[^>]*aria-invalid="true"`).MatchString(r.body) {
		t.Error("login: the secret field is not marked invalid")
	}
}

// TestUsersPageForbidden: a logged-in user who is not an admin is refused the
// users page with 403 (not 401: their login is fine) and a plain page.
func TestUsersPageForbidden(t *testing.T) {
	e := newEnv(t)
	_, secret := e.user("alice")
	b := e.browser()
	b.login("alice", secret)
	for _, r := range []response{b.get("/ui/users"), b.post("/ui/users/new", url.Values{"name": {"mallory"}})} {
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "Only an admin manages users. Your own usage and limits are on the Account page.") {
			t.Errorf("non-admin on the users page: %d %s", r.status, plainText(r.body))
		}
	}
}

// TestResizeRefusedWithoutScript: a resize refused without the script
// comes back in the drive's row as the script shows it — an error summary
// in the row's form, the size as typed, the field marked — with the
// refusal's status, and the drive keeps its size.
func TestResizeRefusedWithoutScript(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	info := b.createStarted("web1")
	drive := info["ide:0:0"]
	r := b.post("/ui/drives/"+drive+"/resize", url.Values{"size": {"128M"}})
	if r.status != http.StatusConflict {
		t.Fatalf("resize of a drive in use: %d, want 409", r.status)
	}
	row := section(r.body, `id="drive-`+drive+`"`)
	for _, want := range []string{
		`id="resize-problems-` + drive + `" role="alert"`,
		`New size of web1 boot: web1 boot is attached to running server web1 — stop web1 first`,
		`value="128M" size="7" aria-invalid="true" aria-describedby="resize-problems-` + drive + `"`,
	} {
		if !strings.Contains(row, want) {
			t.Errorf("the drive's row lacks %q:\n%s", want, row)
		}
	}
	if p, _ := e.service.DriveInfo(context.Background(), e.admin, drive); p["size"] != strconv.Itoa(64<<20) {
		t.Errorf("the refused resize changed the drive: size %s", p["size"])
	}
}

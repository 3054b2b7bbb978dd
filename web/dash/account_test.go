package dash

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"hearth/storage"
	"hearth/web/eh"
)

// limitRowText is the text of one limit's row of the account page, tags removed.
func limitRowText(body, key string) string {
	m := regexp.MustCompile(`(?s)<tr data-limit="` + regexp.QuoteMeta(key) + `">(.*?)</tr>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], " ")), " ")
}

func TestAccountUsageAndLimits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, secret := e.user("alice")
	if _, err := e.service.CreateServer(ctx, alice, eh.Props{"name": "a", "cpu": "1000", "mem": "512"}, false); err != nil {
		t.Fatal(err)
	}
	admin := e.browser()
	admin.login("root", e.secret)
	if r := admin.post("/ui/users/"+alice.ID+"/limits", url.Values{"limit:mem": {"1G"}, "limit:servers": {"2"}}); r.status != http.StatusSeeOther {
		t.Fatalf("set limits: %d %s", r.status, r.body)
	}
	if r := admin.post("/ui/users/"+alice.ID+"/limits", url.Values{"limit:cpu": {"lots"}}); r.status != http.StatusBadRequest ||
		errorNextTo(r.body, "limit:cpu") != `"lots" is not a number of MHz (or none)` {
		t.Fatalf("bad limit: %d %q", r.status, errorNextTo(r.body, "limit:cpu"))
	}

	// Alice sees her usage against her limits, and cannot change them.
	b := e.browser()
	b.login(alice.Name, secret)
	page := b.get("/ui/account")
	if page.status != http.StatusOK {
		t.Fatalf("account page: %d", page.status)
	}
	for key, want := range map[string]string{
		"limit:mem":     "Memory (all servers) 512 MiB 1 GiB 50%",
		"limit:servers": "Servers 1 2 50%",
		"limit:drives":  "Drive space 0 B none unlimited",
	} {
		if got := limitRowText(page.body, key); got != want {
			t.Errorf("row %s = %q, want %q", key, got, want)
		}
	}
	if strings.Contains(page.body, `name="limit:mem"`) {
		t.Error("a plain user is offered the limits form")
	}
	if r := b.post("/ui/users/"+alice.ID+"/limits", url.Values{"limit:mem": {""}}); r.status != http.StatusUnauthorized {
		t.Errorf("plain user sets their limits: %d", r.status)
	}
	bob, _ := e.user("bob")
	if r := b.get("/ui/users/" + bob.ID); r.status != http.StatusNotFound {
		t.Errorf("another user's account: %d", r.status)
	}
	// Over the limit: the create form shows the refusal naming the limit.
	r := b.post("/ui/servers/new", url.Values{"name": {"big"}, "size": {"custom"}, "cpu": {"1000"}, "mem": {"1024"},
		"source": {"blank"}, "drivesize": {"8M"}, "nic0": {"none"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "limit:mem: 1536 MB of 1024 MB") {
		t.Errorf("create over the limit: %d %s", r.status, r.body)
	}
}

// A drive a plain user shares with everyone is offered to others labelled
// with its owner, and never pre-selected: only an admin's library image is.
func TestSharedDriveIsNeverTheDefaultImage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, _ := e.user("alice")
	bob, secret := e.user("bob")
	lib, err := e.store.CreateDrive(ctx, storage.Drive{Owner: e.admin.ID, Name: "Debian", Size: 4 << 20, Library: true,
		Props: map[string]string{"readers": storage.Everyone}})
	if err != nil {
		t.Fatal(err)
	}
	// "aaa" sorts before "Debian": it was everyone's default.
	shared, err := e.service.CreateDrive(ctx, alice, eh.Props{"name": "aaa", "size": "4M", "readers": eh.AllUsers})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login(bob.Name, secret)
	page := b.get("/ui/servers/new").body
	selected := regexp.MustCompile(`<option value="(lib:[^"]+)" selected>`).FindAllStringSubmatch(page, -1)
	if len(selected) != 1 || selected[0][1] != "lib:"+lib.ID {
		t.Errorf("pre-selected images %q, want only the library's %s", selected, lib.ID)
	}
	if !regexp.MustCompile(`<option value="lib:` + shared["drive"] + `">aaa \(4 MiB\) — shared by alice</option>`).MatchString(page) {
		t.Errorf("alice's shared drive is not offered labelled as hers: %s", page)
	}
	// Without any library image, nothing shared is pre-selected either.
	if err := e.store.DeleteDrive(ctx, lib.ID); err != nil {
		t.Fatal(err)
	}
	page = b.get("/ui/servers/new").body
	if regexp.MustCompile(`<option value="lib:[^"]+" selected>`).MatchString(page) {
		t.Errorf("a shared drive is pre-selected: %s", page)
	}
	if !strings.Contains(b.get("/ui/drives").body, "shared by alice") {
		t.Error("the drives page does not say whose the shared drive is")
	}
}

package dash

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"hearth/web/eh"
)

// otherKeys returns the server page's "Other keys" textarea as shown.
func otherKeys(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<textarea id="extra"[^>]*>(.*?)</textarea>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no Other keys field on the server page: %s", body)
	}
	return html.UnescapeString(m[1])
}

// The guest's runtime counters are what the server reports, not
// configuration: they are not among the editable "Other keys" (the page
// shows them under Live counters), and posting one is refused next to that
// field, naming the key, without changing anything.
func TestRuntimeCountersNotEditable(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	r := b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}, "start": {"true"}, "persistent": {"true"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	info, _ := e.service.ServerInfo(context.Background(), e.admin, id)
	if info["cpu:usage"] == "" || info["mem:usage"] == "" {
		t.Fatalf("the running server reports no cpu:usage/mem:usage: %v", info)
	}
	set := url.Values{"name": {"web1"}, "user:role": nil}
	r = b.get("/ui/servers/" + id)
	if extra := otherKeys(t, r.body); strings.Contains(extra, "usage") || strings.Contains(extra, ":bytes") {
		t.Errorf("runtime counters among the running server's Other keys: %q", extra)
	}
	if !regexp.MustCompile(`Memory used[\s\S]{0,200}48`).MatchString(r.body) {
		t.Errorf("the server page does not show the memory in use (48 MiB) under Live counters: %s", r.body)
	}

	for _, status := range []string{"active", "stopped"} {
		if status == "stopped" {
			if r := b.post("/ui/servers/"+id+"/stop", url.Values{"back": {"/ui/servers"}, "confirmed": {"yes"}}); r.status != http.StatusSeeOther {
				t.Fatalf("stop: %d", r.status)
			}
		}
		before, _ := e.service.ServerInfo(context.Background(), e.admin, id)
		set.Set("extra", "cpu:usage 5\nmem:usage 1")
		r = b.post("/ui/servers/"+id+"/set", set)
		msg := errorNextTo(r.body, "extra")
		if r.status != http.StatusBadRequest || !strings.Contains(msg, "usage") {
			t.Errorf("%s server, runtime counters posted as Other keys: %d, next to Other keys %q; want 400 naming the key", status, r.status, msg)
		}
		after, _ := e.service.ServerInfo(context.Background(), e.admin, id)
		if after["mem"] != before["mem"] || after["cpu"] != before["cpu"] || after["status"] != before["status"] {
			t.Errorf("%s server changed by a refused form: %v → %v", status, before, after)
		}
	}
	// The API refuses them the same way, naming the key.
	_, err := e.service.SetServer(context.Background(), e.admin, id, eh.Props{"cpu:usage": "5"})
	if ehErr := eh.AsError(err); err == nil || ehErr.Status != http.StatusBadRequest || ehErr.Key != "cpu:usage" {
		t.Errorf("API set cpu:usage: %v (key %q), want 400 naming cpu:usage", err, ehErr.Key)
	}
}

// nicModelGreyed matches a container's NIC model: shown greyed, with the
// reason, and never sent (no name).
var nicModelGreyed = regexp.MustCompile(`<select id="nicmodel" disabled aria-describedby="nicmodel-hint">`)

// A container's interface is virtio-style whatever nic:N:model says: its
// page greys the model with the reason instead of offering it, a model
// posted anyway changes nothing (on create or on its page), and the API
// still takes the key from clients. A VM gets the card the model names:
// the create form offers the models, and so does a stopped VM's page.
func TestNICModelForVMs(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	create := b.get("/ui/servers/new")
	if !strings.Contains(create.body, `<select id="nicmodel" name="nicmodel"`) || !strings.Contains(create.body, "containers always get a virtio-style interface") {
		t.Fatalf("the create form does not offer the NIC model for VMs, saying containers ignore it: %s", create.body)
	}
	r := b.post("/ui/servers/new", url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"auto"}, "nicmodel": {"e1000"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	info, _ := e.service.ServerInfo(context.Background(), e.admin, id)
	if info["nic:0:model"] != "virtio" {
		t.Fatalf("a container created with nic:0:model %q, want virtio", info["nic:0:model"])
	}

	page := b.get("/ui/servers/" + id)
	if !nicModelGreyed.MatchString(page.body) || !strings.Contains(page.body, html.EscapeString(nicModelNote)) || strings.Contains(page.body, `name="nicmodel"`) {
		t.Fatalf("the stopped container's page offers the NIC model: %s", page.body)
	}
	if r := b.post("/ui/servers/"+id+"/set", url.Values{"nicmodel": {"rtl8139"}, "vlan": {""}}); r.status != http.StatusSeeOther {
		t.Fatalf("set with a NIC model: %d %s", r.status, r.body)
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); info["nic:0:model"] != "virtio" {
		t.Fatalf("a posted NIC model changed a container's nic:0:model to %q", info["nic:0:model"])
	}

	// A model an API client records is kept and said, not offered.
	if _, err := e.service.SetServer(context.Background(), e.admin, id, eh.Props{"nic:0:model": "e1000"}); err != nil {
		t.Fatalf("the API no longer takes nic:0:model: %v", err)
	}
	page = b.get("/ui/servers/" + id)
	if !nicModelGreyed.MatchString(page.body) || !strings.Contains(page.body, "<code>nic:0:model e1000</code> recorded") {
		t.Fatalf("the server page does not say the recorded model: %s", page.body)
	}
	if r := b.post("/ui/servers/"+id+"/set", url.Values{"name": {"web2"}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); info["nic:0:model"] != "e1000" || info["name"] != "web2" {
		t.Fatalf("after a rename from the page: %v; want the recorded model kept", info)
	}

	// A VM: created with the model chosen, changed on its page while stopped.
	r = b.post("/ui/servers/new", url.Values{"name": {"vm1"}, "type": {"vm"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"auto"}, "nicmodel": {"e1000"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create a VM: %d %s", r.status, r.body)
	}
	vm := strings.TrimPrefix(r.location, "/ui/servers/")
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, vm); info["nic:0:model"] != "e1000" || info["type"] != "vm" {
		t.Fatalf("a VM created with e1000: type %q, nic:0:model %q", info["type"], info["nic:0:model"])
	}
	page = b.get("/ui/servers/" + vm)
	if !strings.Contains(page.body, `<select id="nicmodel" name="nicmodel" aria-describedby="nicmodel-hint">`) || !strings.Contains(page.body, `<option value="e1000" selected>`) {
		t.Fatalf("the stopped VM's page does not offer the NIC model, e1000 chosen: %s", page.body)
	}
	if r := b.post("/ui/servers/"+vm+"/set", url.Values{"nicmodel": {"rtl8139"}, "vlan": {""}}); r.status != http.StatusSeeOther {
		t.Fatalf("set a VM's NIC model: %d %s", r.status, r.body)
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, vm); info["nic:0:model"] != "rtl8139" {
		t.Fatalf("a VM's NIC model set to rtl8139 reads %q", info["nic:0:model"])
	}
}

// A Hearth whose guest network could not be set up offers no NIC: the
// forms select No network and grey the rest with the reason, and a NIC sent
// anyway is refused next to its field instead of leaving a server that
// cannot start.
func TestNoNetworkNotOffered(t *testing.T) {
	e := newEnv(t)
	const why = "This Hearth has no guest network."
	e.dash.cfg.NoNetwork = why
	b := e.browser()
	b.login("root", e.secret)
	vlan, err := e.service.CreateResource(context.Background(), e.admin, "vlan", eh.Props{"name": "backend"})
	if err != nil {
		t.Fatal(err)
	}
	create := b.get("/ui/servers/new")
	for _, want := range []string{`<option value="auto" disabled>Automatic address</option>`, `<option value="none" selected>No network</option>`,
		`<span class="hint" id="nic0-hint">` + why, `<span class="hint" id="vlan-hint">` + why, `<option value="` + vlan["resource"] + `" disabled>`} {
		if !strings.Contains(create.body, want) {
			t.Errorf("the create form without a network lacks %s", want)
		}
	}

	form := url.Values{"name": {"web1"}, "size": {"small"}, "source": {"blank"}, "drivesize": {"64M"}, "nic0": {"auto"}, "vlan": {vlan["resource"]}}
	r := b.post("/ui/servers/new", form)
	if r.status != http.StatusBadRequest || !strings.Contains(errorNextTo(r.body, "nic0"), why) || !strings.Contains(errorNextTo(r.body, "vlan"), why) {
		t.Fatalf("create with NICs and no network: %d, next to nic0 %q, vlan %q", r.status, errorNextTo(r.body, "nic0"), errorNextTo(r.body, "vlan"))
	}
	if servers, _ := e.service.ServersInfo(context.Background(), e.admin); len(servers) != 0 {
		t.Fatalf("a refused create left servers: %v", servers)
	}
	form.Set("nic0", "none")
	form.Del("vlan")
	r = b.post("/ui/servers/new", form)
	if r.status != http.StatusSeeOther {
		t.Fatalf("create with no network: %d %s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.location, "/ui/servers/")
	r = b.post("/ui/servers/"+id+"/set", url.Values{"nic0": {"auto"}})
	if r.status != http.StatusBadRequest || !strings.Contains(errorNextTo(r.body, "nic0"), why) {
		t.Fatalf("adding a NIC without a network: %d, next to nic0 %q", r.status, errorNextTo(r.body, "nic0"))
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, id); info["nic:0:model"] != "" {
		t.Fatalf("a refused NIC was stored: %v", info)
	}
	if r := b.post("/ui/servers/"+id+"/set", url.Values{"name": {"web2"}, "nic0": {"none"}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename without a network: %d %s", r.status, r.body)
	}
}

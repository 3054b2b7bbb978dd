package dash

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// typeSelect matches the type field and whether it is disabled.
var typeSelect = regexp.MustCompile(`<select id="type" name="type"( disabled)?`)

// A server's type (container or VM) is shown in the list and on its page,
// chosen in the create form and changed on the page while the server is
// stopped; while it runs the field is greyed with the reason and a type
// posted anyway is refused next to it. Where VMs run under software
// emulation the page says so next to a VM's type, and the forms next to
// the field; with KVM they say nothing of it. The console page learns that
// a VM's console is a VGA display.
func TestServerType(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	create := b.get("/ui/servers/new")
	if m := typeSelect.FindStringSubmatch(create.body); m == nil || m[1] != "" || !strings.Contains(create.body, tcgNote) {
		t.Fatalf("the create form has no enabled type field with the TCG note: %s", create.body)
	}
	r := b.post("/ui/servers/new", url.Values{"name": {"desk"}, "type": {"vm"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}, "start": {"true"}, "password": {"vmpass"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create a VM: %d %s", r.status, r.body)
	}
	vm := strings.TrimPrefix(r.location, "/ui/servers/")
	r = b.post("/ui/servers/new", url.Values{"name": {"box"}, "size": {"small"}, "source": {"blank"},
		"drivesize": {"64M"}, "nic0": {"none"}, "password": {"ctpass"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create a container: %d %s", r.status, r.body)
	}
	ct := strings.TrimPrefix(r.location, "/ui/servers/")
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, vm); info["type"] != "vm" || info["status"] != "active" {
		t.Fatalf("created VM: type %q, status %q", info["type"], info["status"])
	}

	list := b.get("/ui/servers/rows")
	for _, want := range []string{"VM · " + shortID(vm), "Container · " + shortID(ct)} {
		if !strings.Contains(list.body, want) {
			t.Errorf("the server list does not say %q: %s", want, list.body)
		}
	}

	page := b.get("/ui/servers/" + vm)
	if !regexp.MustCompile(`<dt>Type</dt><dd>VM <span class="muted" data-accel-note>— ` + regexp.QuoteMeta(tcgNote)).MatchString(page.body) {
		t.Errorf("the VM's page does not say its type with the TCG note: %s", page.body)
	}
	if m := typeSelect.FindStringSubmatch(page.body); m == nil || m[1] == "" || !strings.Contains(page.body, "Stop the server to change its type.") {
		t.Errorf("the running VM's type field is not greyed with the reason: %s", page.body)
	}
	r = b.post("/ui/servers/"+vm+"/set", url.Values{"type": {"container"}})
	if msg := errorNextTo(r.body, "type"); r.status != http.StatusBadRequest || msg == "" {
		t.Errorf("type posted to the running VM: %d, next to the field %q; want it refused there", r.status, msg)
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, vm); info["type"] != "vm" {
		t.Fatalf("a refused type change made the VM a %q", info["type"])
	}
	if page := b.get("/ui/servers/" + ct); !strings.Contains(page.body, "<dt>Type</dt><dd>Container </dd>") {
		t.Errorf("the container's page does not say its type (without a VM note): %s", page.body)
	}

	for id, want := range map[string]string{vm: "vga", ct: "terminal"} {
		r := b.get("/ui/servers/" + id + "/console.json")
		var answer map[string]any
		if err := json.Unmarshal([]byte(r.body), &answer); err != nil || answer["display"] != want {
			t.Errorf("console.json of %s: %s (%v), want display %q", id, r.body, err, want)
		}
	}

	// Stopped, the container becomes a VM from its page.
	if r := b.post("/ui/servers/"+ct+"/set", url.Values{"type": {"vm"}}); r.status != http.StatusSeeOther {
		t.Fatalf("make the stopped container a VM: %d %s", r.status, r.body)
	}
	if info, _ := e.service.ServerInfo(context.Background(), e.admin, ct); info["type"] != "vm" {
		t.Fatalf("the stopped server's type is %q after the form chose vm", info["type"])
	}

	e.dash.cfg.Accelerator = "kvm"
	for _, path := range []string{"/ui/servers/new", "/ui/servers/" + vm} {
		if r := b.get(path); strings.Contains(r.body, tcgNote) || strings.Contains(r.body, "data-accel-note") {
			t.Errorf("%s says VMs are emulated on a host with KVM: %s", path, r.body)
		}
	}
}

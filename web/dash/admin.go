package dash

import (
	"cmp"
	"net/http"
	"sort"
	"strings"

	"hearth/web/eh"
)

// resourcesView is the network page: static IPs and VLANs.
type resourcesView struct {
	IPs       []eh.Props
	VLANs     []eh.Props
	Users     names
	ShowOwner bool
	CSRF      string
	// Servers using each resource (IP address or VLAN UUID → server links).
	UsedBy           map[string][]serverRef
	Errors           formErrors // "ip" / "vlan": the create form's error
	IPName, VLANName string
	VLANNameTaken    bool // the caller has a VLAN named VLANName: warned once
}

var resourceTypes = map[string]string{"ip": "static IP", "vlan": "VLAN"}

// resourceType reads the {type} of a resource path; an unknown one is
// answered here (missing) and ok is false.
func (d *Dashboard) resourceType(rq *request) (typ, label string, ok bool) {
	typ = rq.PathValue("type")
	if label, ok = resourceTypes[typ]; !ok {
		d.failed(rq, "/ui/resources", eh.Missingf("no resource type %q", typ))
	}
	return typ, label, ok
}

func (d *Dashboard) resourcesView(rq *request) (resourcesView, error) {
	ctx := rq.Context()
	v := resourcesView{ShowOwner: rq.user.Admin, CSRF: rq.sess.csrf, UsedBy: map[string][]serverRef{}, Errors: formErrors{}}
	var err error
	if v.IPs, err = d.backend.ResourcesInfo(ctx, rq.user, "ip"); err != nil {
		return v, err
	}
	if v.VLANs, err = d.backend.ResourcesInfo(ctx, rq.user, "vlan"); err != nil {
		return v, err
	}
	for _, l := range [][]eh.Props{v.IPs, v.VLANs} {
		sort.SliceStable(l, func(i, j int) bool { return l[i]["name"]+l[i]["resource"] < l[j]["name"]+l[j]["resource"] })
	}
	v.Users = d.lookupNames(ctx, rq.user)
	if servers, err := d.backend.ServersInfo(ctx, rq.user); err == nil {
		for _, p := range servers {
			ref := serverRef{ID: p["server"], Name: p["name"]}
			if ip := p["nic:0:dhcp"]; ip != "" && ip != "auto" {
				v.UsedBy[ip] = append(v.UsedBy[ip], ref)
			}
			if vlan := p["nic:1:vlan"]; vlan != "" {
				v.UsedBy[vlan] = append(v.UsedBy[vlan], ref)
			}
		}
	}
	return v, nil
}

func (d *Dashboard) resourcesPage(rq *request) {
	showView(d, rq, "Network", "resources", d.resourcesView, resourcesPage)
}

func (d *Dashboard) createResource(rq *request) {
	typ, label, ok := d.resourceType(rq)
	if !ok {
		return
	}
	name := strings.TrimSpace(rq.PostFormValue("name"))
	props := eh.Props{}
	if name != "" {
		props["name"] = name
	}
	// A VLAN is chosen by name in the server forms: it needs one, and a
	// second VLAN of the same name is created only when asked twice.
	var err error
	taken := false
	if typ == "vlan" {
		if name == "" {
			err = eh.Usagef("Give the VLAN a name.")
		} else if strings.TrimSpace(rq.PostFormValue("duplicate")) != name {
			vlans, lerr := d.backend.ResourcesInfo(rq.Context(), rq.user, typ)
			taken = lerr == nil && ownNamed(vlans, rq.user.ID, name)
		}
	}
	var p eh.Props
	if err == nil && !taken {
		p, err = d.backend.CreateResource(rq.Context(), rq.user, typ, props)
	}
	if err != nil || taken {
		v, verr := d.resourcesView(rq)
		if verr != nil {
			d.failed(rq, "/ui/resources", cmp.Or(err, verr))
			return
		}
		status := http.StatusConflict
		if err != nil {
			v.Errors[typ], status = fieldMessage(err), eh.AsError(err).Status
		}
		if typ == "ip" { // what was typed goes back into the form it was typed in
			v.IPName = name
		} else {
			v.VLANName, v.VLANNameTaken = name, taken
		}
		rq.w.WriteHeader(status)
		render(rq.w, rq.Request, resourcesPage(d.pageData(rq, "Network", "resources"), v))
		return
	}
	what := p["resource"]
	if typ == "vlan" {
		what = labelled(p["name"], shortID(p["resource"]))
	}
	d.done(rq, "/ui/resources", "Created "+label+" "+what+".")
}

// renameResource sets a static IP's or VLAN's name.
func (d *Dashboard) renameResource(rq *request) {
	typ, label, ok := d.resourceType(rq)
	if !ok {
		return
	}
	id := rq.PathValue("id")
	name := strings.TrimSpace(rq.PostFormValue("name"))
	if _, err := d.backend.SetResource(rq.Context(), rq.user, typ, id, eh.Props{"name": name}); err != nil {
		d.failed(rq, "/ui/resources", err)
		return
	}
	d.done(rq, "/ui/resources", "Renamed "+label+" "+id+".")
}

func (d *Dashboard) destroyResource(rq *request) {
	typ, label, ok := d.resourceType(rq)
	if !ok {
		return
	}
	id := rq.PathValue("id")
	if rq.PostFormValue("confirmed") != "yes" {
		render(rq.w, rq.Request, confirmPage(d.pageData(rq, "Release "+label, "resources"), confirmation{
			Question: "Release " + label + " " + id + "?",
			Detail:   "Servers configured with it lose it at their next start.",
			Action:   "/ui/resources/" + typ + "/" + id + "/destroy",
			Button:   "Release",
			Back:     "/ui/resources",
		}))
		return
	}
	if err := d.backend.DestroyResource(rq.Context(), rq.user, typ, id); err != nil {
		d.failed(rq, "/ui/resources", err)
		return
	}
	d.done(rq, "/ui/resources", "Released "+label+" "+id+".")
}

// usersView is the users page (admins only).
type usersView struct {
	Users   []User
	Me      string
	CSRF    string
	Created *createdUser // the user just made, with its secret shown once
	Name    string
	Admin   bool
	Error   string
}

type createdUser struct {
	User   User
	Secret string
}

func (d *Dashboard) usersView(rq *request) (usersView, error) {
	users, err := d.backend.Users(rq.Context(), rq.user)
	if err != nil {
		return usersView{}, err
	}
	return usersView{Users: users, Me: rq.user.ID, CSRF: rq.sess.csrf}, nil
}

func (d *Dashboard) usersPage(rq *request) { showView(d, rq, "Users", "users", d.usersView, usersPage) }

// createUser makes a user and shows its secret on the answer page itself,
// once: it is not stored anywhere it could be shown again.
func (d *Dashboard) createUser(rq *request) {
	name := strings.TrimSpace(rq.PostFormValue("name"))
	admin := rq.PostFormValue("admin") == "true"
	u, secret, err := d.backend.CreateUser(rq.Context(), rq.user, name, admin)
	v, verr := d.usersView(rq)
	if verr != nil {
		d.showError(rq, "Users", "users", verr)
		return
	}
	if err != nil {
		v.Name, v.Admin, v.Error = name, admin, fieldMessage(err)
		rq.w.WriteHeader(eh.AsError(err).Status)
	} else {
		v.Created = &createdUser{User: u, Secret: secret}
		rq.w.WriteHeader(http.StatusOK)
	}
	render(rq.w, rq.Request, usersPage(d.pageData(rq, "Users", "users"), v))
}

func (d *Dashboard) removeUser(rq *request) {
	id := rq.PathValue("id")
	if rq.PostFormValue("confirmed") != "yes" {
		render(rq.w, rq.Request, confirmPage(d.pageData(rq, "Remove user", "users"), confirmation{
			Question: "Remove user " + id + "?",
			Detail:   "They can no longer log in or use the API.",
			Action:   "/ui/users/" + id + "/remove",
			Button:   "Remove user",
			Back:     "/ui/users",
		}))
		return
	}
	if err := d.backend.RemoveUser(rq.Context(), rq.user, id); err != nil {
		d.failed(rq, "/ui/users", err)
		return
	}
	d.done(rq, "/ui/users", "User removed.")
}

package dash

import (
	"strconv"
	"strings"

	"hearth/storage"
	"hearth/web/eh"
)

// accountView is one user's usage against their limits: every user sees
// their own, an admin anyone's and may change the limits.
type accountView struct {
	ID, Name string
	Admin    bool
	Rows     []limitRow
	Editable bool // the viewer is an admin: the limits are a form
	CSRF     string
	Errors   formErrors // limit:NAME → message; "" the form as a whole
}

// limitRow is one limit of the account page.
type limitRow struct {
	Key     string // limit:NAME, the form field
	Label   string
	Used    string // with its unit
	Limit   string // with its unit; "" = unlimited
	Input   string // the limit as typed in the form ("" = none)
	Percent int    // used of the limit, capped at 100; 0 when unlimited
	Over    bool   // usage has reached the limit
}

var limitLabels = map[string]string{
	storage.LimitServers: "Servers", storage.LimitCPU: "CPU (all servers)", storage.LimitMem: "Memory (all servers)",
	storage.LimitDrives: "Drive space", storage.LimitIPs: "Static IPs", storage.LimitVLANs: "VLANs",
}

// limitText writes a quantity of a limit for people: sizes as sizes.
func limitText(name string, n int64) string {
	switch name {
	case storage.LimitCPU:
		return strconv.FormatInt(n, 10) + " MHz"
	case storage.LimitMem:
		return humanBytes(uint64(n) << 20)
	case storage.LimitDrives:
		return humanBytes(uint64(n))
	}
	return strconv.FormatInt(n, 10)
}

// limitInput writes a limit the way the form (and ParseLimits) reads it.
func limitInput(name string, n int64) string {
	switch name {
	case storage.LimitMem:
		return sizeInput(n << 20)
	case storage.LimitDrives:
		return sizeInput(n)
	}
	return strconv.FormatInt(n, 10)
}

func newAccountView(p eh.Props) accountView {
	v := accountView{ID: p["user"], Name: p["name"], Admin: p["admin"] == "true", Errors: formErrors{}}
	for _, name := range storage.LimitNames {
		used, _ := strconv.ParseInt(p["usage:"+name], 10, 64)
		r := limitRow{Key: "limit:" + name, Label: limitLabels[name], Used: limitText(name, used)}
		if s, ok := p["limit:"+name]; ok {
			max, _ := strconv.ParseInt(s, 10, 64)
			r.Limit, r.Input, r.Over = limitText(name, max), limitInput(name, max), used >= max
			r.Percent = 100
			if max > 0 && used < max {
				r.Percent = int(used * 100 / max)
			}
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

func (d *Dashboard) accountView(rq *request, login string) (accountView, error) {
	p, err := d.backend.UserInfo(rq.Context(), rq.user, login)
	if err != nil {
		return accountView{}, err
	}
	v := newAccountView(p)
	v.Editable, v.CSRF = rq.user.Admin, rq.sess.csrf
	return v, nil
}

// accountPage shows a user's usage and limits (GET /ui/users/{id}).
func (d *Dashboard) accountPage(rq *request) {
	showView(d, rq, "Account", "users", func(rq *request) (accountView, error) {
		return d.accountView(rq, rq.PathValue("id"))
	}, accountPage)
}

// setLimits changes a user's limits (admins): an empty field is no limit.
func (d *Dashboard) setLimits(rq *request) {
	id := rq.PathValue("id")
	changes := eh.Props{}
	for _, name := range storage.LimitNames {
		changes["limit:"+name] = strings.TrimSpace(rq.PostFormValue("limit:" + name))
	}
	if _, err := d.backend.SetUser(rq.Context(), rq.user, id, changes); err != nil {
		v, verr := d.accountView(rq, id)
		if verr != nil {
			d.failed(rq, "/ui/users", err)
			return
		}
		e := eh.AsError(err)
		v.Errors[e.Key] = fieldMessage(err) // "" (no key): the form as a whole
		for i, r := range v.Rows {
			v.Rows[i].Input = rq.PostFormValue(r.Key)
		}
		rq.w.WriteHeader(e.Status)
		render(rq.w, rq.Request, accountPage(d.pageData(rq, "Account", "users"), v))
		return
	}
	d.done(rq, "/ui/users/"+id, "Limits saved.")
}

// ownAccount is /ui/account: the caller's own usage and limits.
func (d *Dashboard) ownAccount(rq *request) {
	showView(d, rq, "Account", "account", func(rq *request) (accountView, error) {
		return d.accountView(rq, rq.user.ID)
	}, accountPage)
}

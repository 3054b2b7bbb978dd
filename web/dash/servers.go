package dash

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"hearth/internal/ehkeys"
	"hearth/storage"
	"hearth/web/api"
	"hearth/web/eh"
)

// serverRow is one line of the servers table.
type serverRow struct {
	ID      string
	Name    string
	Status  string
	Owner   string
	CPU     string // "2000 MHz"
	VCPUs   string
	Mem     string
	Address string
	Uptime  string
	Drives  []driveRef
	Console bool // a VNC password is set
	State   serverState
	Type    string // "VM" or "Container" (typeLabel)
	VM      bool
}

// driveRef links to a drive by name.
type driveRef struct {
	Device   string
	ID       string
	Name     string
	Imaging  string // "", "queued" or "NN%"
	Progress int
}

var actionLabels = map[string]string{
	"start": "Start", "stop": "Stop", "shutdown": "Shut down", "reset": "Reset",
	"pause": "Pause", "resume": "Resume", "destroy": "Destroy",
}

var actionDone = map[string]string{
	"start": "started", "stop": "stopped", "shutdown": "asked to shut down", "reset": "reset",
	"pause": "paused", "resume": "resumed", "destroy": "destroyed",
}

// names resolves user and drive UUIDs to names for display.
type names struct {
	users   map[string]string
	drives  map[string]string
	imaging map[string]string // drive → imaging progress, while a copy runs
}

// lookupNames loads what the caller may see of users and drives; failures
// only cost the names (UUIDs are shown instead).
func (d *Dashboard) lookupNames(ctx context.Context, u User) names {
	n := names{users: map[string]string{u.ID: u.Name}, drives: map[string]string{}, imaging: map[string]string{}}
	if u.Admin {
		if users, err := d.backend.Users(ctx, u); err == nil {
			for _, x := range users {
				n.users[x.ID] = x.Name
			}
		}
	}
	if drives, err := d.backend.DrivesInfo(ctx, u); err == nil {
		for _, p := range drives {
			n.drives[p["drive"]] = p["name"]
			if p["imaging"] != "" {
				n.imaging[p["drive"]] = p["imaging"]
			}
		}
	}
	return n
}

func (n names) user(id string) string {
	if name, ok := n.users[id]; ok {
		return name
	}
	return shortID(id)
}

func (n names) drive(id string) string {
	if name := n.drives[id]; name != "" {
		return name
	}
	return shortID(id)
}

// shortID abbreviates a UUID for tables.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// address is a server's public address: the leased one while running, the
// configured static one otherwise.
func address(p eh.Props) string {
	for _, k := range []string{"nic:0:dhcp:ip", "nic:0:ip"} {
		if p[k] != "" {
			return p[k]
		}
	}
	if v := p["nic:0:dhcp"]; v != "" && v != "auto" {
		return v
	}
	if p["nic:0:dhcp"] == "auto" {
		return "automatic"
	}
	return ""
}

// attachedDrives lists a server's device keys and drives in device order.
func attachedDrives(p eh.Props, n names) []driveRef {
	var out []driveRef
	for _, dev := range ehkeys.Devices(p) {
		ref := driveRef{Device: dev.Key, ID: dev.Drive, Name: n.drive(dev.Drive), Imaging: n.imaging[dev.Drive]}
		ref.Progress = imagingPercent(ref.Imaging)
		out = append(out, ref)
	}
	return out
}

func (d *Dashboard) newServerRow(p eh.Props, n names, now time.Time) serverRow {
	row := serverRow{
		ID:      p["server"],
		Name:    p["name"],
		Status:  p["status"],
		Owner:   n.user(p["user"]),
		Address: address(p),
		Drives:  attachedDrives(p, n),
		Console: p["password"] != "" || p["vnc:password"] != "",
		State:   d.stateOf(p, now),
		Type:    typeLabel(p["type"]),
		VM:      p["type"] == eh.TypeVM,
	}
	if p["cpu"] != "" {
		row.CPU = p["cpu"] + " MHz"
	}
	row.VCPUs = p["smp:cores"]
	if row.VCPUs == "" && p["smp"] != "auto" {
		row.VCPUs = p["smp"]
	}
	row.Mem = humanMB(p["mem"])
	if row.Status == "active" || row.Status == "paused" {
		row.Uptime = uptime(p["started"], now)
	}
	return row
}

// serverList is the servers table.
type serverList struct {
	Rows      []serverRow
	ShowOwner bool
	CSRF      string
}

func (d *Dashboard) serverList(rq *request) (serverList, error) {
	ctx := rq.Context()
	infos, err := d.backend.ServersInfo(ctx, rq.user)
	if err != nil {
		return serverList{}, err
	}
	n := d.lookupNames(ctx, rq.user)
	now := d.now()
	l := serverList{ShowOwner: rq.user.Admin, CSRF: rq.sess.csrf}
	for _, p := range infos {
		l.Rows = append(l.Rows, d.newServerRow(p, n, now))
	}
	sort.SliceStable(l.Rows, func(i, j int) bool {
		return strings.ToLower(l.Rows[i].Name) < strings.ToLower(l.Rows[j].Name)
	})
	return l, nil
}

func (d *Dashboard) serversPage(rq *request) {
	showView(d, rq, "Servers", "servers", d.serverList, serversPage)
}

// serverRows is the live fragment of the servers table the script polls.
func (d *Dashboard) serverRows(rq *request) { showFragment(rq, d.serverList, serverRowsFragment) }

// showView renders a page from its view, or the error page when the view
// cannot be loaded.
func showView[V any](d *Dashboard, rq *request, title, nav string, load func(*request) (V, error), page func(pageData, V) templ.Component) {
	v, err := load(rq)
	if err != nil {
		d.showError(rq, title, nav, err)
		return
	}
	render(rq.w, rq.Request, page(d.pageData(rq, title, nav), v))
}

// showFragment renders a live fragment the page's script polls; on failure
// only the status goes back (the script keeps what it shows).
func showFragment[V any](rq *request, load func(*request) (V, error), fragment func(V) templ.Component) {
	v, err := load(rq)
	if err != nil {
		rq.w.WriteHeader(eh.AsError(err).Status)
		return
	}
	render(rq.w, rq.Request, fragment(v))
}

// showError renders a page-level failure with the operation's message.
func (d *Dashboard) showError(rq *request, title, nav string, err error) {
	e := eh.AsError(err)
	if e.Status >= 500 {
		d.log.Error("dashboard page failed", "user", rq.user.ID, "path", rq.URL.Path, "err", err)
	}
	status, msg := e.Status, e.Message
	if status == http.StatusUnauthorized { // the session is valid: the refusal is of this user, not of the login
		status, msg = http.StatusForbidden, forbiddenText(msg)
	}
	rq.w.WriteHeader(status)
	render(rq.w, rq.Request, errorPage(d.pageData(rq, title, nav), msg))
}

// serverAction runs a lifecycle button. Destroy and Stop go through their
// confirmation pages (destroyServer, askStop); a shutdown's flash follows
// the server until it has stopped.
func (d *Dashboard) serverAction(rq *request) {
	id, action := rq.PathValue("id"), rq.PathValue("action")
	if _, ok := actionLabels[action]; !ok {
		rq.w.WriteHeader(http.StatusNotFound)
		render(rq.w, rq.Request, barePage("Not found", "There is no page at this address."))
		return
	}
	back := backTo(rq.Request, "/ui/servers/"+id)
	info, err := d.backend.ServerInfo(rq.Context(), rq.user, id)
	if err != nil {
		d.failed(rq, "/ui/servers", err)
		return
	}
	switch {
	case action == "destroy":
		d.destroyServer(rq, info, back)
		return
	case action == "stop" && rq.PostFormValue("confirmed") != "yes":
		d.askStop(rq, info, back)
		return
	}
	if err := d.backend.ServerAction(rq.Context(), rq.user, id, action); err != nil {
		d.failed(rq, back, err)
		return
	}
	if f, ok := awaitFor(action, id, info["name"]); ok {
		d.announce(rq, back, f)
		return
	}
	d.done(rq, back, "Server "+info["name"]+" "+actionDone[action]+".")
}

// confirming is the page (GET) of a button that asks first (Destroy, Stop):
// the same question ask puts to its form sent without confirmation.
func (d *Dashboard) confirming(title string, ask func(rq *request, info eh.Props, back string)) func(*request) {
	return func(rq *request) {
		info, err := d.backend.ServerInfo(rq.Context(), rq.user, rq.PathValue("id"))
		if err != nil {
			d.showError(rq, title, "servers", err)
			return
		}
		ask(rq, info, backQuery(rq.Request, "/ui/servers/"+info["server"]))
	}
}

// wizardBootDrive is the name the create form gives a server's boot drive.
func wizardBootDrive(server string) string { return server + " boot" }

// deletableBootDrive returns the server's boot drive when the caller could
// delete it with the server: a drive of the server's owner, not a library
// image (those are only ever copied).
func (d *Dashboard) deletableBootDrive(rq *request, info eh.Props) (eh.Props, bool) {
	dev, ok := ehkeys.BootDevice(info)
	if !ok {
		return nil, false
	}
	p, err := d.backend.DriveInfo(rq.Context(), rq.user, dev.Drive)
	if err != nil || p["user"] != info["user"] {
		return nil, false
	}
	if shared, err := d.backend.SharedDrives(rq.Context(), rq.user); err == nil &&
		slices.ContainsFunc(shared, func(sd api.SharedDrive) bool { return sd.Image && sd.Props["drive"] == dev.Drive }) {
		return nil, false
	}
	return p, true
}

// askDestroy asks before destroying a server, offering to delete its boot
// drive too: ticked when the create form made it ("NAME boot").
func (d *Dashboard) askDestroy(rq *request, info eh.Props, back string) {
	c := confirmation{
		Question: "Destroy server " + info["name"] + "?",
		Detail:   "The server is stopped if it runs and its definition is deleted. Its drives are kept unless you tick below.",
		Action:   "/ui/servers/" + info["server"] + "/destroy",
		Button:   "Destroy server",
		Back:     back,
	}
	if p, ok := d.deletableBootDrive(rq, info); ok {
		c.Check = &confirmCheck{
			Name:    "deletedrive",
			Value:   p["drive"],
			Label:   "Also delete its boot drive " + p["name"] + " (" + humanSize(p["size"]) + ")",
			Hint:    "Its data is deleted for good.",
			Checked: p["name"] == wizardBootDrive(info["name"]),
		}
	}
	render(rq.w, rq.Request, confirmPage(d.pageData(rq, "Destroy server", "servers"), c))
}

// destroyServer destroys a server once confirmed and, when asked, its boot
// drive; the flash says what was deleted and what was kept.
func (d *Dashboard) destroyServer(rq *request, info eh.Props, back string) {
	id := info["server"]
	if rq.PostFormValue("confirmed") != "yes" {
		d.askDestroy(rq, info, back)
		return
	}
	var drive eh.Props
	if want := rq.PostFormValue("deletedrive"); want != "" {
		p, ok := d.deletableBootDrive(rq, info)
		if !ok || p["drive"] != want {
			d.failed(rq, back, eh.Usagef("Only the server's own boot drive can be deleted with it; nothing was destroyed."))
			return
		}
		drive = p
	}
	if err := d.backend.ServerAction(rq.Context(), rq.user, id, "destroy"); err != nil {
		d.failed(rq, back, err)
		return
	}
	d.starts.set(id, pendingStart{})
	if back == "/ui/servers/"+id {
		back = "/ui/servers"
	}
	msg := "Server " + info["name"] + " destroyed."
	if drive != nil {
		if err := d.backend.DestroyDrive(rq.Context(), rq.user, drive["drive"]); err != nil {
			d.log.Warn("destroying a server's boot drive failed", "user", rq.user.ID, "server", id, "drive", drive["drive"], "err", err)
			msg += " Its boot drive " + drive["name"] + " was kept: " + errMessage(err)
		} else {
			msg = "Server " + info["name"] + " and its boot drive " + drive["name"] + " destroyed."
		}
	}
	d.done(rq, back, msg)
}

// configStatus is what decides the configuration form's shape: whether the
// server is running (live keys only) or not (everything). The script reloads
// the page when the live status crosses this line.
func configStatus(status string) string {
	if status == "active" || status == "paused" {
		return "running"
	}
	return "stopped"
}

// confirmation is a question asked before a destructive action, for
// browsers without JavaScript.
type confirmation struct {
	Question string
	Detail   string
	Action   string
	Button   string
	Back     string
	Check    *confirmCheck // an option of the action, or nil
}

// confirmCheck is a checkbox on a confirmation page.
type confirmCheck struct {
	Name, Value string
	Label, Hint string
	Checked     bool
}

// serverView is the server page.
type serverView struct {
	ID       string
	Name     string
	Status   string
	Row      serverRow
	Info     eh.Props
	Actions  []string
	Form     serverForm
	Stats    []liveStat
	Range    chartRange // of history the graphs show
	Console  string
	CSRF     string
	Runtime  []kv
	Editable bool // stopped: everything; otherwise the live keys only
	Activity []activity
	// AccelNote: how VMs run here, said next to a VM's type (tcgNote).
	AccelNote string
}

// activity is one line of a server's event log.
type activity struct {
	When    string // "3m ago"
	At      string // full UTC time, for the tooltip
	Kind    string // "status", "set", "create", "lease" ...
	Message string
}

// activityShown is how many events the server page lists.
const activityShown = 12

type kv struct{ Key, Value string }

func (d *Dashboard) serverView(rq *request, id string) (serverView, error) {
	ctx := rq.Context()
	info, err := d.backend.ServerInfo(ctx, rq.user, id)
	if err != nil {
		return serverView{}, err
	}
	counters, err := d.backend.ServerCounters(ctx, rq.user, id)
	if err != nil {
		return serverView{}, err
	}
	n := d.lookupNames(ctx, rq.user)
	row := d.newServerRow(info, n, d.now())
	v := serverView{
		ID:       id,
		Name:     info["name"],
		Status:   info["status"],
		Row:      row,
		Info:     info,
		Actions:  serverActions(row.State.State),
		CSRF:     rq.sess.csrf,
		Editable: info["status"] == "stopped" || info["status"] == "dead",
	}
	if row.VM {
		v.AccelNote = d.accelNote()
	}
	v.Range = chartRangeNamed(rq.URL.Query().Get("range"))
	if storage.Running(v.Status) {
		tier := storage.SampleTiers[v.Range.Tier]
		now := d.now()
		from := now.Truncate(tier.Step).Add(tier.Step - tier.Keep)
		hist, err := d.cfg.History.Samples(ctx, id, v.Range.Tier, from)
		if err != nil {
			d.log.Warn("reading counter history", "server", id, "err", err)
		}
		v.Stats = liveStats(hist, v.Range, from, now, counters)
	}
	if out, err := d.backend.ServerConsole(ctx, rq.user, id); err == nil {
		v.Console = consoleTail(out)
	}
	if events, err := d.backend.Events(ctx, rq.user, id, activityShown); err == nil {
		now := d.now()
		for _, ev := range events {
			_, kind, _ := strings.Cut(ev.Kind, ".")
			if kind == "" {
				kind = ev.Kind
			}
			v.Activity = append(v.Activity, activity{
				When:    humanDuration(now.Sub(ev.Time)) + " ago",
				At:      ev.Time.UTC().Format("2006-01-02 15:04:05 UTC"),
				Kind:    kind,
				Message: ev.Message,
			})
		}
	}
	for _, k := range []kv{{"nic:0:mac", "MAC address"}, {"nic:1:mac", "VLAN MAC"}, {"vnc:ip", "VNC address"}, {"vnc:port", "VNC port"}, {"started", "Started"}} {
		val := info[k.Key]
		if val == "" || val == "auto" { // vnc:ip auto: no native VNC address, the websocket only
			continue
		}
		if k.Key == "started" {
			sec, _ := strconv.ParseInt(val, 10, 64)
			val = time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 UTC")
		}
		v.Runtime = append(v.Runtime, kv{k.Value, val})
	}
	return v, nil
}

func (d *Dashboard) serverPage(rq *request) {
	id := rq.PathValue("id")
	v, err := d.serverView(rq, id)
	if err != nil {
		d.showError(rq, "Server", "servers", err)
		return
	}
	opts := d.formOptions(rq)
	v.Form = newServerForm(v.Info, opts)
	render(rq.w, rq.Request, serverPage(d.pageData(rq, v.Name, "servers"), v))
}

// serverLive is the live fragment of the server page: status, actions,
// counters and console output.
func (d *Dashboard) serverLive(rq *request) {
	showFragment(rq, func(rq *request) (serverView, error) { return d.serverView(rq, rq.PathValue("id")) }, serverLive)
}

// serverConsoleJSON tells the console page what it needs to connect: with
// a fresh console token each time it is asked (one per connection).
func (d *Dashboard) serverConsoleJSON(rq *request) {
	info, err := d.backend.ServerInfo(rq.Context(), rq.user, rq.PathValue("id"))
	if err != nil {
		e := eh.AsError(err)
		writeJSON(rq.w, e.Status, map[string]string{"error": e.Message})
		return
	}
	password := info["password"]
	if password == "" {
		password = info["vnc:password"]
	}
	answer := map[string]any{
		"server":      info["server"],
		"name":        info["name"],
		"status":      info["status"],
		"password":    password,
		"hasPassword": password != "",
		"vncPort":     info["vnc:port"],
		"display":     "terminal",
	}
	if info["type"] == eh.TypeVM {
		// A VM's console is its VGA display, whose size the guest sets
		// (std VGA refuses a viewer's SetDesktopSize): the page scales it.
		answer["display"] = "vga"
	}
	if d.cfg.ConsoleToken != nil && password != "" {
		answer["token"] = d.cfg.ConsoleToken(info["server"], rq.user.ID)
	}
	rq.w.Header().Set("Cache-Control", "no-store")
	writeJSON(rq.w, http.StatusOK, answer)
}

// consoleTail keeps the last lines of console output for the page, with
// terminal control sequences removed.
func consoleTail(out []byte) string {
	s := stripANSI(string(out))
	lines := strings.Split(s, "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	return strings.Join(lines, "\n")
}

// stripANSI drops escape sequences and carriage returns a terminal would
// interpret, so the page shows plain text.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[':
			i += 2
			for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
				i++
			}
		case c == 0x1b:
			i++
		case c == '\r' || (c < 0x20 && c != '\n' && c != '\t'):
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

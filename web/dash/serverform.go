package dash

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"hearth/internal/ehkeys"
	"hearth/web/api"
	"hearth/web/eh"
)

// option is one entry of a select.
type option struct {
	Value string
	Label string
	Name  string // a drive's name, for messages
	// InUse names the running servers a drive is attached to: such a drive
	// is shown greyed with them, never offered to boot another server.
	InUse string
}

// formOptions are the choices the server forms offer: the caller's drives
// (marked with the running servers they are attached to), the library
// (images admins published: the only default, always copied — an admin's
// own library image is not among their drives), drives other users share
// with the caller (labelled with their owner), static IPs and VLANs.
type formOptions struct {
	Drives  []option
	Library []option
	Shared  []option
	IPs     []option
	VLANs   []option
	// NoNetwork: why no NIC can be honoured (Config.NoNetwork); the forms
	// grey the networks with it.
	NoNetwork string
	// AccelNote says how VMs run here when it matters to the user (tcgNote
	// under software emulation); "" otherwise.
	AccelNote string
	sizes     map[string]int64 // drive id → size in bytes
	gzipped   map[string]bool  // drive id → holds gzip data (library format gzip)
}

func (d *Dashboard) formOptions(rq *request) formOptions {
	ctx := rq.Context()
	o := formOptions{sizes: map[string]int64{}, gzipped: map[string]bool{}, NoNetwork: d.cfg.NoNetwork, AccelNote: d.accelNote()}
	serverNames := map[string]string{}
	if servers, err := d.backend.ServersInfo(ctx, rq.user); err == nil {
		for _, p := range servers {
			serverNames[p["server"]] = p["name"]
		}
	}
	add := func(list *[]option, p eh.Props, note string) {
		id := p["drive"]
		size, _ := strconv.ParseInt(p["size"], 10, 64)
		o.sizes[id] = size
		o.gzipped[id] = p["format"] == "gzip"
		label := p["name"]
		if label == "" {
			label = shortID(id)
		}
		opt := option{Value: id, Name: label, Label: label + " (" + humanBytes(uint64(size)) + ")" + note}
		var users []string
		for _, s := range claimedServers(p["claimed"], serverNames) {
			users = append(users, s.Name)
		}
		if len(users) > 0 {
			opt.InUse = strings.Join(users, ", ")
			opt.Label += " — in use by " + opt.InUse
		}
		*list = append(*list, opt)
	}
	library := map[string]bool{}
	if shared, err := d.backend.SharedDrives(ctx, rq.user); err == nil {
		for _, sd := range shared {
			if sd.Image {
				library[sd.Props["drive"]] = true
				add(&o.Library, sd.Props, "")
			} else {
				add(&o.Shared, sd.Props, " — shared by "+sd.Owner)
			}
		}
	}
	if drives, err := d.backend.DrivesInfo(ctx, rq.user); err == nil {
		for _, p := range drives {
			if p["user"] == rq.user.ID && !library[p["drive"]] {
				add(&o.Drives, p, "")
			}
		}
	}
	if ips, err := d.backend.ResourcesInfo(ctx, rq.user, "ip"); err == nil {
		for _, p := range ips {
			o.IPs = append(o.IPs, option{Value: p["resource"], Label: labelled(p["resource"], p["name"])})
		}
	}
	if vlans, err := d.backend.ResourcesInfo(ctx, rq.user, "vlan"); err == nil {
		for _, p := range vlans {
			o.VLANs = append(o.VLANs, option{Value: p["resource"], Label: labelled(p["name"], shortID(p["resource"]))})
		}
	}
	for _, l := range [][]option{o.Drives, o.Library, o.Shared, o.IPs, o.VLANs} {
		sort.Slice(l, func(i, j int) bool { return strings.ToLower(l[i].Label) < strings.ToLower(l[j].Label) })
	}
	return o
}

func labelled(a, b string) string {
	if b == "" {
		return a
	}
	return a + " — " + b
}

// formErrors maps form fields to the message shown next to them; "" is the
// form as a whole.
type formErrors map[string]string

// fieldKeys says which API keys each form field sets, to put an operation's
// error next to the field whose key it names.
var fieldKeys = map[string][]string{
	"name":       {"name"},
	"type":       {"type"},
	"cpu":        {"cpu"},
	"smp":        {"smp", "smp:cores"},
	"mem":        {"mem"},
	"persistent": {"persistent"},
	"password":   {"password", "vnc:password", "vnc", "vnc:ip"},
	"tags":       {"tags"},
	"nic0":       {"nic:0:dhcp", "nic:0:model", "nic:0:mac", "nic:0"},
	"vlan":       {"nic:1:vlan", "nic:1:model", "nic:1:mac", "nic:1"},
	"boot":       {"boot", "ide:0:0", "ide:0:0:media"},
	"size":       {"size"},
	"source":     {"source", "image"},
}

// fieldFor finds the form field of the key an error is about (its
// eh.Error Key); "extra" for a key without a field of its own, "" when the
// error is about no key.
func fieldFor(err error) string {
	var e *eh.Error
	if !errors.As(err, &e) || e.Key == "" {
		return ""
	}
	for field, keys := range fieldKeys {
		if slices.Contains(keys, e.Key) {
			return field
		}
	}
	return "extra"
}

// status is the answer to a form shown again: 400 with errors next to
// their fields, or 409 when only a name's duplicate warning stopped it.
func (fe formErrors) status() int {
	if len(fe) == 0 {
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// placeError files an operation's error under the field it names, when
// the form shows that field; otherwise at the top of the form.
func (fe formErrors) placeError(err error, fields ...string) {
	field := fieldFor(err)
	if !slices.Contains(fields, field) {
		field = ""
	}
	msg := errMessage(err)
	if field != "" && field != "extra" { // "extra" holds many keys: its message names the key
		msg = fieldMessage(err)
	}
	if _, taken := fe[field]; !taken {
		fe[field] = msg
	}
}

// The fields each form shows an error next to.
var (
	serverFormFields = []string{"name", "type", "cpu", "smp", "mem", "password", "tags", "boot", "nic0", "vlan", "persistent", "extra"}
	createFormFields = []string{"name", "type", "size", "cpu", "mem", "source", "drivesize", "nic0", "vlan", "password"}
	driveFormFields  = []string{"name", "size"}
)

// serverForm is the configuration form of the server page.
type serverForm struct {
	Name, CPU, SMP, Mem, Password, Tags string
	Type                                string // eh.TypeContainer or eh.TypeVM; changes while stopped
	Persistent                          bool
	VNC                                 string // "auto" once a password enables VNC
	NIC0                                string // "none", "auto" or a static IP
	NICModel                            string // as recorded; read from the form for a VM only (nicModelNote)
	VLAN                                string // "" or a VLAN UUID
	BootDevice                          string // device key of the boot drive
	BootDrive                           string // its drive UUID
	Extra                               string // other configuration keys, KEY VALUE lines
	NameTaken                           bool   // renamed to a name its owner has: warned once
	Errors                              formErrors
	Options                             formOptions
}

// formKeys are the keys the form's own fields set (the rest go to Extra).
func formKey(k, bootDevice string) bool {
	switch k {
	case "name", "type", "cpu", "smp", "mem", "persistent", "password", "vnc", "tags",
		"nic:0:dhcp", "nic:0:model", "nic:1:vlan", "nic:1:model", "boot":
		return true
	}
	return k == bootDevice
}

func newServerForm(info eh.Props, opts formOptions) serverForm {
	f := serverForm{
		Name: info["name"], Type: info["type"], CPU: info["cpu"], SMP: info["smp"], Mem: info["mem"],
		Password: info["password"], VNC: info["vnc"], Tags: info["tags"], Persistent: info["persistent"] == "true",
		NICModel: info["nic:0:model"], VLAN: info["nic:1:vlan"],
		Errors: formErrors{}, Options: opts,
	}
	switch {
	case info["nic:0:model"] == "":
		f.NIC0 = "none"
	case info["nic:0:dhcp"] == "" || info["nic:0:dhcp"] == "auto":
		f.NIC0 = "auto"
	default:
		f.NIC0 = info["nic:0:dhcp"]
	}
	if f.NICModel == "" {
		f.NICModel = "virtio"
	}
	f.BootDevice = "ide:0:0"
	if dev, ok := ehkeys.BootDevice(info); ok {
		f.BootDevice, f.BootDrive = dev.Key, dev.Drive
	}
	var extra []string
	for _, k := range info.Keys() {
		if formKey(k, f.BootDevice) || eh.ServerOutputKey(k) {
			continue
		}
		extra = append(extra, k+" "+info[k])
	}
	f.Extra = strings.Join(extra, "\n")
	return f
}

// props turns the form into configuration keys (what the server would be).
func (f serverForm) props() (eh.Props, error) {
	p := eh.Props{
		"name": f.Name, "type": f.Type, "cpu": f.CPU, "smp": f.SMP, "mem": f.Mem, "password": f.Password, "vnc": f.VNC,
		"tags": f.Tags, "persistent": strconv.FormatBool(f.Persistent),
	}
	switch f.NIC0 {
	case "none":
		p["nic:0:model"], p["nic:0:dhcp"] = "", ""
	case "auto":
		p["nic:0:model"], p["nic:0:dhcp"] = f.NICModel, "auto"
	default:
		p["nic:0:model"], p["nic:0:dhcp"] = f.NICModel, f.NIC0
	}
	if f.VLAN != "" {
		p["nic:1:model"], p["nic:1:vlan"] = f.NICModel, f.VLAN
	} else {
		p["nic:1:model"], p["nic:1:vlan"] = "", ""
	}
	if f.BootDrive != "" {
		p[f.BootDevice], p["boot"] = f.BootDrive, f.BootDevice
	}
	if strings.TrimSpace(f.Extra) != "" {
		extra, err := eh.ParseProps(strings.NewReader(f.Extra), eh.DefaultLimit)
		if err != nil {
			return nil, err
		}
		for k, v := range extra {
			p[k] = v
		}
	}
	return p, nil
}

// readServerForm reads the submitted form; fields a browser did not send
// (disabled while the server runs) keep the current values. A password
// given to a stopped server without VNC also turns VNC on.
func readServerForm(r *http.Request, current serverForm, editable bool) serverForm {
	f := current
	f.Errors = formErrors{}
	str := func(name string, dst *string) {
		if r.PostForm.Has(name) {
			*dst = strings.TrimSpace(r.PostFormValue(name))
		}
	}
	str("name", &f.Name)
	str("cpu", &f.CPU)
	str("smp", &f.SMP)
	str("mem", &f.Mem)
	str("tags", &f.Tags)
	str("nic0", &f.NIC0)
	str("vlan", &f.VLAN)
	str("bootdrive", &f.BootDrive)
	if f.Type == eh.TypeVM { // the model field is offered for a VM only
		str("nicmodel", &f.NICModel)
	}
	str("type", &f.Type)
	if r.PostForm.Has("password") {
		f.Password = r.PostFormValue("password") // spaces are part of a password
	}
	if editable && f.Password != "" && f.VNC == "" {
		f.VNC = "auto"
	}
	if r.PostForm.Has("extra") {
		f.Extra = r.PostFormValue("extra")
	}
	if r.PostForm.Has("persistent-shown") {
		f.Persistent = r.PostFormValue("persistent") == "true"
	}
	return f
}

// setServer saves the configuration form: only the keys that differ from the
// current configuration are sent, so a running server gets only its live keys.
func (d *Dashboard) setServer(rq *request) {
	id := rq.PathValue("id")
	v, err := d.serverView(rq, id)
	if err != nil {
		d.failed(rq, "/ui/servers", err)
		return
	}
	opts := d.formOptions(rq)
	current := newServerForm(v.Info, opts)
	f := readServerForm(rq.Request, current, v.Editable)
	if f.Name == "" {
		f.Errors["name"] = "Give the server a name."
	} else if f.Name != current.Name && strings.TrimSpace(rq.PostFormValue("duplicate")) != f.Name {
		if others, err := d.backend.ServersInfo(rq.Context(), rq.user); err == nil {
			others = slices.DeleteFunc(others, func(p eh.Props) bool { return p["server"] == id })
			f.NameTaken = ownNamed(others, v.Info["user"], f.Name)
		}
	}
	checkVNCPassword(f.Errors, f.Password)
	checkNetwork(f.Errors, opts.NoNetwork, f.NIC0 != current.NIC0 && f.NIC0 != "none", f.VLAN != current.VLAN && f.VLAN != "")
	before, err := current.props()
	if err != nil {
		d.showError(rq, v.Name, "servers", err)
		return
	}
	after, err := f.props()
	if err != nil {
		f.Errors["extra"] = errMessage(err)
	}
	changes := eh.Props{}
	if err == nil {
		for k, val := range after {
			if before[k] != val {
				changes[k] = val
			}
		}
		for k := range before {
			if _, kept := after[k]; !kept {
				changes[k] = ""
			}
		}
	}
	if len(f.Errors) == 0 && !f.NameTaken && len(changes) > 0 {
		if _, err := d.backend.SetServer(rq.Context(), rq.user, id, changes); err != nil {
			f.Errors.placeError(err, serverFormFields...)
		}
	}
	if len(f.Errors) > 0 || f.NameTaken {
		v.Form = f
		rq.w.WriteHeader(f.Errors.status())
		render(rq.w, rq.Request, serverPage(d.pageData(rq, v.Name, "servers"), v))
		return
	}
	msg := "Nothing changed."
	if len(changes) > 0 {
		msg = "Configuration saved."
	}
	d.done(rq, "/ui/servers/"+id, msg)
}

// sizePreset is one of the create page's server sizes.
type sizePreset struct {
	Name, Label string
	CPU, Mem    int // MHz, MB
}

var sizePresets = []sizePreset{
	{"small", "Small", 1000, 512},
	{"medium", "Medium", 2000, 2048},
	{"large", "Large", 4000, 4096},
	{"xlarge", "Extra large", 8000, 16384},
}

// createForm is the create server page.
type createForm struct {
	Name       string
	Type       string // eh.TypeContainer or eh.TypeVM
	NICModel   string // nic:N:model of a VM; a container's is virtio
	Size       string // a preset name or "custom"
	CPU, Mem   string // custom values
	Source     string // "lib:UUID", "drive:UUID" or "blank"
	DriveSize  string // e.g. "10G"
	NIC0       string // "auto", "none" or a static IP
	VLAN       string
	Password   string
	Persistent bool
	Start      bool
	// NameTaken: the caller already has a server with this name; the form
	// comes back once with a warning and takes the same name the second time
	// (Duplicate carries the name the warning was about).
	NameTaken bool
	Duplicate string
	Errors    formErrors
	Options   formOptions
	Presets   []sizePreset
}

// vncPasswordChars are the characters of generated VNC passwords: 32 (so a
// random byte maps without bias), none easily mistaken for another.
const vncPasswordChars = "abcdefghijkmnpqrstuvwxyz23456789"

// newVNCPassword makes the create form's console password: the longest VNC
// authentication uses, shown to the owner, who may change it.
func newVNCPassword() string {
	b := make([]byte, eh.MaxPasswordLength)
	rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = vncPasswordChars[int(b[i])%len(vncPasswordChars)]
	}
	return string(b)
}

// checkVNCPassword says, in the form's words, why a password cannot be
// used (the API refuses the same, never cutting it).
func checkVNCPassword(errs formErrors, password string) {
	if n := len(password); n > eh.MaxPasswordLength {
		errs["password"] = fmt.Sprintf("This password has %d characters; VNC allows at most %d. Shorten it (nothing is cut for you).", n, eh.MaxPasswordLength)
	}
}

func (d *Dashboard) newServerPage(rq *request) {
	f := createForm{Type: eh.TypeContainer, NICModel: "virtio", Size: "small", NIC0: "auto", DriveSize: "10G", Persistent: true, Start: true, Password: newVNCPassword(),
		Errors: formErrors{}, Options: d.formOptions(rq), Presets: sizePresets}
	if f.Options.NoNetwork != "" {
		f.NIC0 = "none"
	}
	if src := rq.URL.Query().Get("source"); src != "" {
		f.Source = src
	} else if len(f.Options.Library) > 0 {
		f.Source = "lib:" + f.Options.Library[0].Value
	} else {
		f.Source = "blank"
	}
	render(rq.w, rq.Request, createServerPage(d.pageData(rq, "Create server", "servers"), f))
}

func (d *Dashboard) readCreateForm(rq *request) createForm {
	r := rq.Request
	get := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	return createForm{
		Name: get("name"), Type: get("type"), NICModel: get("nicmodel"), Size: get("size"), CPU: get("cpu"), Mem: get("mem"), Source: get("source"),
		DriveSize: get("drivesize"), NIC0: get("nic0"), VLAN: get("vlan"), Password: r.PostFormValue("password"),
		Persistent: get("persistent") == "true", Start: get("start") == "true", Duplicate: get("duplicate"),
		Errors: formErrors{}, Options: d.formOptions(rq), Presets: sizePresets,
	}
}

// createServer reads the create form and hands it to the API's
// CreateServerWithDrive; a server whose boot drive is still imaging is
// started by pendingStarts once the copy has finished.
func (d *Dashboard) createServer(rq *request) {
	ctx := rq.Context()
	f := d.readCreateForm(rq)
	config := eh.Props{"name": f.Name, "type": f.Type, "smp": "auto", "persistent": strconv.FormatBool(f.Persistent)}
	model := "virtio" // what a container's interface is, whatever the key says
	if f.Type == eh.TypeVM && f.NICModel != "" {
		model = f.NICModel
	}
	if f.Name == "" {
		f.Errors["name"] = "Give the server a name."
	} else if f.Duplicate != f.Name {
		f.NameTaken = d.ownServerNamed(rq, f.Name)
	}
	if f.Size == "custom" {
		config["cpu"], config["mem"] = f.CPU, f.Mem
	} else {
		for _, p := range sizePresets {
			if p.Name == f.Size {
				config["cpu"], config["mem"] = strconv.Itoa(p.CPU), strconv.Itoa(p.Mem)
			}
		}
		if config["cpu"] == "" {
			f.Errors["size"] = "Choose a size."
		}
	}
	if f.NIC0 != "none" {
		config["nic:0:model"], config["nic:0:dhcp"] = model, f.NIC0
	}
	if f.VLAN != "" {
		config["nic:1:model"], config["nic:1:vlan"] = model, f.VLAN
	}
	if f.Password != "" {
		config["vnc"], config["password"] = "auto", f.Password
	}
	checkVNCPassword(f.Errors, f.Password)
	checkNetwork(f.Errors, f.Options.NoNetwork, f.NIC0 != "none", f.VLAN != "")
	// The boot drive: a new one imaged from source (or blank), or, with
	// "use:", one of the caller's drives attached as it is.
	source, sourceSize, conversion, attach := "", int64(0), "", ""
	switch kind, id, _ := strings.Cut(f.Source, ":"); kind {
	case "lib", "drive":
		source, sourceSize = id, f.Options.sizes[id]
		if f.Options.gzipped[id] {
			conversion = "gunzip"
		}
	case "use":
		attach = id
		for _, o := range f.Options.Drives {
			if o.Value == id && o.InUse != "" {
				f.Errors["source"] = fmt.Sprintf("%s is attached to running server %s — stop %s first, or boot from a copy of it.", o.Name, o.InUse, o.InUse)
			}
		}
	case "blank":
	default:
		f.Errors["source"] = "Choose an image or an empty drive."
	}
	size, err := eh.ParseSize(f.DriveSize)
	switch {
	case attach != "":
	case err != nil:
		f.Errors["drivesize"] = fieldMessage(err)
	case conversion == "" && size < sourceSize:
		f.Errors["drivesize"] = fmt.Sprintf("The drive must hold the image: at least %s.", humanBytes(uint64(sourceSize)))
	}
	if len(f.Errors) > 0 || f.NameTaken {
		d.showCreate(rq, f)
		return
	}

	made, err := d.backend.CreateServerWithDrive(ctx, rq.user, api.ServerWithDrive{
		Config: config, Attach: attach, Source: source, Conversion: conversion,
		DriveName: f.Name + " boot", DriveSize: size, Start: f.Start,
	})
	var step *api.CreateError
	errors.As(err, &step)
	msg := "Server " + f.Name + " created."
	switch {
	case err == nil:
	case step != nil && step.Step == api.StepStart:
		d.sessions.addFlash(rq.sess.id, flash{Kind: "error", Message: "Created, but not started: " + errMessage(err)})
		msg = ""
	default:
		switch {
		case step == nil || step.Step == api.StepServer:
			f.Errors.placeError(err, createFormFields...)
		case step.Step == api.StepDrive:
			f.Errors["drivesize"] = fieldMessage(err)
		default:
			f.Errors["source"] = fieldMessage(err)
		}
		d.showCreate(rq, f)
		return
	}
	back := "/ui/servers/" + made.Server
	if made.Imaging && f.Start {
		d.starts.add(rq.user, made.Server, made.Drive)
	}
	if msg != "" && (made.Started || made.Imaging && f.Start) {
		// The flash stays until the server is running (or could not start).
		a, _ := awaitFor("start", made.Server, f.Name)
		a.Message = msg + " Starting it…"
		if made.Imaging {
			a.Message = msg + " It starts when its boot drive has been copied…"
		}
		a.Await.Done = msg + " It is running."
		d.announce(rq, back, a)
		return
	}
	d.done(rq, back, msg)
}

// ownServerNamed reports whether the caller already owns a server called
// name; a failed lookup reports none, costing only the warning.
func (d *Dashboard) ownServerNamed(rq *request, name string) bool {
	infos, err := d.backend.ServersInfo(rq.Context(), rq.user)
	return err == nil && ownNamed(infos, rq.user.ID, name)
}

// ownNamed reports whether one of objects, owned by user, is called name
// (ignoring case): the duplicate the create forms warn about.
func ownNamed(objects []eh.Props, user, name string) bool {
	return slices.ContainsFunc(objects, func(p eh.Props) bool {
		return p["user"] == user && strings.EqualFold(p["name"], name)
	})
}

// showCreate shows the create form again, with its errors or the name's
// duplicate warning.
func (d *Dashboard) showCreate(rq *request, f createForm) {
	rq.w.WriteHeader(f.Errors.status())
	render(rq.w, rq.Request, createServerPage(d.pageData(rq, "Create server", "servers"), f))
}

// hasOption reports whether a select's options include value.
func hasOption(opts []option, value string) bool {
	for _, o := range opts {
		if o.Value == value {
			return true
		}
	}
	return false
}

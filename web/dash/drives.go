package dash

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"hearth/web/eh"
)

// driveRow is one line of the drives table.
type driveRow struct {
	ID       string
	Name     string
	Owner    string
	Size     string
	Bytes    int64
	Imaging  string // "" idle, "queued", "NN%"
	Progress int    // imaging percentage
	Claimed  []serverRef
	Shared   bool // readable by everyone
	Library  bool
	Mine     bool
	SharedBy string // a user's drive shared with the caller: its owner's name ("" for a published image)
}

// serverRef links to a server by name.
type serverRef struct {
	ID   string
	Name string
}

// drivesView is the drives page.
type drivesView struct {
	Rows      []driveRow
	Library   []driveRow
	ShowOwner bool
	CSRF      string
	Create    driveForm
	Resize    resizeForm     // a resize refused without the script: shown in its row
	CanImport bool           // an admin: the import form shows
	Imports   []importStatus // imports running or failed (admins)
}

// driveForm is the create-drive form with its errors.
type driveForm struct {
	Name      string
	Size      string
	NameTaken bool // the caller has a drive of this name: warned once
	Errors    formErrors
}

// resizeForm is a drive row's resize form refused: the size as typed and
// why (under "size").
type resizeForm struct {
	Drive  string
	Size   string
	Errors formErrors
}

// imagingPercent reads an imaging value ("45%"); queued or idle is 0.
func imagingPercent(imaging string) int {
	pct, _ := strconv.Atoi(strings.TrimSuffix(imaging, "%"))
	return pct
}

// claimedServers turns claim tokens (HOST:guest:SERVER:DEVICE, or
// HOST:imaging:DRIVE while a copy runs) into server links.
func claimedServers(claimed string, serverNames map[string]string) []serverRef {
	var out []serverRef
	for _, tok := range strings.Fields(claimed) {
		parts := strings.SplitN(tok, ":", 4)
		if len(parts) < 3 || parts[1] != "guest" {
			continue
		}
		name := serverNames[parts[2]]
		if name == "" {
			name = shortID(parts[2])
		}
		out = append(out, serverRef{ID: parts[2], Name: name})
	}
	return out
}

func (d *Dashboard) drivesView(rq *request) (drivesView, error) {
	ctx := rq.Context()
	infos, err := d.backend.DrivesInfo(ctx, rq.user)
	if err != nil {
		return drivesView{}, err
	}
	n := d.lookupNames(ctx, rq.user)
	serverNames := map[string]string{}
	if servers, err := d.backend.ServersInfo(ctx, rq.user); err == nil {
		for _, p := range servers {
			serverNames[p["server"]] = p["name"]
		}
	}
	row := func(p eh.Props) driveRow {
		size, _ := strconv.ParseInt(p["size"], 10, 64)
		r := driveRow{
			ID: p["drive"], Name: p["name"], Owner: n.user(p["user"]), Size: humanBytes(uint64(size)), Bytes: size,
			Imaging: p["imaging"], Claimed: claimedServers(p["claimed"], serverNames),
			Shared: strings.Contains(p["readers"], eh.AllUsers), Mine: p["user"] == rq.user.ID,
		}
		if r.Name == "" {
			r.Name = "(unnamed)"
		}
		r.Progress = imagingPercent(r.Imaging)
		return r
	}
	v := drivesView{ShowOwner: rq.user.Admin, CSRF: rq.sess.csrf, Create: driveForm{Size: "10G", Errors: formErrors{}}, CanImport: rq.user.Admin}
	if rq.user.Admin {
		v.Imports = d.imports.shown()
	}
	for _, p := range infos {
		v.Rows = append(v.Rows, row(p))
	}
	if shared, err := d.backend.SharedDrives(ctx, rq.user); err == nil {
		for _, sd := range shared {
			r := row(sd.Props)
			r.Library, r.Owner = true, sd.Owner
			if !sd.Image {
				r.SharedBy = sd.Owner
			}
			v.Library = append(v.Library, r)
		}
	}
	for _, l := range [][]driveRow{v.Rows, v.Library} {
		sort.SliceStable(l, func(i, j int) bool { return strings.ToLower(l[i].Name) < strings.ToLower(l[j].Name) })
	}
	return v, nil
}

func (d *Dashboard) drivesPage(rq *request) {
	showView(d, rq, "Drives", "drives", d.drivesView, drivesPage)
}

func (d *Dashboard) driveRows(rq *request) { showFragment(rq, d.drivesView, driveRowsFragment) }

// driveJSON answers the upload script's and console page's questions about a drive.
func (d *Dashboard) driveJSON(rq *request) {
	p, err := d.backend.DriveInfo(rq.Context(), rq.user, rq.PathValue("id"))
	if err != nil {
		e := eh.AsError(err)
		writeJSON(rq.w, e.Status, map[string]string{"error": e.Message})
		return
	}
	writeJSON(rq.w, http.StatusOK, p)
}

// createDrive makes an empty drive. The upload script calls it too (with
// X-Hearth-Fetch) and gets the new drive's properties back as JSON.
func (d *Dashboard) createDrive(rq *request) {
	f := driveForm{Name: strings.TrimSpace(rq.PostFormValue("name")), Size: strings.TrimSpace(rq.PostFormValue("size")), Errors: formErrors{}}
	// The form (not the upload script, which names drives after their
	// file) warns once about a name the caller already has.
	if !rq.fetch() && f.Name != "" && strings.TrimSpace(rq.PostFormValue("duplicate")) != f.Name {
		drives, err := d.backend.DrivesInfo(rq.Context(), rq.user)
		if f.NameTaken = err == nil && ownNamed(drives, rq.user.ID, f.Name); f.NameTaken {
			d.showDrivesWithForm(rq, f)
			return
		}
	}
	if f.Name == "" && !rq.fetch() {
		f.Errors["name"] = "Give the drive a name."
		d.showDrivesWithForm(rq, f)
		return
	}
	p, err := d.backend.CreateDrive(rq.Context(), rq.user, eh.Props{"name": f.Name, "size": f.Size})
	if err != nil {
		if rq.fetch() {
			e := eh.AsError(err)
			writeJSON(rq.w, e.Status, map[string]string{"error": e.Message, "field": fieldFor(e)})
			return
		}
		f.Errors.placeError(err, driveFormFields...)
		d.showDrivesWithForm(rq, f)
		return
	}
	if rq.fetch() {
		writeJSON(rq.w, http.StatusOK, p)
		return
	}
	d.done(rq, "/ui/drives", "Drive "+f.Name+" created ("+humanSize(p["size"])+").")
}

func (d *Dashboard) showDrivesWithForm(rq *request, f driveForm) {
	v, err := d.drivesView(rq)
	if err != nil {
		d.showError(rq, "Drives", "drives", err)
		return
	}
	v.Create = f
	rq.w.WriteHeader(f.Errors.status())
	render(rq.w, rq.Request, drivesPage(d.pageData(rq, "Drives", "drives"), v))
}

// maxChunk bounds one upload request (the script sends 4 MiB chunks).
const maxChunk = 64 << 20

// writeDrive takes one chunk of a browser upload and writes it through the
// API's write operation (gzip-compressed when the browser could).
func (d *Dashboard) writeDrive(rq *request) {
	offset, err := strconv.ParseInt(rq.PathValue("offset"), 10, 64)
	if err != nil || offset < 0 {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("offset %q: not a byte offset", rq.PathValue("offset"))})
		return
	}
	body := http.MaxBytesReader(rq.w, rq.Body, maxChunk)
	gzipped := strings.EqualFold(rq.Header.Get("Content-Encoding"), "gzip")
	if err := d.backend.WriteDrive(rq.Context(), rq.user, rq.PathValue("id"), offset, body, gzipped); err != nil {
		e := eh.AsError(err)
		writeJSON(rq.w, e.Status, map[string]string{"error": e.Message})
		return
	}
	writeJSON(rq.w, http.StatusOK, map[string]string{"message": "written"})
}

// uploadDrive is the upload form for browsers without the script: a
// multipart body with the name, the drive size and then the file, streamed
// into a new drive.
func (d *Dashboard) uploadDrive(rq *request) {
	ctx := rq.Context()
	fields, file, err := formUntilFile(rq)
	if err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	name := fields["name"]
	if name == "" {
		name = file.FileName()
	}
	if fields["size"] == "" {
		d.failed(rq, "/ui/drives", eh.Usagef("upload: give the drive size (your browser did not run the upload script, which reads it from the file)"))
		return
	}
	p, err := d.backend.CreateDrive(ctx, rq.user, eh.Props{"name": name, "size": fields["size"]})
	if err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	gzipped := strings.HasSuffix(file.FileName(), ".gz")
	if err := d.backend.WriteDrive(ctx, rq.user, p["drive"], 0, file, gzipped); err != nil {
		d.failed(rq, "/ui/drives", fmt.Errorf("drive %s was created but the upload failed: %w", name, eh.AsError(err)))
		return
	}
	d.done(rq, "/ui/drives", "Uploaded "+file.FileName()+" into drive "+name+".")
}

// downloadDrive streams a drive's whole image.
func (d *Dashboard) downloadDrive(rq *request) {
	ctx := rq.Context()
	id := rq.PathValue("id")
	p, err := d.backend.DriveInfo(ctx, rq.user, id)
	if err != nil {
		d.showError(rq, "Drives", "drives", err)
		return
	}
	size, _ := strconv.ParseInt(p["size"], 10, 64)
	rd, err := d.backend.OpenDrive(ctx, rq.user, id, 0, size)
	if err != nil {
		d.showError(rq, "Drives", "drives", err)
		return
	}
	defer rd.Close()
	name := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r == '/' || r < ' ' {
			return '_'
		}
		return r
	}, p["name"])
	if name == "" {
		name = id
	}
	h := rq.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	h.Set("Content-Disposition", `attachment; filename="`+name+`.img"`)
	if _, err := io.Copy(rq.w, rd); err != nil {
		d.log.Warn("drive download cut short", "user", rq.user.ID, "drive", id, "err", err) // the headers are out; the short body tells the browser
	}
}

func (d *Dashboard) resizeDrive(rq *request) {
	id := rq.PathValue("id")
	size := strings.TrimSpace(rq.PostFormValue("size"))
	p, err := d.backend.SetDrive(rq.Context(), rq.user, id, eh.Props{"size": size})
	if err != nil && !rq.fetch() {
		// Without the script the page comes back with the refusal in the
		// drive's row, as the script shows it: one field, so every reason is
		// the size's.
		v, verr := d.drivesView(rq)
		if verr != nil {
			d.showError(rq, "Drives", "drives", verr)
			return
		}
		v.Resize = resizeForm{Drive: id, Size: size, Errors: formErrors{"size": fieldMessage(err)}}
		rq.w.WriteHeader(eh.AsError(err).Status)
		render(rq.w, rq.Request, drivesPage(d.pageData(rq, "Drives", "drives"), v))
		return
	}
	if err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	d.done(rq, "/ui/drives", "Drive "+p["name"]+" is now "+humanSize(p["size"])+".")
}

// shareDrive adds a drive to the library (readers: everyone) or takes it out.
func (d *Dashboard) shareDrive(rq *request) {
	id := rq.PathValue("id")
	readers, what := "", "is no longer shared"
	if rq.PostFormValue("share") == "true" {
		readers, what = eh.AllUsers, "is shared with everyone: they can start servers from it"
	}
	p, err := d.backend.SetDrive(rq.Context(), rq.user, id, eh.Props{"readers": readers})
	if err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	d.done(rq, "/ui/drives", "Drive "+p["name"]+" "+what+".")
}

func (d *Dashboard) destroyDrive(rq *request) {
	id := rq.PathValue("id")
	p, err := d.backend.DriveInfo(rq.Context(), rq.user, id)
	if err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	if rq.PostFormValue("confirmed") != "yes" {
		render(rq.w, rq.Request, confirmPage(d.pageData(rq, "Destroy drive", "drives"), confirmation{
			Question: "Destroy drive " + p["name"] + "?",
			Detail:   "Its data (" + humanSize(p["size"]) + ") is deleted for good.",
			Action:   "/ui/drives/" + id + "/destroy",
			Button:   "Destroy drive",
			Back:     "/ui/drives",
		}))
		return
	}
	if err := d.backend.DestroyDrive(rq.Context(), rq.user, id); err != nil {
		d.failed(rq, "/ui/drives", err)
		return
	}
	d.done(rq, "/ui/drives", "Drive "+p["name"]+" destroyed.")
}

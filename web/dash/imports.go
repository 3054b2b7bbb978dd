package dash

import (
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"hearth/web/api"
	"hearth/web/eh"
)

// Library imports images into the library: root-filesystem tarballs,
// OCI and docker save archives, raw and qcow2 images (admins only).
type Library interface {
	// StageImport checks the import and receives its file from body onto
	// the data disk, streaming.
	StageImport(ctx context.Context, caller User, o api.ImportOptions, body io.Reader, expected int64) (*api.StagedImport, error)
	// Import turns the staged file into a library image, reporting how
	// much of it has been read.
	Import(ctx context.Context, st *api.StagedImport, progress func(done, total int64)) (api.Imported, error)
}

// importJob is one import running in the background once its file has
// arrived, or ended a short while ago.
type importJob struct {
	ID    string
	Name  string // of the library image
	File  string // the uploaded file's name
	Owner string // the admin's name
	Bytes int64  // the file's size

	// Guarded by imports.mu.
	done, total int64
	failure     string // why it failed
	message     string // what it made
	drive       string // the library drive, once ready
	ended       time.Time
}

// importStatus is an import as the drives table and the form's script see it.
type importStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	File     string `json:"file"`
	Owner    string `json:"-"`
	Size     string `json:"size"`
	State    string `json:"state"` // importing, ready or failed
	Progress int    `json:"progress"`
	Text     string `json:"text"`
	Drive    string `json:"drive,omitempty"`
}

// imports runs imports after their upload, one goroutine each, and keeps
// them for the drives page until keep after they ended.
type imports struct {
	ctx     context.Context
	library Library
	log     *slog.Logger
	now     func() time.Time
	keep    time.Duration

	mu   sync.Mutex
	jobs map[string]*importJob
	wg   sync.WaitGroup
}

func newImports(ctx context.Context, library Library, log *slog.Logger, now func() time.Time) *imports {
	return &imports{ctx: ctx, library: library, log: log, now: now, keep: 15 * time.Minute, jobs: map[string]*importJob{}}
}

// start imports a staged file in the background.
func (im *imports) start(caller User, st *api.StagedImport, o api.ImportOptions) *importJob {
	job := &importJob{ID: uuid.NewString(), Name: o.Name, File: o.File, Owner: caller.Name, Bytes: st.Size(), total: st.Size()}
	im.mu.Lock()
	im.jobs[job.ID] = job
	im.mu.Unlock()
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		res, err := im.library.Import(im.ctx, st, func(done, total int64) {
			im.mu.Lock()
			job.done, job.total = done, total
			im.mu.Unlock()
		})
		im.mu.Lock()
		defer im.mu.Unlock()
		job.ended = im.now()
		if err != nil {
			job.failure = errMessage(err)
			return
		}
		job.drive = res.Drive["drive"]
		job.message = "Imported " + job.File + " (" + res.What + ") as library image " + job.Name + " (" + humanSize(res.Drive["size"]) + "): everyone can create servers from it."
		im.log.Info("library image imported from the dashboard", "user", caller.ID, "drive", job.drive, "file", job.File)
	}()
	return job
}

// status describes a job; the caller holds im.mu.
func (job *importJob) status() importStatus {
	s := importStatus{ID: job.ID, Name: job.Name, File: job.File, Owner: job.Owner, Size: humanBytes(uint64(job.Bytes)), Drive: job.drive}
	switch {
	case job.failure != "":
		s.State, s.Text = "failed", job.failure
	case !job.ended.IsZero():
		s.State, s.Progress, s.Text = "ready", 100, job.message
	case job.done == 0:
		s.State, s.Text = "importing", "importing"
	case job.done < job.total:
		s.State, s.Progress = "importing", int(job.done*100/job.total)
		s.Text = "importing " + strconv.Itoa(s.Progress) + "%"
	default: // the file is read; the filesystem is being made or checked
		s.State, s.Progress, s.Text = "importing", 99, "finishing"
	}
	return s
}

// get returns a job's status.
func (im *imports) get(id string) (importStatus, bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	job, ok := im.jobs[id]
	if !ok {
		return importStatus{}, false
	}
	return job.status(), true
}

// shown lists the imports the drives table shows, oldest first: those
// running and those that failed. Jobs ended more than keep ago are
// forgotten.
func (im *imports) shown() []importStatus {
	im.mu.Lock()
	defer im.mu.Unlock()
	var out []importStatus
	for id, job := range im.jobs {
		if !job.ended.IsZero() && im.now().Sub(job.ended) > im.keep {
			delete(im.jobs, id)
			continue
		}
		if s := job.status(); s.State != "ready" {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// dismiss forgets an ended job.
func (im *imports) dismiss(id string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if job, ok := im.jobs[id]; ok && !job.ended.IsZero() {
		delete(im.jobs, id)
	}
}

// wait returns when every import has ended (after the context is cancelled).
func (im *imports) wait() { im.wg.Wait() }

// importImage receives an admin's image file (a multipart form: name,
// format, size, then the file, streamed to the data disk) and imports it
// into the library in the background; the drives table shows how it goes.
func (d *Dashboard) importImage(rq *request) {
	if !rq.user.Admin {
		d.refuse(rq, http.StatusForbidden, "Only admins import images into the library.")
		return
	}
	fields, file, err := formUntilFile(rq)
	if err != nil {
		d.importFailed(rq, err)
		return
	}
	o := api.ImportOptions{Name: fields["name"], Format: fields["format"], Size: fields["size"], File: file.FileName()}
	if o.Name == "" {
		o.Name = imageName(o.File)
	}
	st, err := d.backend.StageImport(rq.Context(), rq.user, o, file, rq.ContentLength)
	if err != nil {
		d.importFailed(rq, err)
		return
	}
	job := d.imports.start(rq.user, st, o)
	msg := "Received " + o.File + " (" + humanBytes(uint64(st.Size())) + "); importing it as library image " + o.Name + "."
	if rq.fetch() {
		writeJSON(rq.w, http.StatusAccepted, map[string]string{"message": msg, "job": job.ID})
		return
	}
	d.done(rq, "/ui/drives", msg)
}

func (d *Dashboard) importFailed(rq *request, err error) {
	if rq.fetch() {
		e := eh.AsError(err) // its Key is the form's field
		writeJSON(rq.w, e.Status, map[string]string{"error": e.Message, "field": e.Key})
		return
	}
	d.failed(rq, "/ui/drives", err)
}

// imageName names an image after its file: "debian-12.tar.gz" → "debian-12".
func imageName(file string) string {
	for _, ext := range []string{".gz", ".zst", ".bz2", ".tar", ".tgz", ".qcow2", ".img", ".raw"} {
		file = strings.TrimSuffix(file, ext)
	}
	return file
}

// importJSON answers the import form's script: how an import goes.
func (d *Dashboard) importJSON(rq *request) {
	s, ok := d.imports.get(rq.PathValue("id"))
	if !ok || !rq.user.Admin {
		writeJSON(rq.w, http.StatusNotFound, map[string]string{"error": "no such import (it ended a while ago)"})
		return
	}
	writeJSON(rq.w, http.StatusOK, s)
}

func (d *Dashboard) dismissImport(rq *request) {
	if !rq.user.Admin {
		d.refuse(rq, http.StatusForbidden, "Only admins import images into the library.")
		return
	}
	d.imports.dismiss(rq.PathValue("id"))
	d.done(rq, "/ui/drives", "")
}

// formUntilFile reads a multipart form's fields up to its "file" part,
// which it returns unread, so the file streams to where it goes.
func formUntilFile(rq *request) (map[string]string, *multipart.Part, error) {
	mr, err := rq.MultipartReader()
	if err != nil {
		return nil, nil, eh.Usagef("upload: %v", err)
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, nil, eh.Usagef("upload: no file was sent")
		}
		if part.FormName() == "file" {
			return fields, part, nil
		}
		v, _ := io.ReadAll(io.LimitReader(part, 4096))
		fields[part.FormName()] = strings.TrimSpace(string(v))
	}
}

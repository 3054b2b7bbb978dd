package dash

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/internal/testguest"
)

// importForm posts the import form (fields, then the file) as the import
// script does (fetch) or as a browser without it.
func (b *browser) importForm(fields map[string]string, file string, data []byte, fetch bool) response {
	b.e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", file)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+"/ui/library/import?csrf="+url.QueryEscape(b.csrf), &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if fetch {
		req.Header.Set("X-Hearth-Fetch", "1")
	}
	return b.do(req)
}

// importJob sends a file through the script's path and waits for the
// import to end, returning its last status.
func (b *browser) importJob(name, format, file string, data []byte) importStatus {
	b.e.t.Helper()
	r := b.importForm(map[string]string{"name": name, "format": format}, file, data, true)
	var ans struct{ Job, Message, Error string }
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || r.status != http.StatusAccepted || ans.Job == "" {
		b.e.t.Fatalf("import %s: %d %s", file, r.status, r.body)
	}
	for {
		r := b.get("/ui/library/imports/" + ans.Job)
		var st importStatus
		if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.status != http.StatusOK {
			b.e.t.Fatalf("import status: %d %s", r.status, r.body)
		}
		if st.State != "importing" {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runDirEmpty fails the test when an upload or import left a temporary
// directory behind (the run directory also holds containerd's state).
func (e *env) runDirEmpty() {
	e.t.Helper()
	left, _ := filepath.Glob(filepath.Join(e.store.RunDir(), ".hearth-import-*"))
	if len(left) != 0 {
		e.t.Errorf("imports left %v", left)
	}
}

// importEnv is a dashboard with the admin logged in, and the busybox
// tarball to import; it skips without the tools imports need.
func importEnv(t *testing.T) (*env, *browser, []byte) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("imports need mkfs.ext4 (e2fsprogs)")
	}
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	tarball, err := os.ReadFile(testguest.Tarball(t))
	if err != nil {
		t.Fatal(err)
	}
	return e, b, tarball
}

func TestImportFormats(t *testing.T) {
	e, b, tarball := importEnv(t)
	if r := b.get("/ui/drives"); !strings.Contains(r.body, "Import an image into the library") {
		t.Fatal("the admin's drives page has no import form")
	}
	raw := testguest.Image(t, 64<<20)
	cases := []struct{ name, format, file, what string }{
		{"busybox", "", "busybox.tar", "a root-filesystem tarball"},
		{"busybox-chosen", "tar", "busybox.tar", "a root-filesystem tarball"},
		{"busybox-raw", "raw", "busybox.img", "a raw ext4 filesystem image"},
	}
	files := map[string][]byte{"busybox.tar": tarball}
	var err error
	if files["busybox.img"], err = os.ReadFile(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		qcow2 := filepath.Join(t.TempDir(), "busybox.qcow2")
		if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
		if files["busybox.qcow2"], err = os.ReadFile(qcow2); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, format, file, what string }{"busybox-qcow2", "qcow2", "busybox.qcow2", "a qcow2 image holding a raw ext4 filesystem image"})
	} else {
		t.Log("qemu-img (Debian's qemu-utils) is not installed: the qcow2 import is not tried")
	}
	for _, tc := range cases {
		st := b.importJob(tc.name, tc.format, tc.file, files[tc.file])
		if st.State != "ready" || !strings.Contains(st.Text, tc.what) || st.Drive == "" {
			t.Errorf("%s: %+v, want ready, saying it was %s", tc.name, st, tc.what)
		}
	}
	e.runDirEmpty()
	// Published to everyone: an ordinary user sees them all in the library.
	plain, _ := e.user("alice")
	shared, err := e.service.SharedDrives(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sd := range shared {
		got[sd.Props["name"]] = sd.Image
	}
	for _, tc := range cases {
		if !got[tc.name] {
			t.Errorf("library as alice sees it: %v, want image %s", got, tc.name)
		}
	}
}

func TestImportWithoutScript(t *testing.T) {
	e, b, tarball := importEnv(t)
	r := b.importForm(map[string]string{"format": ""}, "debian-12.tar", tarball, false)
	if r.status != http.StatusSeeOther || r.location != "/ui/drives" {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	page := b.get("/ui/drives")
	if !strings.Contains(page.body, "importing it as library image debian-12") {
		t.Errorf("no flash about the import: %s", page.body)
	}
	for running := true; running; time.Sleep(20 * time.Millisecond) {
		running = false
		for _, s := range e.dash.imports.shown() {
			running = running || s.State == "importing"
		}
	}
	drives, _ := e.service.DrivesInfo(context.Background(), e.admin)
	if len(drives) != 1 || drives[0]["name"] != "debian-12" {
		t.Errorf("drives %v, want the image named after its file", drives)
	}
}

func TestImportErrors(t *testing.T) {
	e, b, tarball := importEnv(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball)
	zw.Close()
	damaged := gz.Bytes()[:gz.Len()/2]
	qcow2Head := append([]byte("QFI\xfb"), make([]byte, 4096)...)

	for _, tc := range []struct {
		name, format, file string
		data               []byte
		path               string // PATH for the import ("" unchanged)
		want               string
	}{
		{"text", "", "notes.txt", []byte("hello, not an image\n"), "", "notes.txt is not an image Hearth can import"},
		{"damaged", "", "busybox.tar.gz", damaged, "", "busybox.tar.gz is damaged or incomplete"},
		{"other format", "qcow2", "busybox.tar", tarball, "", "busybox.tar is not the format chosen: the file is a root-filesystem tarball"},
		{"no qemu-img", "", "disk.qcow2", qcow2Head, t.TempDir(), "qemu-utils"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			st := b.importJob(tc.name, tc.format, tc.file, tc.data)
			if st.State != "failed" || !strings.Contains(st.Text, tc.want) {
				t.Errorf("%+v, want failed saying %q", st, tc.want)
			}
			// The drives table shows the failure until it is dismissed.
			rows := b.get("/ui/drives/rows")
			if !strings.Contains(rows.body, "import failed") || !strings.Contains(rows.body, "import-"+st.ID) {
				t.Errorf("the drives table does not show the failed import: %s", rows.body)
			}
			if r := b.post("/ui/library/imports/"+st.ID+"/dismiss", nil); r.status != http.StatusSeeOther {
				t.Errorf("dismiss: %d", r.status)
			}
			if rows := b.get("/ui/drives/rows"); strings.Contains(rows.body, "import-"+st.ID) {
				t.Error("the failed import is still shown after dismiss")
			}
		})
	}
	for _, tc := range []struct {
		fields map[string]string
		field  string
	}{
		{map[string]string{"name": "", "format": ""}, "name"},
		{map[string]string{"name": "x", "format": "vmdk"}, "format"},
		{map[string]string{"name": "x", "format": "", "size": "lots"}, "size"},
	} {
		r := b.importForm(tc.fields, "", tarball, true)
		var ans struct{ Error, Field string }
		json.Unmarshal([]byte(r.body), &ans)
		if r.status != http.StatusBadRequest || ans.Field != tc.field {
			t.Errorf("import %v: %d %s, want 400 about %s", tc.fields, r.status, r.body, tc.field)
		}
	}
	e.runDirEmpty()
	if drives, _ := e.service.DrivesInfo(context.Background(), e.admin); len(drives) != 0 {
		t.Errorf("failed imports left drives: %v", drives)
	}
}

func TestImportAdminsOnly(t *testing.T) {
	e := newEnv(t)
	_, secret := e.user("alice")
	b := e.browser()
	b.login("alice", secret)
	if r := b.get("/ui/drives"); strings.Contains(r.body, "/ui/library/import") {
		t.Error("an ordinary user's drives page offers the import")
	}
	for _, fetch := range []bool{true, false} {
		if r := b.importForm(map[string]string{"name": "evil"}, "x.tar", []byte("data"), fetch); r.status != http.StatusForbidden {
			t.Errorf("import by an ordinary user (script %v): %d, want 403", fetch, r.status)
		}
	}
	if r := b.get("/ui/library/imports/anything"); r.status != http.StatusNotFound {
		t.Errorf("import status for an ordinary user: %d", r.status)
	}
	e.runDirEmpty()
}

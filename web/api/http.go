package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"hearth/internal/httpdeadline"
	"hearth/internal/units"
	"hearth/storage"
	"hearth/web/eh"
)

// Request limits.
const (
	MaxPropsBody = 64 << 10 // bytes of a KEY VALUE or JSON body
	MaxWriteBody = 1 << 30  // bytes of one /drives/D/write request body (as sent, before gunzip)
	MaxRead      = 4 << 20  // bytes one /drives/D/read may return
)

// Handler returns the HTTP API: /servers/..., /drives/..., /resources/...,
// and Hearth's own /users/...
// It expects paths without the optional prefix and the authenticated Caller
// in the request context (see WithCaller); web.New arranges both.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// call is one API request on its way through the router.
type call struct {
	s    *Service
	w    http.ResponseWriter
	r    *http.Request
	c    Caller
	path []string
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c, ok := CallerFrom(r.Context())
	if !ok {
		eh.WriteError(w, eh.Authf("authentication required"))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodHead:
	default:
		eh.WriteError(w, eh.Methodf("method %s is not used by this API (GET reads, POST changes)", r.Method))
		return
	}
	k := &call{s: s, w: w, r: r, c: c, path: Segments(r.URL.EscapedPath())}
	if err := k.route(); err != nil {
		eh.WriteError(w, err)
	}
}

// Segments splits an escaped path (URL.EscapedPath) into its non-empty
// segments, unescaping each: doubled slashes (a stem ending in / plus
// /servers/...) do not matter, and an encoded slash (%2F) stays inside its
// segment, so an ID can never turn into a different command.
func Segments(escaped string) []string {
	segs := strings.FieldsFunc(escaped, func(r rune) bool { return r == '/' })
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			segs[i] = u
		}
	}
	return segs
}

func (k *call) notFound() error {
	return eh.Missingf("no such command %s /%s", k.r.Method, strings.Join(k.path, "/"))
}

// match reports whether the path is exactly pattern; "*" matches any segment.
func (k *call) match(pattern ...string) bool {
	if len(pattern) != len(k.path) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != k.path[i] {
			return false
		}
	}
	return true
}

// change refuses GET on a command that changes state (405 method), unless the
// CloudSigma 1.0 clients are known to send it as a GET (getOK).
func (k *call) change(getOK bool) error {
	if k.r.Method != http.MethodPost && !getOK {
		return eh.Methodf("/%s changes state: use POST", strings.Join(k.path, "/"))
	}
	return nil
}

// props reads a KEY VALUE or JSON body.
func (k *call) props() (eh.Props, error) {
	p, err := eh.ParseProps(k.r.Body, MaxPropsBody)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (k *call) noContent() error {
	k.w.WriteHeader(http.StatusNoContent)
	return nil
}

// one answers with one object, or the error.
func (k *call) one(p eh.Props, err error) error {
	if err != nil {
		return err
	}
	eh.WriteProps(k.w, k.r, p)
	return nil
}

// all answers with whole objects (blocks / JSON array), or the error.
func (k *call) all(ps []eh.Props, err error) error {
	if err != nil {
		return err
	}
	eh.WriteBlocks(k.w, k.r, ps)
	return nil
}

// list answers with one row of keys per object, or the error.
func (k *call) list(ps []eh.Props, err error, keys ...string) error {
	if err != nil {
		return err
	}
	eh.WriteList(k.w, k.r, ps, keys...)
	return nil
}

// update runs a command that changes state from a property body and answers
// with the object it returns. getOK as for change.
func (k *call) update(getOK bool, op func(in eh.Props) (eh.Props, error)) error {
	if err := k.change(getOK); err != nil {
		return err
	}
	in, err := k.props()
	if err != nil {
		return err
	}
	return k.one(op(in))
}

// act runs a command without a body that answers 204.
func (k *call) act(getOK bool, op func() error) error {
	if err := k.change(getOK); err != nil {
		return err
	}
	if err := op(); err != nil {
		return err
	}
	return k.noContent()
}

func (k *call) route() error {
	if len(k.path) == 0 {
		return k.notFound()
	}
	switch k.path[0] {
	case "servers":
		return k.servers()
	case "drives":
		return k.drives()
	case "resources":
		return k.resources()
	case "users":
		return k.users()
	}
	return k.notFound()
}

// users answers Hearth's own user endpoints: info (limits and usage) for
// everyone about themselves, for an admin about anyone; set (limits) for admins.
func (k *call) users() error {
	ctx, s, c := k.r.Context(), k.s, k.c
	switch {
	case k.match("users", "list"):
		infos, err := s.UsersInfo(ctx, c)
		return k.list(infos, err, "user", "name")
	case k.match("users", "info"):
		return k.all(s.UsersInfo(ctx, c))
	case k.match("users", "*", "info"):
		return k.one(s.UserInfo(ctx, c, k.path[1]))
	case k.match("users", "*", "set"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.SetUser(ctx, c, k.path[1], in) })
	}
	return k.notFound()
}

func (k *call) servers() error {
	ctx, s, c := k.r.Context(), k.s, k.c
	switch {
	case k.match("servers", "list"):
		infos, err := s.ServersInfo(ctx, c)
		return k.list(infos, err, "server", "cpu", "mem")
	case k.match("servers", "info"), k.match("servers", "info", "full"):
		return k.all(s.serversInfo(ctx, c, len(k.path) == 3))
	case k.match("servers", "create"), k.match("servers", "create", "stopped"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.CreateServer(ctx, c, in, len(k.path) == 2) })
	case len(k.path) < 3:
		return k.notFound()
	}
	id := k.path[1]
	switch {
	case k.match("servers", "*", "info"), k.match("servers", "*", "info", "full"):
		return k.one(s.serverInfo(ctx, c, id, len(k.path) == 4))
	case k.match("servers", "*", "set"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.SetServer(ctx, c, id, in) })
	case k.match("servers", "*", "console"):
		out, err := s.ServerConsole(ctx, c, id)
		if err != nil {
			return err
		}
		k.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		k.w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		k.w.Write(out)
		return nil
	case len(k.path) == 3:
		switch action := k.path[2]; action {
		case ActionStart, ActionStop, ActionShutdown, ActionReset, ActionPause, ActionResume, ActionDestroy:
			return k.act(action == ActionDestroy, func() error { return s.ServerAction(ctx, c, id, action) })
		}
	}
	return k.notFound()
}

func (k *call) drives() error {
	ctx, s, c := k.r.Context(), k.s, k.c
	switch {
	case k.match("drives", "list"):
		infos, err := s.DrivesInfo(ctx, c)
		return k.list(infos, err, "drive")
	case k.match("drives", "info"), k.match("drives", "info", "full"):
		return k.all(s.drivesInfo(ctx, c, len(k.path) == 3))
	case k.match("drives", "list", "standard"), k.match("drives", "info", "standard"):
		return k.library(k.path[1], "")
	case k.match("drives", "standard", "*"):
		return k.library(k.path[2], "")
	case k.match("drives", "standard", "img", "*"), k.match("drives", "standard", "cd", "*"):
		media := map[string]string{"img": "disk", "cd": "cdrom"}[k.path[2]]
		return k.library(k.path[3], media)
	case k.match("drives", "standard", "img", "*", "info"):
		return k.one(s.DriveInfo(ctx, c, k.path[3]))
	case k.match("drives", "create"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.CreateDrive(ctx, c, in) })
	case len(k.path) < 3:
		return k.notFound()
	}
	id := k.path[1]
	switch {
	case k.match("drives", "*", "info"), k.match("drives", "*", "info", "full"):
		return k.one(s.driveInfo(ctx, c, id, len(k.path) == 4))
	case k.match("drives", "*", "set"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.SetDrive(ctx, c, id, in) })
	case k.match("drives", "*", "clone"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.CloneDrive(ctx, c, id, in) })
	case k.match("drives", "*", "destroy"):
		return k.act(true, func() error { return s.DestroyDrive(ctx, c, id) })
	case k.match("drives", "*", "image", "*"), k.match("drives", "*", "image", "*", "*"):
		if err := k.change(false); err != nil {
			return err
		}
		conversion := ""
		if len(k.path) == 5 {
			conversion = k.path[4]
			if conversion != storage.ConvertGzip && conversion != storage.ConvertGunzip {
				return eh.Usagef("image conversion %s: want gunzip or gzip", conversion)
			}
		}
		if err := s.ImageDrive(ctx, c, id, k.path[3], conversion); err != nil {
			return err
		}
		return k.one(s.DriveInfo(ctx, c, id))
	case k.path[2] == "read" && len(k.path) <= 5:
		k.w, k.r = httpdeadline.Stream(k.w, k.r)
		return k.read(id)
	case k.path[2] == "write" && len(k.path) <= 4:
		if err := k.change(false); err != nil {
			return err
		}
		k.w, k.r = httpdeadline.Stream(k.w, k.r)
		return k.write(id)
	}
	return k.notFound()
}

// library lists library drives: what is "list" (UUIDs) or "info" (blocks),
// media filters them (CloudSigma's img and cd lists).
func (k *call) library(what, media string) error {
	if what != "list" && what != "info" {
		return k.notFound()
	}
	infos, err := k.s.LibraryDrives(k.r.Context(), k.c)
	if err != nil {
		return err
	}
	if media != "" {
		kept := infos[:0]
		for _, p := range infos {
			if m := p["media"]; m == media || m == "" && media == "disk" {
				kept = append(kept, p)
			}
		}
		infos = kept
	}
	if what == "list" {
		eh.WriteList(k.w, k.r, infos, "drive")
	} else {
		eh.WriteBlocks(k.w, k.r, infos)
	}
	return nil
}

// sizeArg parses an offset or size path segment (bytes, or K/M/G/T suffixed).
func sizeArg(name, v string) (int64, error) {
	n, err := eh.ParseSize(v)
	if err != nil {
		return 0, eh.Usagef("%s %s: %v", name, v, err)
	}
	return n, nil
}

// read answers /drives/D/read[/OFFSET[/SIZE]]: raw bytes, at most 4 MiB,
// cut at the end of the drive. OFFSET defaults to 0, SIZE to 4 MiB.
func (k *call) read(id string) error {
	off, size := int64(0), int64(MaxRead)
	var err error
	if len(k.path) >= 4 {
		if off, err = sizeArg("offset", k.path[3]); err != nil {
			return err
		}
	}
	if len(k.path) == 5 {
		if size, err = sizeArg("size", k.path[4]); err != nil {
			return err
		}
		if size > MaxRead {
			return eh.Usagef("size %s: a read returns at most %d bytes (4M)", k.path[4], MaxRead)
		}
	}
	// The drive is held from its size to the last byte sent, so the
	// Content-Length promised is what the body carries.
	rd, err := k.s.OpenDrive(k.r.Context(), k.c, id, off, size)
	if err != nil {
		return err
	}
	defer rd.Close()
	h := k.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	if k.r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(k.w, rd); err != nil {
		// The status line has gone out; all that is left is to cut the body short.
		k.s.log.Warn("reading a drive for a download failed", "drive", id, "err", err)
	}
	return nil
}

// write answers /drives/D/write[/OFFSET]: the body (raw, or with
// Content-Encoding: gzip) is streamed into the drive.
func (k *call) write(id string) error {
	var off int64
	if len(k.path) == 4 {
		var err error
		if off, err = sizeArg("offset", k.path[3]); err != nil {
			return err
		}
	}
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(k.r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gzipped = true
	default:
		return eh.Usagef("Content-Encoding %s: only gzip is understood", enc)
	}
	if k.r.ContentLength > MaxWriteBody {
		return eh.Usagef("request body of %d bytes: one write takes at most %d bytes", k.r.ContentLength, MaxWriteBody)
	}
	if !gzipped && k.r.ContentLength > 0 {
		// Refuse an oversize write before any of it lands.
		d, err := k.s.drive(k.r.Context(), k.c, id, true)
		if err != nil {
			return err
		}
		if off+k.r.ContentLength > d.Size {
			return eh.Usagef("%s at offset %d reach past the end of %s (%s)", units.Size(k.r.ContentLength), off, d.Label(), units.Size(d.Size))
		}
	}
	body := http.MaxBytesReader(k.w, k.r.Body, MaxWriteBody)
	if err := k.s.WriteDrive(k.r.Context(), k.c, id, off, body, gzipped); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return eh.Usagef("request body: one write takes at most %d bytes", MaxWriteBody)
		}
		return err
	}
	return k.noContent()
}

func (k *call) resources() error {
	ctx, s, c := k.r.Context(), k.s, k.c
	switch {
	case k.match("resources", "list"):
		infos, err := s.ResourcesInfo(ctx, c, "")
		return k.list(infos, err, "type", "resource")
	case k.match("resources", "info"):
		return k.all(s.ResourcesInfo(ctx, c, ""))
	case len(k.path) < 3:
		return k.notFound()
	}
	typ := k.path[1]
	if err := checkResourceType(typ); err != nil {
		return err
	}
	switch {
	case k.match("resources", "*", "list"):
		infos, err := s.ResourcesInfo(ctx, c, typ)
		return k.list(infos, err, "type", "resource")
	case k.match("resources", "*", "info"):
		return k.all(s.ResourcesInfo(ctx, c, typ))
	case k.match("resources", "*", "create"):
		return k.update(true, func(in eh.Props) (eh.Props, error) { return s.CreateResource(ctx, c, typ, in) })
	case k.match("resources", "*", "*", "info"):
		return k.one(s.ResourceInfo(ctx, c, typ, k.path[2]))
	case k.match("resources", "*", "*", "set"):
		return k.update(false, func(in eh.Props) (eh.Props, error) { return s.SetResource(ctx, c, typ, k.path[2], in) })
	case k.match("resources", "*", "*", "destroy"):
		return k.act(true, func() error { return s.DestroyResource(ctx, c, typ, k.path[2]) })
	}
	return k.notFound()
}

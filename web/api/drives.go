package api

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"hearth/internal/units"
	"hearth/storage"
	"hearth/web/eh"
)

// drive loads a drive for the caller. Reading (info, read, image source)
// needs ownership, admin, or a readers entry; changing it (set, write,
// destroy, image target) ownership or admin. A drive the caller may not see
// is missing, exactly like one that does not exist.
func (s *Service) drive(ctx context.Context, c Caller, id string, change bool) (storage.Drive, error) {
	if err := checkID("drive", id); err != nil {
		return storage.Drive{}, err
	}
	d, err := s.store.Drive(ctx, strings.ToLower(id))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.Drive{}, missing("drive", id)
	case err != nil:
		return storage.Drive{}, apiError(err)
	case ownerCheck(c, d.Owner):
		return d, nil
	case !d.Readable(c.ID):
		return storage.Drive{}, missing("drive", id)
	case change:
		return storage.Drive{}, eh.Missingf("drive %s is not yours: you may read and image it, not change it", id)
	}
	return d, nil
}

// driveStored is a drive's stored properties as the key schema sees them.
func driveStored(d storage.Drive) eh.Props {
	p := make(eh.Props, len(d.Props)+2)
	maps.Copy(p, d.Props)
	if d.Name != "" {
		p["name"] = d.Name
	}
	p["size"] = strconv.FormatInt(d.Size, 10)
	return p
}

// fromStored writes schema output back into a drive.
func fromStored(d *storage.Drive, p eh.Props) error {
	size, err := strconv.ParseInt(p["size"], 10, 64)
	if err != nil {
		return atKey("size", eh.Usagef("key size: %v", err))
	}
	d.Name, d.Size = p["name"], size
	d.Props = maps.Clone(p)
	delete(d.Props, "name")
	delete(d.Props, "size")
	return nil
}

func (s *Service) driveProps(d storage.Drive, full bool) eh.Props {
	p := driveStored(d)
	p["drive"], p["user"], p["status"] = d.ID, d.Owner, "active"
	if len(d.Claimed) > 0 {
		p["claimed"] = strings.Join(d.Claimed, " ")
	}
	if d.Imaging != "" {
		p["imaging"] = d.Imaging
	}
	p["read:bytes"] = strconv.FormatInt(d.Counters.ReadBytes, 10)
	p["read:requests"] = strconv.FormatInt(d.Counters.ReadRequests, 10)
	p["write:bytes"] = strconv.FormatInt(d.Counters.WriteBytes, 10)
	p["write:requests"] = strconv.FormatInt(d.Counters.WriteRequests, 10)
	if full {
		p["host"] = s.store.HostID()
	}
	return p
}

func (s *Service) drivesProps(list []storage.Drive, full bool) []eh.Props {
	out := make([]eh.Props, len(list))
	for i, d := range list {
		out[i] = s.driveProps(d, full)
	}
	return out
}

// DrivesInfo returns the info of the caller's drives (every drive for an admin).
func (s *Service) DrivesInfo(ctx context.Context, c Caller) ([]eh.Props, error) {
	return s.drivesInfo(ctx, c, false)
}

func (s *Service) drivesInfo(ctx context.Context, c Caller, full bool) ([]eh.Props, error) {
	owner := c.ID
	if c.Admin {
		owner = ""
	}
	list, err := s.store.Drives(ctx, owner)
	if err != nil {
		return nil, apiError(err)
	}
	return s.drivesProps(list, full), nil
}

// LibraryDrives returns the library ("standard") drives: those `hearth
// image import` made, plus other users' drives whose readers name the caller.
func (s *Service) LibraryDrives(ctx context.Context, c Caller) ([]eh.Props, error) {
	lib, err := s.store.LibraryDrives(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	all, err := s.store.Drives(ctx, "")
	if err != nil {
		return nil, apiError(err)
	}
	for _, d := range all {
		if !d.Library && d.Owner != c.ID && d.Readable(c.ID) {
			lib = append(lib, d)
		}
	}
	return s.drivesProps(lib, false), nil
}

// SharedDrive is a drive the caller may start servers from without owning
// it, as the dashboard offers it.
type SharedDrive struct {
	Props eh.Props
	Owner string // the owner's name
	// Image says an admin published it to everyone's library (`hearth image
	// import`, or an admin's drive readable by everyone): only such a drive
	// is offered as anyone's default image. A drive a user shares is
	// labelled as theirs and never a default.
	Image bool
}

// SharedDrives lists the library and the drives other users let the
// caller read, with who owns them and whether each is a published image.
func (s *Service) SharedDrives(ctx context.Context, c Caller) ([]SharedDrive, error) {
	all, err := s.store.Drives(ctx, "")
	if err != nil {
		return nil, apiError(err)
	}
	users, err := s.store.Users(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	owners := make(map[string]storage.User, len(users))
	for _, u := range users {
		owners[u.ID] = u
	}
	var out []SharedDrive
	for _, d := range all {
		if !d.Library && (d.Owner == c.ID || !d.Readable(c.ID)) {
			continue
		}
		owner := owners[d.Owner]
		out = append(out, SharedDrive{Props: s.driveProps(d, false), Owner: owner.Name,
			Image: d.Library || owner.Admin && slices.Contains(strings.Fields(d.Props["readers"]), storage.Everyone)})
	}
	return out, nil
}

// DriveInfo returns one drive's info.
func (s *Service) DriveInfo(ctx context.Context, c Caller, id string) (eh.Props, error) {
	return s.driveInfo(ctx, c, id, false)
}

func (s *Service) driveInfo(ctx context.Context, c Caller, id string, full bool) (eh.Props, error) {
	d, err := s.drive(ctx, c, id, false)
	if err != nil {
		return nil, err
	}
	return s.driveProps(d, full), nil
}

// newDrive checks a new drive's properties and makes its row, owned by c.
func newDrive(c Caller, props eh.Props) (storage.Drive, error) {
	next, err := eh.NewDrive(props)
	if err != nil {
		return storage.Drive{}, err
	}
	d := storage.Drive{Owner: c.ID}
	if err := fromStored(&d, next); err != nil {
		return storage.Drive{}, err
	}
	return d, nil
}

// CreateDrive makes an empty (sparse) drive owned by the caller.
func (s *Service) CreateDrive(ctx context.Context, c Caller, props eh.Props) (eh.Props, error) {
	d, err := newDrive(c, props)
	if err != nil {
		return nil, err
	}
	d, err = s.store.CreateDrive(ctx, d)
	if err != nil {
		return nil, apiError(err)
	}
	return s.driveProps(d, false), nil
}

// SetDrive changes a drive's properties; a new size resizes its image.
func (s *Service) SetDrive(ctx context.Context, c Caller, id string, changes eh.Props) (eh.Props, error) {
	d, err := s.drive(ctx, c, id, true)
	if err != nil {
		return nil, err
	}
	if _, _, err := eh.UpdateDrive(s.driveProps(d, false), changes); err != nil {
		return nil, err
	}
	d, err = s.store.UpdateDrive(ctx, d.ID, func(cur *storage.Drive) error {
		// Compared with the drive's info, so that a client echoing it back
		// (drive, user, counters...) changes only what differs.
		_, changed, err := eh.UpdateDrive(s.driveProps(*cur, false), changes)
		if err != nil {
			return err
		}
		return fromStored(cur, mergeProps(driveStored(*cur), changed))
	})
	if err != nil {
		return nil, apiError(err)
	}
	return s.driveProps(d, false), nil
}

// DestroyDrive removes a drive and its image.
func (s *Service) DestroyDrive(ctx context.Context, c Caller, id string) error {
	d, err := s.drive(ctx, c, id, true)
	if err != nil {
		return err
	}
	return apiError(s.store.DeleteDrive(ctx, d.ID))
}

// ImageDrive starts copying source (a drive the caller may read) into target
// (one they may change); conversion is "", "gzip" or "gunzip". The copy runs
// in the background; the target shows `imaging` until it ends.
func (s *Service) ImageDrive(ctx context.Context, c Caller, target, source, conversion string) error {
	t, err := s.drive(ctx, c, target, true)
	if err != nil {
		return err
	}
	src, err := s.drive(ctx, c, source, false)
	if err != nil {
		return err
	}
	if _, err := s.store.StartImaging(ctx, t.ID, src.ID, conversion); err != nil {
		return apiError(err)
	}
	return nil
}

// CloneDrive (CloudSigma 1.0) makes a new drive for the caller from source:
// props as for create, size defaulting to the source's (taken while the
// source is held, so a resize meanwhile cannot make the clone too small),
// then images it.
func (s *Service) CloneDrive(ctx context.Context, c Caller, source string, props eh.Props) (eh.Props, error) {
	src, err := s.drive(ctx, c, source, false)
	if err != nil {
		return nil, err
	}
	props = maps.Clone(props)
	if props == nil {
		props = eh.Props{}
	}
	sameSize := props["size"] == ""
	if sameSize {
		props["size"] = strconv.FormatInt(src.Size, 10) // to check the rest against
	}
	d, err := newDrive(c, props)
	if err != nil {
		return nil, err
	}
	if sameSize {
		d.Size = 0
	}
	d, err = s.store.CloneDrive(ctx, src.ID, d)
	if err != nil {
		return nil, apiError(err)
	}
	return s.driveProps(d, false), nil
}

// bodyError marks a failure to read the request body: the client's fault.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "request body: " + e.err.Error() }

type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyError{err}
	}
	return n, err
}

// WriteDrive streams body into a drive from offset; gzipped bodies are
// inflated on the way. Data reaching past the end of the drive is refused
// (400 usage).
func (s *Service) WriteDrive(ctx context.Context, c Caller, id string, offset int64, body io.Reader, gzipped bool) error {
	d, err := s.drive(ctx, c, id, true)
	if err != nil {
		return err
	}
	if offset > d.Size {
		return eh.Usagef("offset %d is past the end of %s (%s)", offset, d.Label(), units.Size(d.Size))
	}
	body = bodyReader{body}
	if gzipped {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return eh.Usagef("Content-Encoding gzip: body is not gzip data: %v", err)
		}
		defer zr.Close()
		body = bodyReader{zr}
	}
	if _, err := s.store.WriteDrive(ctx, d.ID, offset, body); err != nil {
		var be bodyError
		if errors.As(err, &be) {
			return eh.Usagef("%v", be)
		}
		if errors.Is(err, storage.ErrTooLarge) {
			return eh.Usagef("the data reaches past the end of %s (%s; written at offset %d)", d.Label(), units.Size(d.Size), offset)
		}
		return apiError(err)
	}
	return nil
}

// OpenDrive opens up to size bytes from offset of a drive (cut at the end of
// the drive) for reading; the reader's Size is what it yields, and the drive
// keeps its length and contents until it is closed. Close it.
func (s *Service) OpenDrive(ctx context.Context, c Caller, id string, offset, size int64) (*storage.DriveReader, error) {
	d, err := s.drive(ctx, c, id, false)
	if err != nil {
		return nil, err
	}
	r, err := s.store.OpenDrive(ctx, d.ID, offset, size)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, missing("drive", id)
	case errors.Is(err, storage.ErrTooLarge):
		return nil, eh.Usagef("%v", err)
	}
	return r, apiError(err)
}

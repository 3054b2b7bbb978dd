package storage

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"hearth/internal/units"
)

// Drive is a block device image owned by a user.
type Drive struct {
	ID       string
	Owner    string
	Name     string
	Size     int64             // bytes; the image file is exactly this long
	Props    map[string]string // claim:type, readers, tags, user:*, encryption:cipher, tier, media, format, …
	Library  bool              // a library ("standard") drive, made by `hearth image import`
	Imaging  string            // "" when idle, "queued", or progress "NN%"
	Claimed  []string          // claim tokens HOST:guest:SERVER:DEVICE (and HOST:imaging:DRIVE while imaging)
	Counters DriveCounters
	Created  time.Time
}

// DriveCounters count the data read and written through the API.
type DriveCounters struct {
	ReadBytes, ReadRequests, WriteBytes, WriteRequests int64
}

// Exclusive reports whether at most one server may claim the drive.
func (d Drive) Exclusive() bool { return d.Props["claim:type"] != "shared" }

// Readable reports whether user may read or image from the drive without
// owning it: readers lists them or everyone.
func (d Drive) Readable(user string) bool {
	if d.Owner == user {
		return true
	}
	for _, r := range strings.Fields(d.Props["readers"]) {
		if r == user || r == Everyone {
			return true
		}
	}
	return false
}

const driveColumns = `id, owner, name, size, props, library, imaging, created,
	read_bytes, read_requests, write_bytes, write_requests,
	(SELECT group_concat(server || ':' || device, ' ') FROM claims WHERE claims.drive = drives.id)`

func (s *Store) scanDrive(row interface{ Scan(...any) error }) (Drive, error) {
	var d Drive
	var props string
	var claims sql.NullString
	var created int64
	c := &d.Counters
	if err := row.Scan(&d.ID, &d.Owner, &d.Name, &d.Size, &props, &d.Library, &d.Imaging, &created,
		&c.ReadBytes, &c.ReadRequests, &c.WriteBytes, &c.WriteRequests, &claims); err != nil {
		return Drive{}, err
	}
	var err error
	if d.Props, err = decodeProps(props); err != nil {
		return Drive{}, fmt.Errorf("storage: drive %s: props: %w", d.ID, err)
	}
	if d.Props == nil {
		d.Props = map[string]string{}
	}
	d.Created = time.Unix(created, 0)
	for _, c := range strings.Fields(claims.String) {
		d.Claimed = append(d.Claimed, s.hostID+":guest:"+c)
	}
	sort.Strings(d.Claimed)
	if d.Imaging != "" {
		d.Claimed = append(d.Claimed, s.hostID+":imaging:"+d.ID)
	}
	return d, nil
}

// CreateDrive makes an empty drive of d.Size bytes: the sparse image file
// first (synced), then the row. A crash in between leaves an orphan file,
// which the next Open removes. The caller sets Owner, Name, Size, Props and
// Library; the rest is filled in.
func (s *Store) CreateDrive(ctx context.Context, d Drive) (Drive, error) {
	if d.Size < 0 {
		return Drive{}, fmt.Errorf("drive size %d: %w", d.Size, ErrInvalid)
	}
	return s.CreateDriveFrom(ctx, d, func(path string) error { return createImage(path, d.Size) })
}

// CreateDriveFrom makes a drive whose image fill writes: fill gets the path
// (which does not exist yet) and must leave a file there; the drive's size is
// the file's length. The row is committed only after the file is complete and
// synced, so a crash or a failed fill leaves at most an orphan file, which
// the next Open removes. The caller sets Owner, Name, Props and Library.
func (s *Store) CreateDriveFrom(ctx context.Context, d Drive, fill func(path string) error) (Drive, error) {
	d.ID = uuid.NewString()
	if d.Name == "" {
		d.Name = d.ID // every drive shows a name (clients index by it)
	}
	d.Props = maps.Clone(d.Props)
	if d.Props == nil {
		d.Props = map[string]string{}
	}
	d.Imaging, d.Claimed, d.Counters = "", nil, DriveCounters{}
	d.Created = s.now()
	blob, err := json.Marshal(d.Props)
	if err != nil {
		return Drive{}, err
	}
	path := s.DrivePath(d.ID)
	if err := fill(path); err != nil {
		os.Remove(path)
		if isFull(err) {
			return Drive{}, errFull("drive " + d.ID)
		}
		return Drive{}, err
	}
	err = func() error {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file: %w", path, ErrInvalid)
		}
		d.Size = info.Size()
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return syncDir(filepath.Dir(path))
	}()
	if err == nil {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if err := checkLimits(ctx, tx, d.Owner, Amounts{LimitDrives: d.Size}); err != nil {
				return err
			}
			if err := s.checkDiskRoom(ctx, tx, d.Size); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO drives (id, owner, name, size, props, library, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				d.ID, d.Owner, d.Name, d.Size, blob, d.Library, d.Created.Unix()); err != nil {
				if strings.Contains(err.Error(), "FOREIGN KEY") {
					return fmt.Errorf("owner %s: %w", d.Owner, ErrNotFound)
				}
				return fmt.Errorf("storage: create drive: %w", err)
			}
			return s.event(ctx, tx, d.ID, "drive.create", "drive %q created, %d bytes", d.Name, d.Size)
		})
	}
	if err != nil {
		os.Remove(path)
		if isFull(err) && !errors.Is(err, ErrFull) {
			return Drive{}, errFull("drive " + d.ID)
		}
		return Drive{}, err
	}
	return d, nil
}

// tooBigForHost turns the filesystem's refusal of a file of size bytes
// (EFBIG: ext4 with 4 KiB blocks stops just short of 16 TiB) into bad
// input naming the size; other errors pass as they are.
func tooBigForHost(size int64, err error) error {
	if errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("size %s is more than the largest file the host's filesystem can hold: %w", units.Size(size), ErrInvalid)
	}
	return err
}

func createImage(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return tooBigForHost(size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Drive returns one drive.
func (s *Store) Drive(ctx context.Context, id string) (Drive, error) {
	d, err := s.scanDrive(s.queryRow(ctx, `SELECT `+driveColumns+` FROM drives WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Drive{}, fmt.Errorf("drive %s: %w", id, ErrNotFound)
	}
	return d, err
}

// txDrive reads drive id inside a write transaction; a missing row is
// ErrNotFound.
func (s *Store) txDrive(ctx context.Context, tx *sql.Tx, id string) (Drive, error) {
	d, err := s.scanDrive(tx.QueryRowContext(ctx, `SELECT `+driveColumns+` FROM drives WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Drive{}, fmt.Errorf("drive %s: %w", id, ErrNotFound)
	}
	return d, err
}

// Drives lists the drives of owner (all drives when owner is empty), oldest first.
func (s *Store) Drives(ctx context.Context, owner string) ([]Drive, error) {
	if owner == "" {
		return s.queryDrives(ctx, `SELECT `+driveColumns+` FROM drives ORDER BY rowid`)
	}
	return s.queryDrives(ctx, `SELECT `+driveColumns+` FROM drives WHERE owner = ? ORDER BY rowid`, owner)
}

// LibraryDrives lists the library ("standard") drives.
func (s *Store) LibraryDrives(ctx context.Context) ([]Drive, error) {
	return s.queryDrives(ctx, `SELECT `+driveColumns+` FROM drives WHERE library ORDER BY name, id`)
}

func (s *Store) queryDrives(ctx context.Context, q string, args ...any) ([]Drive, error) {
	return queryAll(ctx, s.db, "drives", q, s.scanDrive, args...)
}

// lockDrive takes drive id for a transfer (shared) or a change of its file
// (exclusive), waiting at most s.lockWait; see driveLocks.
func (s *Store) lockDrive(ctx context.Context, id string, exclusive bool) (func(), error) {
	return s.drives.acquire(ctx, id, exclusive, s.lockWait)
}

// UpdateDrive changes a drive's Name, Size and Props atomically (fn runs in
// the write transaction and must not call the Store). A drive being imaged is
// ErrBusy; so is resizing a drive that servers have claimed or that an
// imaging job is to copy. Transfers in flight finish first. A resize
// truncates the image file before the row commits; Open repairs a file whose
// length disagrees with its row.
func (s *Store) UpdateDrive(ctx context.Context, id string, fn func(*Drive) error) (Drive, error) {
	release, err := s.lockDrive(ctx, id, true)
	if err != nil {
		return Drive{}, err
	}
	defer release()
	var d Drive
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = s.txDrive(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.Imaging != "" {
			return imaging(d)
		}
		oldSize, oldName, oldProps := d.Size, d.Name, maps.Clone(d.Props)
		if err := fn(&d); err != nil {
			return err
		}
		if d.Size < 0 {
			return fmt.Errorf("drive size %d: %w", d.Size, ErrInvalid)
		}
		if d.Props == nil {
			d.Props = map[string]string{}
		}
		blob, err := json.Marshal(d.Props)
		if err != nil {
			return err
		}
		if d.Size != oldSize {
			if len(d.Claimed) > 0 {
				return inUse(ctx, tx, d, d.Owner)
			}
			if err := imagedFrom(ctx, tx, d); err != nil { // the job was sized against it
				return err
			}
			if err := checkLimits(ctx, tx, d.Owner, Amounts{LimitDrives: d.Size - oldSize}); err != nil {
				return err
			}
			if err := s.checkDiskRoom(ctx, tx, d.Size-oldSize); err != nil {
				return err
			}
			if err := os.Truncate(s.DrivePath(id), d.Size); err != nil {
				if isFull(err) {
					return errFull("drive " + id)
				}
				return fmt.Errorf("storage: resize drive %s: %w", id, tooBigForHost(d.Size, err))
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE drives SET name = ?, size = ?, props = ? WHERE id = ?`, d.Name, d.Size, blob, id); err != nil {
			return fmt.Errorf("storage: update drive: %w", err)
		}
		if d.Size == oldSize && d.Name == oldName && maps.Equal(oldProps, d.Props) {
			return nil
		}
		return s.event(ctx, tx, id, "drive.set", "drive changed, %d bytes", d.Size)
	})
	if err != nil {
		return Drive{}, err
	}
	return d, nil
}

// imagedFrom is ErrBusy when an imaging job queued or running is to copy
// drive d: its size and contents must stay what the job was started with.
func imagedFrom(ctx context.Context, tx *sql.Tx, d Drive) error {
	var target Drive
	err := tx.QueryRowContext(ctx, `SELECT id, name FROM drives WHERE imaging != '' AND imaging_source = ? LIMIT 1`, d.ID).Scan(&target.ID, &target.Name)
	switch {
	case err == nil:
		return fmt.Errorf("%s is being imaged into %s — try again when the copy has finished: %w", d.Label(), target.Label(), ErrBusy)
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return err
}

// DeleteDrive removes a drive: the row first, then the file (a crash between
// leaves an orphan file that the next Open removes). A drive being imaged,
// claimed by a server, or that an imaging job is to copy is ErrBusy;
// transfers in flight finish first.
func (s *Store) DeleteDrive(ctx context.Context, id string) error {
	release, err := s.lockDrive(ctx, id, true)
	if err != nil {
		return err
	}
	defer release()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		d, err := s.txDrive(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.Imaging != "" {
			return imaging(d)
		}
		if len(d.Claimed) > 0 {
			return inUse(ctx, tx, d, d.Owner)
		}
		if err := imagedFrom(ctx, tx, d); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM drives WHERE id = ?`, id); err != nil {
			return fmt.Errorf("storage: delete drive: %w", err)
		}
		return s.event(ctx, tx, id, "drive.destroy", "drive %q destroyed", d.Name)
	})
	if err != nil {
		return err
	}
	if err := os.Remove(s.DrivePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("removing a destroyed drive's image", "drive", id, "err", err)
	}
	return nil
}

// DriveReader reads a range of a drive's image. While it is open the drive
// cannot be resized, imaged or destroyed (those wait for it), so it yields
// exactly Size bytes. Close it.
type DriveReader struct {
	s       *Store
	ctx     context.Context
	id      string
	f       *os.File
	r       *io.SectionReader
	read    int64
	release func()
}

// OpenDrive opens up to n bytes from offset off of a drive's image: a range
// reaching past the end is cut at the end; an offset past the end is
// ErrTooLarge; a drive being imaged is ErrBusy.
func (s *Store) OpenDrive(ctx context.Context, id string, off, n int64) (*DriveReader, error) {
	release, err := s.lockDrive(ctx, id, false)
	if err != nil {
		return nil, err
	}
	d, err := s.Drive(ctx, id)
	if err == nil && d.Imaging != "" {
		err = imaging(d)
	}
	if err == nil && (off < 0 || n < 0 || off > d.Size) {
		err = fmt.Errorf("offset %d is past the end of %s (%d bytes): %w", off, d.Label(), d.Size, ErrTooLarge)
	}
	var f *os.File
	if err == nil {
		if f, err = os.Open(s.DrivePath(id)); err != nil {
			err = fmt.Errorf("storage: drive %s: %w", id, err)
		}
	}
	if err != nil {
		release()
		return nil, err
	}
	return &DriveReader{s: s, ctx: context.WithoutCancel(ctx), id: id, f: f,
		r: io.NewSectionReader(f, off, min(n, d.Size-off)), release: release}, nil
}

// Size is the number of bytes the reader yields.
func (r *DriveReader) Size() int64 { return r.r.Size() }

func (r *DriveReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.read += int64(n)
	return n, err
}

// Close releases the drive and counts the read (once; later calls do nothing).
func (r *DriveReader) Close() error {
	if r.release == nil {
		return nil
	}
	err := r.f.Close()
	r.release()
	r.release = nil
	r.s.count(r.ctx, r.id, "read", r.read)
	return err
}

// ReadDrive copies up to n bytes from offset off of a drive's image to w and
// returns how many it copied (see OpenDrive).
func (s *Store) ReadDrive(ctx context.Context, id string, off, n int64, w io.Writer) (int64, error) {
	r, err := s.OpenDrive(ctx, id, off, n)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(w, r)
}

// WriteDrive streams r into a drive's image from offset off and returns how
// many bytes it wrote. All-zero blocks become holes, so images stay sparse.
// Data reaching past the end of the drive is ErrTooLarge (what fits is
// written first: a caller that knows the length checks it up front). A drive
// being imaged or claimed by a server is ErrBusy.
func (s *Store) WriteDrive(ctx context.Context, id string, off int64, r io.Reader) (int64, error) {
	release, err := s.lockDrive(ctx, id, false)
	if err != nil {
		return 0, err
	}
	defer release()
	d, err := s.Drive(ctx, id)
	if err != nil {
		return 0, err
	}
	if d.Imaging != "" {
		return 0, imaging(d)
	}
	if len(d.Claimed) > 0 {
		return 0, inUse(ctx, s.db, d, d.Owner)
	}
	if off < 0 || off > d.Size {
		return 0, fmt.Errorf("offset %d is past the end of %s (%d bytes): %w", off, d.Label(), d.Size, ErrTooLarge)
	}
	f, err := os.OpenFile(s.DrivePath(id), os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("storage: drive %s: %w", id, err)
	}
	defer f.Close()
	hw := &holeWriter{f: f, off: off, punch: true}
	written, err := copyChunks(ctx, hw, io.LimitReader(r, d.Size-off))
	s.count(ctx, id, "write", written)
	if err != nil {
		if isFull(err) {
			return written, errFull("drive " + id)
		}
		return written, err
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return written, fmt.Errorf("the data is larger than %s (%s): %w", d.Label(), units.Size(d.Size), ErrTooLarge)
	}
	return written, nil
}

func (s *Store) count(ctx context.Context, id, what string, n int64) {
	q := `UPDATE drives SET read_bytes = read_bytes + ?, read_requests = read_requests + 1 WHERE id = ?`
	if what == "write" {
		q = `UPDATE drives SET write_bytes = write_bytes + ?, write_requests = write_requests + 1 WHERE id = ?`
	}
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), q, n, id); err != nil {
		s.log.Warn("drive counters not saved", "drive", id, "counters", what, "err", err)
	}
}

// chunkSize is the unit of streamed copies and of hole detection.
const chunkSize = 1 << 20

// copyChunks copies r to w in chunkSize pieces (each a full chunk except the
// last), checking ctx between them.
func copyChunks(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, chunkSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// holeWriter writes sequentially into f from off, turning all-zero chunks into
// holes: punched out when the region may hold old data (punch), skipped when
// the file was just emptied.
type holeWriter struct {
	f     *os.File
	off   int64
	punch bool
}

var zeroChunk = make([]byte, chunkSize)

func (h *holeWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		c := p[:min(len(p), chunkSize)]
		if bytes.Equal(c, zeroChunk[:len(c)]) {
			if h.punch {
				if err := unix.Fallocate(int(h.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, h.off, int64(len(c))); err != nil {
					// Filesystems without hole punching get the zeros written.
					if _, err := h.f.WriteAt(c, h.off); err != nil {
						return 0, err
					}
				}
			}
		} else if _, err := h.f.WriteAt(c, h.off); err != nil {
			return 0, err
		}
		h.off += int64(len(c))
		p = p[len(c):]
	}
	return n, nil
}

// Claim records that a running server holds the drives its configuration
// attaches (replacing its earlier claims). A drive being imaged, missing,
// exclusive and claimed by another server, or to be attached writable
// while another server's attachment writes it refuses the whole claim:
// ErrBusy (or ErrNotFound) naming the device and drive. A drive is thus
// written by at most one running server; read-only attachments
// (AttachedReadOnly) of a shared drive go beside it.
func (s *Store) Claim(ctx context.Context, server string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		srv, err := scanServer(tx.QueryRowContext(ctx, `SELECT `+serverColumns+` FROM servers WHERE id = ?`, server))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("server %s: %w", server, ErrNotFound)
		}
		if err != nil {
			return err
		}
		admin, err := s.isAdmin(ctx, tx, srv.Owner)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE server = ?`, server); err != nil {
			return err
		}
		for _, dev := range deviceKeys(srv.Config) {
			id := srv.Config[dev]
			d, err := s.scanDrive(tx.QueryRowContext(ctx, `SELECT `+driveColumns+` FROM drives WHERE id = ?`, id))
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%s: drive %s: %w", dev, id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if d.Imaging != "" {
				return fmt.Errorf("%s: %w", dev, imaging(d))
			}
			if d.Exclusive() && len(d.Claimed) > 0 {
				return inUseAs(ctx, tx, d, dev, srv.Owner)
			}
			readOnly := AttachedReadOnly(srv.Config, dev, d, srv.Owner, admin)
			writer, err := s.writer(ctx, tx, d)
			if err != nil {
				return err
			}
			if !readOnly && writer.ID != "" {
				who := "running server " + writer.Label()
				if writer.Owner != srv.Owner {
					who = "a running server of another user"
				}
				return fmt.Errorf("%s (%s) is already attached writable to %s — attach it with %s:media cdrom to only read it: %w",
					d.Label(), dev, who, dev, ErrBusy)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO claims (drive, server, device) VALUES (?, ?, ?)`, id, server, dev); err != nil {
				return fmt.Errorf("storage: claim: %w", err)
			}
		}
		return nil
	})
}

// writer is the server whose claim attaches drive d writable, the zero
// Server if none.
func (s *Store) writer(ctx context.Context, tx *sql.Tx, d Drive) (Server, error) {
	rows, err := tx.QueryContext(ctx, `SELECT server, device FROM claims WHERE drive = ?`, d.ID)
	if err != nil {
		return Server{}, fmt.Errorf("storage: claims of drive %s: %w", d.ID, err)
	}
	var claims [][2]string
	for rows.Next() {
		var c [2]string
		if err := rows.Scan(&c[0], &c[1]); err != nil {
			rows.Close()
			return Server{}, err
		}
		claims = append(claims, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Server{}, err
	}
	for _, c := range claims {
		srv, err := scanServer(tx.QueryRowContext(ctx, `SELECT `+serverColumns+` FROM servers WHERE id = ?`, c[0]))
		if err != nil {
			return Server{}, fmt.Errorf("storage: server %s claiming drive %s: %w", c[0], d.ID, err)
		}
		admin, err := s.isAdmin(ctx, tx, srv.Owner)
		if err != nil {
			return Server{}, err
		}
		if !AttachedReadOnly(srv.Config, c[1], d, srv.Owner, admin) {
			return srv, nil
		}
	}
	return Server{}, nil
}

// ReleaseClaims drops every claim of a server (idempotent).
func (s *Store) ReleaseClaims(ctx context.Context, server string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE server = ?`, server)
		return err
	})
}

// sweepDrives repairs what a crash can leave: image files without a row
// (removed), rows without a file (an empty sparse file is made), files whose
// length is not the row's size (truncated to it).
func (s *Store) sweepDrives(ctx context.Context) error {
	sizes := map[string]int64{}
	rows, err := s.db.QueryContext(ctx, `SELECT id, size FROM drives`)
	if err != nil {
		return fmt.Errorf("storage: sweep: %w", err)
	}
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return err
		}
		sizes[id] = size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "drives")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("storage: sweep: %w", err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".img")
		size, known := sizes[id]
		path := filepath.Join(dir, e.Name())
		if !ok || !known {
			s.log.Warn("removing an image file no drive owns", "file", e.Name())
			if err := os.Remove(path); err != nil {
				s.log.Error("repairing drive images", "err", err)
			}
			continue
		}
		seen[id] = true
		if info, err := e.Info(); err == nil && info.Size() != size {
			s.log.Warn("drive image has the wrong size: truncating it", "drive", id, "bytes", info.Size(), "size", size)
			if err := os.Truncate(path, size); err != nil {
				s.log.Error("repairing drive images", "err", err)
			}
		}
	}
	for id, size := range sizes {
		if !seen[id] {
			s.log.Warn("drive image file missing: making an empty one", "drive", id)
			if err := createImage(s.DrivePath(id), size); err != nil {
				s.log.Error("repairing drive images", "err", err)
			}
		}
	}
	return nil
}

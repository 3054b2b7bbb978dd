package storage

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"hearth/internal/units"
)

// Imaging conversions (the optional last element of /drives/D/image/SOURCE/CONV).
const (
	ConvertNone   = ""
	ConvertGunzip = "gunzip" // the source holds gzip data; a source that is not gzip is copied as it is
	ConvertGzip   = "gzip"   // compress the source into the target
)

// StartImaging queues an asynchronous copy of source into target and returns
// the target, now `imaging queued`. Until the job ends the target is busy
// (no read, write, set, resize, destroy, claim) and shows an imaging claim
// token, and the source cannot be resized, destroyed or imaged into.
// Whether the caller may read source is the caller's check.
func (s *Store) StartImaging(ctx context.Context, target, source, conversion string) (Drive, error) {
	switch conversion {
	case ConvertNone, ConvertGunzip, ConvertGzip:
	default:
		return Drive{}, fmt.Errorf("image conversion %q (want gunzip or gzip): %w", conversion, ErrInvalid)
	}
	if s.imager == nil {
		return Drive{}, fmt.Errorf("imaging is not running in this process: %w", ErrBusy)
	}
	if target == source {
		return Drive{}, fmt.Errorf("drive %s cannot be imaged from itself: %w", target, ErrInvalid)
	}
	// In id order, so that two calls imaging two drives from each other
	// cannot hold one lock each.
	first, firstAlone, second, secondAlone := target, true, source, false
	if source < target {
		first, firstAlone, second, secondAlone = source, false, target, true
	}
	release, err := s.lockDrive(ctx, first, firstAlone)
	if err != nil {
		return Drive{}, err
	}
	defer release()
	release2, err := s.lockDrive(ctx, second, secondAlone)
	if err != nil {
		return Drive{}, err
	}
	defer release2()
	return s.startImaging(ctx, target, source, conversion)
}

// CloneDrive makes a new drive d (see CreateDrive) and starts imaging source
// into it; a d.Size of 0 takes the source's size. The source is held
// meanwhile, so its size cannot change between the two.
func (s *Store) CloneDrive(ctx context.Context, source string, d Drive) (Drive, error) {
	if s.imager == nil {
		return Drive{}, fmt.Errorf("imaging is not running in this process: %w", ErrBusy)
	}
	release, err := s.lockDrive(ctx, source, false)
	if err != nil {
		return Drive{}, err
	}
	defer release()
	src, err := s.Drive(ctx, source)
	if errors.Is(err, ErrNotFound) {
		return Drive{}, fmt.Errorf("source drive %s: %w", source, ErrNotFound)
	}
	if err != nil {
		return Drive{}, err
	}
	switch {
	case src.Imaging != "":
		return Drive{}, imaging(src)
	case d.Size == 0:
		d.Size = src.Size
	case d.Size < src.Size:
		return Drive{}, fmt.Errorf("%s is smaller than %s (%s): %w", units.Size(d.Size), src.Label(), units.Size(src.Size), ErrInvalid)
	}
	created, err := s.CreateDrive(ctx, d)
	if err != nil {
		return Drive{}, err
	}
	// Nobody else knows the new drive's id yet: it needs no lock.
	out, err := s.startImaging(ctx, created.ID, source, ConvertNone)
	if err != nil {
		if derr := s.DeleteDrive(context.WithoutCancel(ctx), created.ID); derr != nil {
			s.log.Error("clone failed and its new drive could not be removed", "drive", created.ID, "err", derr)
		}
		return Drive{}, err
	}
	return out, nil
}

// startImaging does StartImaging's work once its caller holds target alone
// and source shared.
func (s *Store) startImaging(ctx context.Context, target, source, conversion string) (Drive, error) {
	var d Drive
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = s.txDrive(ctx, tx, target)
		if err != nil {
			return err
		}
		src, err := s.scanDrive(tx.QueryRowContext(ctx, `SELECT `+driveColumns+` FROM drives WHERE id = ?`, source))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("source drive %s: %w", source, ErrNotFound)
		}
		if err != nil {
			return err
		}
		switch {
		case d.Imaging != "":
			return imaging(d)
		case len(d.Claimed) > 0:
			return inUse(ctx, tx, d, d.Owner)
		case src.Imaging != "":
			return imaging(src)
		case conversion == ConvertNone && src.Size > d.Size:
			return fmt.Errorf("%s (%s) is smaller than %s (%s): %w", d.Label(), units.Size(d.Size), src.Label(), units.Size(src.Size), ErrInvalid)
		}
		if err := imagedFrom(ctx, tx, d); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE drives SET imaging = 'queued', imaging_source = ?, imaging_conversion = ? WHERE id = ?`,
			source, conversion, target); err != nil {
			return fmt.Errorf("storage: start imaging: %w", err)
		}
		return s.event(ctx, tx, target, "drive.image", "imaging from %s %s queued", source, conversion)
	})
	if err != nil {
		return Drive{}, err
	}
	d.Imaging = "queued"
	d.Claimed = append(d.Claimed, s.hostID+":imaging:"+d.ID)
	s.imager.push(target)
	return d, nil
}

// WaitImaging polls until a drive's imaging job has ended and returns the
// drive. Whether it succeeded is in the event log (kind drive.image).
func (s *Store) WaitImaging(ctx context.Context, id string) (Drive, error) {
	for {
		d, err := s.Drive(ctx, id)
		if err != nil || d.Imaging == "" {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resumeImaging queues again every job a previous process left unfinished.
func (s *Store) resumeImaging(ctx context.Context) error {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM drives WHERE imaging != '' ORDER BY rowid`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE drives SET imaging = 'queued' WHERE imaging != ''`)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: resume imaging: %w", err)
	}
	for _, id := range ids {
		s.log.Info("resuming interrupted imaging", "drive", id)
		s.imager.push(id)
	}
	return nil
}

// imager runs imaging jobs, at most `workers` at once, in queue order.
type imager struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	queue  []string
	wake   chan struct{}
	gate   func(context.Context, string) error // WithImagingGate
	wg     sync.WaitGroup
}

func newImager(s *Store, workers int, gate func(context.Context, string) error) *imager {
	workers = max(workers, 1)
	ctx, cancel := context.WithCancel(context.Background())
	im := &imager{s: s, ctx: ctx, cancel: cancel, wake: make(chan struct{}, workers), gate: gate}
	for range workers {
		im.wg.Add(1)
		go im.work()
	}
	return im
}

func (im *imager) push(id string) {
	im.mu.Lock()
	im.queue = append(im.queue, id)
	im.mu.Unlock()
	select {
	case im.wake <- struct{}{}:
	default:
	}
}

func (im *imager) pop() (string, bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if len(im.queue) == 0 {
		return "", false
	}
	id := im.queue[0]
	im.queue = im.queue[1:]
	return id, true
}

func (im *imager) work() {
	defer im.wg.Done()
	for {
		if id, ok := im.pop(); ok {
			im.run(id)
			continue
		}
		select {
		case <-im.ctx.Done():
			return
		case <-im.wake:
		}
	}
}

func (im *imager) close() {
	im.cancel()
	im.wg.Wait()
}

// run performs one job. An interrupted job (the store closing) is left marked
// so the next Open resumes it; a failed one is cleared with an event.
func (im *imager) run(id string) {
	s, ctx := im.s, im.ctx
	var source, conversion, imaging string
	var size int64
	err := s.db.QueryRowContext(ctx, `SELECT imaging, imaging_source, imaging_conversion, size FROM drives WHERE id = ?`, id).
		Scan(&imaging, &source, &conversion, &size)
	if err != nil || imaging == "" {
		if err != nil && ctx.Err() == nil {
			s.log.Error("imaging", "drive", id, "err", err)
		}
		return
	}
	p := &progress{s: s, id: id}
	p.set(ctx, 0, 1)
	if im.gate != nil {
		err = im.gate(ctx, id)
	}
	if err == nil {
		err = s.copySource(ctx, id, source, conversion, size, p)
	}
	if ctx.Err() != nil {
		return
	}
	if isFull(err) {
		err = errFull("drive " + id)
	}
	msg := fmt.Sprintf("imaged from %s %s", source, conversion)
	if err != nil {
		msg = fmt.Sprintf("imaging from %s %s failed: %v", source, conversion, err)
		s.log.Warn("imaging failed", "drive", id, "source", source, "conversion", conversion, "err", err)
	}
	err = s.tx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE drives SET imaging = '', imaging_source = '', imaging_conversion = '' WHERE id = ?`, id); err != nil {
			return err
		}
		return s.event(ctx, tx, id, "drive.image", "%s", msg)
	})
	if err != nil {
		s.log.Error("ending imaging", "drive", id, "err", err)
	}
}

// progress writes the `imaging NN%` value, at most a few times a second.
type progress struct {
	s    *Store
	id   string
	pct  int
	last time.Time
}

func (p *progress) set(ctx context.Context, done, total int64) {
	pct := 0
	if total > 0 {
		pct = int(min(done*100/total, 99))
	}
	if pct == p.pct && !p.last.IsZero() || time.Since(p.last) < 200*time.Millisecond && !p.last.IsZero() {
		return
	}
	p.pct, p.last = pct, time.Now()
	if _, err := p.s.db.ExecContext(ctx, `UPDATE drives SET imaging = ? WHERE id = ? AND imaging != ''`, fmt.Sprintf("%d%%", pct), p.id); err != nil && ctx.Err() == nil {
		p.s.log.Warn("imaging progress not saved", "drive", p.id, "err", err)
	}
}

// copySource runs copyImage holding the source drive shared, so that it is
// neither resized nor destroyed under the copy, and checks it again: since
// the job was queued it may have gone, started imaging itself, or grown.
func (s *Store) copySource(ctx context.Context, target, source, conversion string, size int64, p *progress) error {
	// Holders of the source alone are short (a resize, a destroy): waiting
	// for them is bounded by their own waits, so only the store closing ends this.
	release, err := s.drives.acquire(ctx, source, false, time.Duration(math.MaxInt64))
	if err != nil {
		return err
	}
	defer release()
	src, err := s.Drive(ctx, source)
	switch {
	case err != nil:
		return fmt.Errorf("source drive: %w", err)
	case src.Imaging != "":
		return imaging(src)
	case conversion == ConvertNone && src.Size > size:
		return fmt.Errorf("%s (%s) is larger than the drive (%s): %w", src.Label(), units.Size(src.Size), units.Size(size), ErrInvalid)
	}
	return s.copyImage(ctx, target, source, conversion, size, p)
}

// copyImage replaces the target's contents with the source's: the target is
// emptied (all holes) first, then the source's data is written, keeping holes.
func (s *Store) copyImage(ctx context.Context, target, source, conversion string, size int64, p *progress) error {
	src, err := os.Open(s.DrivePath(source))
	if err != nil {
		return fmt.Errorf("source drive %s: %w", source, err)
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(s.DrivePath(target), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := dst.Truncate(0); err != nil {
		return err
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	out := &holeWriter{f: dst, off: 0}
	total := info.Size()
	in := &countingReader{r: src, progress: func(n int64) { p.set(ctx, n, total) }}

	switch conversion {
	case ConvertGunzip:
		br := bufio.NewReaderSize(in, chunkSize)
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("source drive %s: %w", source, err)
			}
			if err := fill(ctx, out, zr, size, "inflated source"); err != nil {
				return err
			}
			return dst.Sync()
		}
		if total > size {
			return fmt.Errorf("source (%d bytes, not gzip) does not fit the drive (%d bytes)", total, size)
		}
		if _, err := copyChunks(ctx, out, br); err != nil {
			return err
		}
	case ConvertGzip:
		lw := &limitWriter{w: out, left: size}
		zw := gzip.NewWriter(lw)
		if _, err := copyChunks(ctx, zw, in); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if lw.over {
			return fmt.Errorf("compressed source does not fit the drive (%d bytes)", size)
		}
	default:
		if err := copyData(ctx, src, out, total, p); err != nil {
			return err
		}
	}
	return dst.Sync()
}

// fill copies r into w, failing when r holds more than size bytes.
func fill(ctx context.Context, w io.Writer, r io.Reader, size int64, what string) error {
	if _, err := copyChunks(ctx, w, io.LimitReader(r, size)); err != nil {
		return err
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return fmt.Errorf("%s is larger than the drive (%d bytes)", what, size)
	}
	return nil
}

// copyData copies the data regions of src (skipping its holes, found with
// SEEK_DATA/SEEK_HOLE) to the same offsets of w.
func copyData(ctx context.Context, src *os.File, w *holeWriter, total int64, p *progress) error {
	var off int64
	for off < total {
		start, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) { // only a hole is left
				return nil
			}
			start = off // no SEEK_DATA support: copy everything
		}
		end, err := unix.Seek(int(src.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			end = total
		}
		w.off = start
		if _, err := copyChunks(ctx, w, io.NewSectionReader(src, start, end-start)); err != nil {
			return err
		}
		p.set(ctx, end, total)
		off = end
	}
	return nil
}

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.progress(c.n)
	return n, err
}

// limitWriter passes at most left bytes on and notes when more came.
type limitWriter struct {
	w    io.Writer
	left int64
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		return 0, errors.New("output larger than the drive")
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

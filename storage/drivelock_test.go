package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkNoImagesOpen fails when this process still has a drive image of s open.
func checkNoImagesOpen(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.DrivePath("x"))
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir) {
			t.Errorf("file descriptor %s still open on %s", e.Name(), target)
		}
	}
}

// checkNoLocksLeft fails when a drive lock outlived its holders.
func checkNoLocksLeft(t *testing.T, s *Store) {
	t.Helper()
	s.drives.mu.Lock()
	defer s.drives.mu.Unlock()
	if n := len(s.drives.locks); n != 0 {
		t.Errorf("%d drive locks left after every holder finished", n)
	}
}

// A read promises its length up front (Content-Length): a shrink arriving
// while it streams must wait for it, not cut it short.
func TestReadHoldsDriveAgainstShrink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "d", Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteDrive(ctx, d.ID, 0, bytes.NewReader(bytes.Repeat([]byte{7}, 8<<20))); err != nil {
		t.Fatal(err)
	}

	r, err := s.OpenDrive(ctx, d.ID, 1<<20, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != 7<<20 {
		t.Fatalf("Size = %d, want %d (cut at the end)", r.Size(), 7<<20)
	}
	shrunk := make(chan error, 1)
	go func() {
		_, err := s.UpdateDrive(ctx, d.ID, func(d *Drive) error { d.Size = 2 << 20; return nil })
		shrunk <- err
	}()
	select {
	case err := <-shrunk:
		t.Fatalf("shrink finished while a read held the drive: %v", err)
	case <-time.After(100 * time.Millisecond): // the shrink has had its chance to cut the file
	}
	got, err := io.Copy(io.Discard, r)
	if err != nil || got != r.Size() {
		t.Errorf("read %d of the %d bytes promised, %v", got, r.Size(), err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if err := <-shrunk; err != nil {
		t.Fatalf("shrink after the read: %v", err)
	}
	if _, err := s.OpenDrive(ctx, d.ID, 3<<20, 1); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("read past the new end: %v", err)
	}
	if d, _ := s.Drive(ctx, d.ID); d.Counters.ReadBytes != 7<<20 || d.Counters.ReadRequests != 1 {
		t.Errorf("counters = %+v, want one read of %d bytes", d.Counters, 7<<20)
	}

	// A holder that stays too long makes the change busy, naming why.
	s.lockWait = 50 * time.Millisecond
	r, err = s.OpenDrive(ctx, d.ID, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateDrive(ctx, d.ID, func(d *Drive) error { d.Size = 1 << 20; return nil }); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "being read") {
		t.Errorf("resize under a long read: %v, want busy (being read)", err)
	}
	r.Close()
	r.Close() // a second Close does nothing
	if _, err := s.UpdateDrive(ctx, d.ID, func(d *Drive) error { d.Size = 1 << 20; return nil }); err != nil {
		t.Errorf("resize after the read: %v", err)
	}
	checkNoImagesOpen(t, s)
	checkNoLocksLeft(t, s)
}

// A drive being imaged is rewritten from its first byte: a read then is busy,
// and imaging cannot start under a read. The drive a job is to copy keeps its
// size and contents until the job has run.
func TestReadAndImaging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	src, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "src", Size: 32 << 20})
	s.WriteDrive(ctx, src.ID, 0, bytes.NewReader(bytes.Repeat([]byte{1}, 32<<20)))
	a, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "a", Size: 32 << 20})
	b, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "b", Size: 32 << 20})

	r, err := s.OpenDrive(ctx, b.ID, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s.lockWait = 50 * time.Millisecond
	if _, err := s.StartImaging(ctx, b.ID, src.ID, ""); !errors.Is(err, ErrBusy) {
		t.Errorf("imaging into a drive being read: %v, want busy", err)
	}
	r.Close()
	s.lockWait = defaultLockWait
	s.imager.close() // the jobs stay queued until a new imager resumes them
	for _, d := range []Drive{a, b} {
		if _, err := s.StartImaging(ctx, d.ID, src.ID, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.OpenDrive(ctx, b.ID, 0, 1); !errors.Is(err, ErrBusy) {
		t.Errorf("read of a drive being imaged: %v, want busy", err)
	}
	// The jobs were started against the source as it is now.
	if _, err := s.UpdateDrive(ctx, src.ID, func(d *Drive) error { d.Size = 64 << 20; return nil }); !errors.Is(err, ErrBusy) {
		t.Errorf("resize of a drive jobs are to copy: %v, want busy", err)
	}
	if err := s.DeleteDrive(ctx, src.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("destroy of a drive jobs are to copy: %v, want busy", err)
	}
	c, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "c", Size: 1 << 20})
	if _, err := s.StartImaging(ctx, src.ID, c.ID, ""); !errors.Is(err, ErrBusy) {
		t.Errorf("imaging into a drive jobs are to copy: %v, want busy", err)
	}
	s.imager = newImager(s, 1, nil)
	if err := s.resumeImaging(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Drive{a, b} {
		if _, err := s.WaitImaging(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	var got bytes.Buffer
	if _, err := s.ReadDrive(ctx, b.ID, 32<<20-4, 4, &got); err != nil || got.String() != "\x01\x01\x01\x01" {
		t.Errorf("imaged drive ends in %q, %v", got.String(), err)
	}
	checkNoImagesOpen(t, s)
	checkNoLocksLeft(t, s)
}

// A clone takes the source's size: a resize of the source meanwhile must not
// turn that into "smaller than the source".
func TestCloneAgainstSourceResize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	src, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "src", Size: 4 << 20})
	s.WriteDrive(ctx, src.ID, 0, bytes.NewReader(bytes.Repeat([]byte{'x'}, 1<<20)))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.UpdateDrive(ctx, src.ID, func(d *Drive) error { d.Size = int64(4+i%4) << 20; return nil })
			if err != nil && !errors.Is(err, ErrBusy) {
				t.Errorf("resize: %v", err)
			}
		}
	}()
	var clones []Drive
	for range 40 {
		c, err := s.CloneDrive(ctx, src.ID, Drive{Owner: u.ID, Name: "c"})
		if err != nil {
			t.Errorf("clone: %v", err)
			continue
		}
		clones = append(clones, c)
	}
	close(stop)
	wg.Wait()
	for _, c := range clones {
		c, err := s.WaitImaging(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := s.ReadDrive(ctx, c.ID, 0, 1<<20, &got); err != nil || !bytes.Equal(got.Bytes(), bytes.Repeat([]byte{'x'}, 1<<20)) {
			t.Errorf("clone %s (%d bytes) does not hold the source's data: %v", c.ID, c.Size, err)
		}
	}
	if _, err := s.CloneDrive(ctx, src.ID, Drive{Owner: u.ID, Name: "small", Size: 1 << 20}); !errors.Is(err, ErrInvalid) {
		t.Errorf("clone smaller than its source: %v, want invalid", err)
	}
	if n := len(clones) + 1; func() int { l, _ := s.Drives(ctx, u.ID); return len(l) }() != n {
		t.Errorf("want %d drives (source and clones, no leftover of the refused clone)", n)
	}
	checkNoImagesOpen(t, s)
	checkNoLocksLeft(t, s)
}

// A destroy among reads, writes and resizes waits for the transfers in
// flight and succeeds; the calls after it find the drive gone.
func TestDestroyAmongTransfers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	for range 5 {
		d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "d", Size: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{}, 6)
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					var err error
					switch w % 3 {
					case 0:
						_, err = s.WriteDrive(ctx, d.ID, 0, bytes.NewReader(bytes.Repeat([]byte{'w'}, 1<<20)))
					case 1:
						_, err = s.ReadDrive(ctx, d.ID, 0, 1<<20, io.Discard)
					case 2:
						_, err = s.UpdateDrive(ctx, d.ID, func(d *Drive) error { d.Size = int64(2+i%3) << 20; return nil })
					}
					if i == 0 {
						started <- struct{}{}
					}
					if errors.Is(err, ErrNotFound) {
						return
					}
					if err != nil {
						t.Errorf("call %d of worker %d: %v", i, w, err)
						return
					}
				}
			}()
		}
		for range 6 {
			<-started
		}
		if err := s.DeleteDrive(ctx, d.ID); err != nil {
			t.Errorf("destroy among transfers: %v", err)
		}
		wg.Wait()
		if _, err := os.Stat(s.DrivePath(d.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("image of the destroyed drive: %v", err)
		}
	}
	checkNoImagesOpen(t, s)
	checkNoLocksLeft(t, s)
}

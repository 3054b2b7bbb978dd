package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"hearth/web/eh"
)

// FuzzWriteDriveGzip sends arbitrary data, gzip-compressed or not (and raw
// bytes claiming to be gzip), to a drive's write path: it never panics, never
// grows or shrinks the drive, refuses with usage only, and what it
// acknowledged is on the drive.
func FuzzWriteDriveGzip(f *testing.F) {
	const size = 64 << 10
	f.Add(uint32(0), []byte("hello"), true, true)
	f.Add(uint32(size-2), []byte("past the end"), true, true)
	f.Add(uint32(4096), bytes.Repeat([]byte{0}, 8192), true, true)
	f.Add(uint32(0), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, false, true)
	f.Add(uint32(size+1), []byte("x"), false, false)
	ctx := context.Background()
	s, store := newService(f)
	owner, _, err := s.CreateUser(ctx, Caller{Admin: true}, "owner", true)
	if err != nil {
		f.Fatal(err)
	}
	d, err := s.CreateDrive(ctx, owner, eh.Props{"name": "fuzz", "size": "64K"})
	if err != nil {
		f.Fatal(err)
	}
	id := d["drive"]
	f.Fuzz(func(t *testing.T, offset uint32, data []byte, compress, claimGzip bool) {
		body := data
		if compress {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			body = b.Bytes()
		}
		err := s.WriteDrive(ctx, owner, id, int64(offset), bytes.NewReader(body), claimGzip)
		var e *eh.Error
		if err != nil && (!errors.As(err, &e) || e.Word != "usage") {
			t.Fatalf("write at %d (%d bytes, gzip %v/%v): %v, want nil or a usage error", offset, len(data), compress, claimGzip, err)
		}
		info, serr := os.Stat(store.DrivePath(id))
		if serr != nil || info.Size() != size {
			t.Fatalf("drive image after the write: %v, %v; want exactly %d bytes", info, serr, size)
		}
		if err != nil || compress != claimGzip {
			return
		}
		rd, err := s.OpenDrive(ctx, owner, id, int64(offset), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		if got, err := io.ReadAll(rd); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes at %d: %v, differs from what was acknowledged", len(got), offset, err)
		}
	})
}

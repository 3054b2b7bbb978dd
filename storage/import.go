package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"hearth/storage/rootfs"
)

// Upload is an image file received for import: it waits in a private
// temporary directory of the data volume (under RunDir, which
// rootfs.RemoveStale clears after a crash) until Remove.
type Upload struct {
	// Path is the file; Size its length in bytes.
	Path string
	Size int64

	once   sync.Once
	remove func() error
	err    error
}

// Remove deletes the upload; later calls do nothing.
func (u *Upload) Remove() error {
	u.once.Do(func() { u.err = u.remove() })
	return u.err
}

// ReceiveUpload streams r into a new Upload, never holding more than a
// buffer of it in memory. expected is the length the sender announced (-1:
// unknown): one larger than the data disk's free space is refused before a
// byte is read. A full disk is ErrFull; on any failure nothing is left
// behind. Errors reading r are returned as they are.
func (s *Store) ReceiveUpload(r io.Reader, expected int64) (*Upload, error) {
	if expected > 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(s.RunDir(), &st); err == nil {
			if free := int64(st.Bavail) * int64(st.Bsize); expected > free {
				return nil, fmt.Errorf("the file (%d bytes) is larger than the free space on the data disk (%d bytes): %w", expected, free, ErrFull)
			}
		}
	}
	dir, remove, err := rootfs.TempDir(s.RunDir())
	if err != nil {
		return nil, err
	}
	u := &Upload{Path: filepath.Join(dir, "upload"), remove: remove}
	if u.Size, err = writeUpload(u.Path, r); err != nil {
		u.Remove()
		if isFull(err) {
			return nil, errFull("upload")
		}
		return nil, err
	}
	return u, nil
}

func writeUpload(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	return n, errors.Join(err, f.Close())
}

// ImportImage imports the image file src (see rootfs.Import for the formats
// and opts) into a new library drive of owner named name, readable by
// everyone and shared by the servers that boot copies of it: what `hearth
// image import` and the dashboard's import publish.
func (s *Store) ImportImage(ctx context.Context, owner, name, src string, opts ...rootfs.Option) (Drive, rootfs.Result, error) {
	var res rootfs.Result
	opts = append([]rootfs.Option{rootfs.WithTempDir(s.RunDir())}, opts...)
	props := map[string]string{"readers": Everyone, "claim:type": "shared", "media": "disk"}
	d, err := s.CreateDriveFrom(ctx, Drive{Owner: owner, Name: name, Props: props, Library: true},
		func(path string) error {
			var err error
			res, err = rootfs.Import(ctx, src, path, opts...)
			return err
		})
	return d, res, err
}

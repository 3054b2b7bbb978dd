package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"hearth/internal/testguest"
	"hearth/storage/rootfs"
)

// TestImportUpload receives a tarball, publishes it as a library image and
// leaves nothing in the run directory.
func TestImportUpload(t *testing.T) {
	if _, err := os.Stat("/sbin/mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 (e2fsprogs) is not installed")
	}
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	admin := mustUser(t, s, "admin", true)
	tarball, err := os.Open(testguest.Tarball(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tarball.Close()
	up, err := s.ReceiveUpload(tarball, -1)
	if err != nil {
		t.Fatal(err)
	}
	d, res, err := s.ImportImage(ctx, admin.ID, "busybox", up.Path, rootfs.WithFormats(rootfs.FormatTar))
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Remove(); err != nil {
		t.Fatal(err)
	}
	if !d.Library || d.Props["readers"] != Everyone || d.Name != "busybox" || res.Format != rootfs.FormatTar || !res.HasInit {
		t.Errorf("drive %+v, result %+v: want a library image everyone reads, from a tarball with /sbin/init", d, res)
	}
	if left, _ := os.ReadDir(s.RunDir()); len(left) != 0 {
		t.Errorf("run directory holds %v after the import", left)
	}
}

// TestImportUploadFailures: an upload that cannot fit, one whose sender
// fails, and an import of the wrong format leave no file and no drive.
func TestImportUploadFailures(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	admin := mustUser(t, s, "admin", true)
	if _, err := s.ReceiveUpload(strings.NewReader("x"), 1<<62); !errors.Is(err, ErrFull) {
		t.Errorf("a file larger than the disk: %v, want ErrFull", err)
	}
	broken := io.MultiReader(strings.NewReader("some bytes"), errReader{io.ErrUnexpectedEOF})
	if _, err := s.ReceiveUpload(broken, -1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a sender cut off: %v, want its error", err)
	}
	up, err := s.ReceiveUpload(strings.NewReader("not an image at all"), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Remove()
	if _, _, err := s.ImportImage(ctx, admin.ID, "junk", up.Path); !errors.Is(err, rootfs.ErrUnknownFormat) {
		t.Errorf("import of text: %v, want ErrUnknownFormat", err)
	}
	up.Remove()
	if left, _ := os.ReadDir(s.RunDir()); len(left) != 0 {
		t.Errorf("run directory holds %v", left)
	}
	if drives, _ := s.Drives(ctx, admin.ID); len(drives) != 0 {
		t.Errorf("drives %v after failed imports", drives)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

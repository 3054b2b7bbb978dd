package containerd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLiveCopy: the throwaway copy a read-only boot drive boots from under
// Kata holds the drive's bytes, stays sparse, and writes to it never reach
// the drive.
func TestLiveCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "drive.img")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	data := bytes.Repeat([]byte("hearth!"), 1<<15)
	f.WriteAt(data, 64<<20)
	f.Close()

	path, err := liveCopy(context.Background(), src, filepath.Join(dir, "run", "guest"))
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "run", "guest", liveDirName, liveDiskName) {
		t.Errorf("copy at %s, want it in the guest's run directory", path)
	}
	cp, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	st, _ := cp.Stat()
	got := make([]byte, len(data))
	cp.ReadAt(got, 64<<20)
	if st.Size() != 256<<20 || !bytes.Equal(got, data) {
		t.Fatalf("copy of %d bytes, data intact %v; want the drive's size and bytes", st.Size(), bytes.Equal(got, data))
	}
	if blocks := st.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 4<<20 {
		t.Errorf("the copy of a drive holding 224 KiB takes %d bytes of disk: not sparse", blocks)
	}
	cp.WriteAt([]byte("written by the guest"), 0)
	orig, _ := os.ReadFile(src)
	if bytes.Contains(orig, []byte("written by the guest")) {
		t.Fatal("a write to the copy reached the drive")
	}
	if _, err := liveCopy(context.Background(), filepath.Join(dir, "missing.img"), filepath.Join(dir, "run", "other")); err == nil {
		t.Error("a copy of a missing drive succeeded")
	}
}

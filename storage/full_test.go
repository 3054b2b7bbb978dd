package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hearth/internal/logtest"
)

// TestDiskFull runs the store on a 4 MiB tmpfs: a write that does not fit,
// and database writes once the disk is full, are ErrFull without host paths,
// and what was acknowledged before reads back intact.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	os.MkdirAll(dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	ctx := context.Background()
	s, err := Open(dir, WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := mustUser(t, s, "alice", false)
	d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "big", Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1<<20)
	rand.Read(first)
	if _, err := s.WriteDrive(ctx, d.ID, 0, bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	more := make([]byte, 8<<20)
	rand.Read(more)
	_, err = s.WriteDrive(ctx, d.ID, 1<<20, bytes.NewReader(more))
	if !errors.Is(err, ErrFull) || strings.Contains(err.Error(), dir) {
		t.Fatalf("write beyond the disk: %v", err)
	}
	var back bytes.Buffer
	if _, err := s.ReadDrive(ctx, d.ID, 0, 1<<20, &back); err != nil || !bytes.Equal(back.Bytes(), first) {
		t.Fatalf("acknowledged data: %v", err)
	}
	// Fill what is left, then database writes fail as full.
	filler, _ := os.Create(filepath.Join(dir, "filler"))
	filler.Write(make([]byte, 8<<20))
	filler.Close()
	for i := range 2000 {
		_, _, err = s.CreateUser(ctx, fmt.Sprintf("user%d-%s", i, strings.Repeat("x", 40)), false)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || strings.Contains(err.Error(), dir) {
		t.Fatalf("database write on a full disk: %v", err)
	}
}

// TestDriveLargerThanTheHostFilesystemHolds: ext4 (4 KiB blocks) holds no
// file of 16 TiB; asking for one is bad input naming the size, not a 500
// with the image's host path.
func TestDriveLargerThanTheHostFilesystemHolds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an ext4 image needs root")
	}
	img, dir := filepath.Join(t.TempDir(), "ext4.img"), filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	for _, cmd := range [][]string{
		{"truncate", "-s", "64M", img},
		{"mkfs.ext4", "-q", "-b", "4096", img},
		{"mount", "-o", "loop", img, dir},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v: %v %s", cmd, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-d", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	s, err := Open(dir, WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := mustUser(t, s, "alice", false)
	_, err = s.CreateDrive(context.Background(), Drive{Owner: u.ID, Name: "huge", Size: 16 << 40})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "size") || strings.Contains(err.Error(), dir) {
		t.Fatalf("a 16 TiB drive on ext4: %v; want ErrInvalid naming the size and no host path", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "drives")); len(entries) != 0 {
		t.Fatalf("a refused drive left %d files", len(entries))
	}
}

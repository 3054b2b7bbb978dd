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

package rootfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkImage is a fresh filesystem image of kind fs holding a small tree.
func checkImage(t *testing.T, fs string) string {
	t.Helper()
	needTools(t)
	size := int64(128 * mib)
	if fs == FSXFS {
		size = 300 * mib // mkfs.xfs's least
	}
	return mkfsImage(t, fs, size, tree(t, true))
}

// TestCheckHealthy: a fresh filesystem of each kind passes, read-only or
// writable.
func TestCheckHealthy(t *testing.T) {
	for _, fs := range []string{FSExt4, FSXFS, FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			img := checkImage(t, fs)
			for _, ro := range []bool{true, false} {
				if err := Check(context.Background(), img, fs, ro); err != nil {
					t.Errorf("read-only %t: %v", ro, err)
				}
			}
		})
	}
}

// TestCheckDamaged: an ext4 whose directory entry points at a cleared inode
// is refused, read-only and writable, with ErrDamaged and a one-line reason
// that names neither the image's directory nor any host path; the check
// writes nothing to it.
func TestCheckDamaged(t *testing.T) {
	needTools(t)
	img := checkImage(t, FSExt4)
	if out, err := exec.Command("debugfs", "-w", "-R", "clri /etc", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	before, _ := os.ReadFile(img)
	for _, ro := range []bool{true, false} {
		err := Check(context.Background(), img, FSExt4, ro)
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("read-only %t: %v, want ErrDamaged", ro, err)
		}
		msg := err.Error()
		if strings.Contains(msg, filepath.Dir(img)) || strings.Contains(msg, "\n") || !strings.Contains(msg, "deleted/unused inode") {
			t.Errorf("read-only %t: reason %q: want one line naming the problem and no host path", ro, msg)
		}
	}
	if after, _ := os.ReadFile(img); string(after) != string(before) {
		t.Error("the check wrote to the damaged filesystem")
	}
}

// TestCheckNoFilesystem: what no checker recognises is damaged.
func TestCheckNoFilesystem(t *testing.T) {
	needTools(t)
	img := filepath.Join(t.TempDir(), "zero.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(context.Background(), img, FSExt4, true); !errors.Is(err, ErrDamaged) {
		t.Errorf("zeros: %v", err)
	}
}

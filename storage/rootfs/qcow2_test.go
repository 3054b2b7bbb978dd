package rootfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// toQcow2 converts the raw image raw to qcow2 with qemu-img.
func toQcow2(t *testing.T, raw string) string {
	t.Helper()
	needTool(t, "qemu-img", "qemu-utils")
	q := filepath.Join(t.TempDir(), "image") // no extension: found by content
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, q)
	return q
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(da, db)
}

func TestImportQcow2(t *testing.T) {
	needTools(t)
	t.Run("ext4", func(t *testing.T) {
		raw := mkfsImage(t, FSExt4, 24*mib, tree(t, true))
		res, img, err := importFile(t, toQcow2(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		if res.Format != FormatQcow2 || res.Content != FormatExt4 || res.Size != 24*mib || !res.HasInit {
			t.Errorf("result %+v, want a 24 MiB ext4 with init from qcow2", res)
		}
		// e2fsck has stamped its check: compare content.
		if got := debugfs(t, img, "cat /usr/lib/systemd/systemd"); got != "#!/bin/sh\n" {
			t.Errorf("init in the drive holds %q", got)
		}
	})
	t.Run("ext4 grown", func(t *testing.T) {
		raw := mkfsImage(t, FSExt4, 24*mib, tree(t, true))
		res, img, err := importFile(t, toQcow2(t, raw), WithSize(48*mib))
		if err != nil {
			t.Fatal(err)
		}
		if got := fsSize(t, img); res.Size != 48*mib || got != 48*mib {
			t.Errorf("drive of %d bytes holds %d bytes of filesystem, want 48 MiB both", res.Size, got)
		}
	})
	t.Run("partitioned disk", func(t *testing.T) {
		fs := mkfsImage(t, FSExt4, 16*mib, tree(t, true))
		raw := disk(t, "gpt", 32, part{mib: 4, typ: typeESP}, part{typ: typeRootHere, fs: fs})
		res, img, err := importFile(t, toQcow2(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		if res.Format != FormatQcow2 || res.Content != FormatDisk || res.Size != 32*mib {
			t.Errorf("result %+v, want the whole 32 MiB disk", res)
		}
		if !sameFile(t, raw, img) {
			t.Error("the drive is not the whole disk the qcow2 was made from")
		}
		if root := findRootOK(t, img); root.Partition != 2 {
			t.Errorf("imported disk's root: %+v", root)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		q := toQcow2(t, mkfsImage(t, FSExt4, 24*mib, tree(t, true)))
		data, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = importFile(t, writeFile(t, data[:len(data)/2]))
		oneLineNoPath(t, err, ErrInvalidImage, "qcow2 image: qemu-img check: ")
	})
	t.Run("header only", func(t *testing.T) {
		q := toQcow2(t, mkfsImage(t, FSExt4, 24*mib, tree(t, true)))
		data, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = importFile(t, writeFile(t, data[:64]))
		oneLineNoPath(t, err, ErrInvalidImage, "qcow2 header too short")
	})
	t.Run("backing file", func(t *testing.T) {
		needTool(t, "qemu-img", "qemu-utils")
		base := mkfsImage(t, FSExt4, 24*mib, tree(t, true))
		q := filepath.Join(t.TempDir(), "overlay")
		runTool(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", q)
		_, _, err := importFile(t, q)
		oneLineNoPath(t, err, ErrUnsupported, "backing file")
	})
	t.Run("blank", func(t *testing.T) {
		needTool(t, "qemu-img", "qemu-utils")
		q := filepath.Join(t.TempDir(), "blank")
		runTool(t, "qemu-img", "create", "-q", "-f", "qcow2", q, "16M")
		_, _, err := importFile(t, q)
		oneLineNoPath(t, err, ErrUnknownFormat, "holds no ext4, xfs or btrfs filesystem and no partition table")
	})
	t.Run("no qemu-img", func(t *testing.T) {
		q := toQcow2(t, mkfsImage(t, FSExt4, 24*mib, tree(t, true)))
		t.Setenv("PATH", t.TempDir())
		_, _, err := importFile(t, q)
		oneLineNoPath(t, err, ErrUnsupported, "qemu-utils")
	})
}

// oneLineNoPath checks that err wraps sentinel, says want, and is one line
// naming no directory.
func oneLineNoPath(t *testing.T, err, sentinel error, want string) {
	t.Helper()
	if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %v saying %q", err, sentinel, want)
	}
	if msg := err.Error(); strings.Contains(msg, "/") || strings.Contains(msg, "\n") {
		t.Errorf("err %q names a path or spans lines", msg)
	}
	t.Logf("error: %v", err)
}

// TestImportRawFilesystems imports bare xfs and btrfs images and a
// partitioned disk as they are.
func TestImportRawFilesystems(t *testing.T) {
	needTools(t)
	for _, fs := range []string{FSXFS, FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			raw := mkfsImage(t, fs, 320*mib, tree(t, true))
			res, img, err := importFile(t, raw, WithSize(400*mib))
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != Format(fs) || res.Content != Format(fs) || res.Size != 400*mib {
				t.Errorf("result %+v, want a 400 MiB %s", res, fs)
			}
			root := findRootOK(t, img)
			if root.FS != fs || root.FSSize != 320*mib || !root.CanGrow() {
				t.Errorf("root %+v, want a 320 MiB %s that can grow", root, fs)
			}
		})
	}
}

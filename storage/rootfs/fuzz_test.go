package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzDetect feeds arbitrary files to format detection and, for what it
// takes for a tar, to unpacking and image assembly. Whatever the input,
// errors carry a sentinel and nothing is written outside the trees.
func FuzzDetect(f *testing.F) {
	plain := tarBytes(f, dir("etc/"), file("etc/a", "a"), symlink("l", "/etc"), file("l/b", "b"))
	f.Add(plain)
	f.Add(gzipBytes(f, plain))
	f.Add(zstdBytes(f, plain))
	f.Add(tarBytes(f, file("../x", "x"), symlink("up", "../.."), file("up/y", "y")))
	f.Add(tarBytes(f, dir("d/"), file("d/.wh..wh..opq", ""), file(".wh.d", ""), entry{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}))
	f.Add(ociLayout(f, ociImage{layers: [][]byte{plain}}).tar(f))
	f.Add(dockerArchive(f, plain).tar(f))
	ext4 := make([]byte, 4096)
	ext4[ext4MagicOffset], ext4[ext4MagicOffset+1] = 0x53, 0xef
	f.Add(ext4)
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if declaresLargeFile(data) {
			t.Skip("declares a file over 1 MiB (a sparse or gzip bomb, slow to fuzz)")
		}
		parent := t.TempDir()
		src := filepath.Join(parent, "src")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		o := &options{log: slog.New(slog.DiscardHandler)}
		ctx := context.Background()
		k, err := detect(in)
		checkSentinel(t, "detect", err)
		if err == nil && k.format == FormatTar {
			tree := filepath.Join(parent, "tree")
			err := unpackFile(ctx, in, tree, o)
			checkSentinel(t, "unpack", err)
			if layout, _ := isImageLayout(tree); err == nil && layout {
				img, err := openImage(tree)
				checkSentinel(t, "open image", err)
				if err == nil {
					checkSentinel(t, "apply layers", applyLayers(ctx, img, filepath.Join(parent, "rootfs"), o))
					img.Close()
				}
			}
		}
		left, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range left {
			if !slices.Contains([]string{"src", "tree", "rootfs"}, e.Name()) {
				t.Errorf("%s written outside the trees", e.Name())
			}
		}
	})
}

// checkSentinel fails on errors that name no image problem. Refusals of the
// filesystem (a hard link to a missing file, a name under a regular file)
// are the archive's fault too, and say so with the entry's name.
func checkSentinel(t *testing.T, step string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, target := range []error{ErrUnknownFormat, ErrUnsupported, ErrInvalidImage, ErrUnsafePath, os.ErrNotExist, os.ErrExist} {
		if errors.Is(err, target) {
			return
		}
	}
	var pathErr *os.PathError
	var linkErr *os.LinkError
	if errors.As(err, &pathErr) || errors.As(err, &linkErr) {
		return
	}
	t.Errorf("%s: error with no sentinel: %v", step, err)
}

// declaresLargeFile reports a tar, plain or gzip, whose entries claim over
// 1 MiB, or a gzip stream that inflates beyond 4 MiB.
func declaresLargeFile(data []byte) bool {
	var r io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(data, compressions[0].magic) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return false
		}
		inflated, _ := io.ReadAll(io.LimitReader(zr, 4*mib+1))
		if len(inflated) > 4*mib {
			return true
		}
		r = bytes.NewReader(inflated)
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		if hdr.Size > mib {
			return true
		}
	}
}

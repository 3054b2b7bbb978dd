package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkImportTarball imports a generated 200 MiB root-filesystem tarball
// (about 2,000 files of 3–200 KiB of random data in 50 directories) and
// reports the throughput over the tarball's size. The tar+mkfs case does the
// same with GNU tar and mkfs.ext4 -d alone, as the yardstick on the same
// machine at the same moment.
func BenchmarkImportTarball(b *testing.B) {
	needTools(b)
	src, size := benchTarball(b, 200*mib)
	b.Run("import", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			dst := filepath.Join(b.TempDir(), "drive.img")
			if _, err := Import(context.Background(), src, dst); err != nil {
				b.Fatal(err)
			}
			os.Remove(dst)
		}
	})
	b.Run("tar+mkfs", func(b *testing.B) {
		if _, err := exec.LookPath("tar"); err != nil {
			b.Skipf("needs GNU tar: %v", err)
		}
		b.SetBytes(size)
		for b.Loop() {
			dir := b.TempDir()
			tree, img := filepath.Join(dir, "tree"), filepath.Join(dir, "drive.img")
			if err := os.Mkdir(tree, 0o755); err != nil {
				b.Fatal(err)
			}
			if out, err := exec.Command("tar", "-xf", src, "-C", tree).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v: %s", err, out)
			}
			f, err := os.Create(img)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Truncate(size + size/4 + headroomFixed); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, img).CombinedOutput(); err != nil {
				b.Fatalf("mkfs.ext4: %v: %s", err, out)
			}
			os.RemoveAll(dir)
		}
	})
}

func benchTarball(b *testing.B, total int64) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.tar")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.NewChaCha8([32]byte{42})
	buf := make([]byte, 200<<10)
	var written int64
	for i := 0; written < total; i++ {
		if i%50 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%02d/", i/50), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				b.Fatal(err)
			}
		}
		n := int64(i%64+1) * 3200
		rng.Read(buf[:n])
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%02d/f%05d", i/50, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: n}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(buf[:n]); err != nil {
			b.Fatal(err)
		}
		written += n
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	info, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return path, info.Size()
}

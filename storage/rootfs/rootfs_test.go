package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"hearth/internal/testguest"
)

func TestImportBusyboxTarball(t *testing.T) {
	needTools(t)
	plain := testguest.Tarball(t)
	data, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, compression string
	}{
		{"plain", plain, ""},
		{"gzip", writeFile(t, gzipBytes(t, data)), "gzip"},
		{"zstd", writeFile(t, zstdBytes(t, data)), "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, img, err := importFile(t, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != FormatTar || res.Compression != tc.compression || !res.HasInit || res.Layers != 1 {
				t.Errorf("result %+v, want a tar (%q) with /sbin/init and 1 layer", res, tc.compression)
			}
			info, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() != res.Size || res.Size%mib != 0 || res.Size < headroomFixed {
				t.Errorf("image is %d bytes, result says %d; want a whole number of MiB above the headroom", info.Size(), res.Size)
			}
			if allocated := info.Sys().(*syscall.Stat_t).Blocks * 512; allocated >= res.Size/2 {
				t.Errorf("image allocates %d of %d bytes: not sparse", allocated, res.Size)
			}
			bin := lsImage(t, img, "/bin")
			if e, ok := bin["busybox"]; !ok || e.mode != 0o100755 {
				t.Errorf("/bin/busybox = %+v (present %v), want a 0755 file", e, ok)
			}
			if e := lsImage(t, img, "/sbin")["init"]; e.mode&0o170000 != 0o120000 {
				t.Errorf("/sbin/init mode %o, want a symbolic link", e.mode)
			}
			if got := debugfs(t, img, "cat /etc/inittab"); got != testguest.InitTab {
				t.Errorf("/etc/inittab = %q", got)
			}
			if e := lsImage(t, img, "/")["tmp"]; e.mode != 0o40755 {
				t.Errorf("/tmp mode %o, want 40755", e.mode)
			}
			if out := debugfs(t, img, "stat /"); !strings.Contains(out, "Mode:  0755") {
				t.Errorf("root directory is not 0755:\n%s", out)
			}
		})
	}
}

// A sparse file (Debian's lastlog can claim hundreds of GiB) takes no room in
// the tree nor in the image, and does not inflate the default size.
func TestImportSparseFile(t *testing.T) {
	needTools(t)
	const size = 256 * mib
	src := writeFile(t, gzipBytes(t, tarBytes(t, file("var/log/lastlog", string(make([]byte, size))), file("etc/hostname", "guest\n"))))
	res, img, err := importFile(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != headroomFixed+mib {
		t.Errorf("default size %d, want %d: the zeros were counted", res.Size, headroomFixed+mib)
	}
	if e := lsImage(t, img, "/var/log")["lastlog"]; e.size != strconv.Itoa(size) {
		t.Errorf("lastlog is %s bytes in the image, want %d", e.size, size)
	}
}

func TestImportWithoutInit(t *testing.T) {
	needTools(t)
	res, _, err := importFile(t, testguest.Tarball(t, testguest.WithoutInit()))
	if err != nil {
		t.Fatal(err)
	}
	if res.HasInit {
		t.Error("HasInit is true for a tree without /sbin/init")
	}
}

// Two layers exercising what an image can do: whiteouts, an opaque
// directory, a directory symlink followed by a later layer, owners, set-id
// bits, hard links, device nodes and extended attributes.
func layeredImage(t testing.TB) [][]byte {
	setuid := file("usr/bin/su", "su")
	setuid.mode, setuid.uid, setuid.gid = 0o4755, 0, 0
	owned := file("home/user/.profile", "profile")
	owned.uid, owned.gid, owned.mode = 1000, 1001, 0o600
	attr := file("etc/attr", "x")
	attr.xattrs = map[string]string{"user.hearth": "yes"}
	null := entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3}
	fifo := entry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600}
	hard := entry{name: "usr/bin/su2", typ: tar.TypeLink, link: "usr/bin/su"}
	lower := tarBytes(t,
		dir("etc/"), file("etc/keep", "keep"), file("etc/gone", "gone"),
		dir("opq/"), file("opq/old", "old"), dir("opq/sub/"), file("opq/sub/deep", "deep"),
		dir("usr/"), dir("usr/lib/"), file("usr/lib/a", "a"), symlink("lib", "/usr/lib"),
		dir("usr/bin/"), setuid, hard, dir("home/user/"), owned, attr, dir("dev/"), null, dir("run/"), fifo,
		dir("sbin/"), file("sbin/init", "#!/bin/sh\n"),
	)
	lower = setMode(t, lower, "sbin/init", 0o755)
	upper := tarBytes(t,
		file("etc/.wh.gone", ""),
		dir("opq/"), file("opq/.wh..wh..opq", ""), file("opq/new", "new"), dir("opq/sub/"), file("opq/sub/fresh", "fresh"),
		file("lib/b", "b"),
	)
	return [][]byte{lower, upper}
}

// setMode rewrites the mode of one entry of a tar.
func setMode(t testing.TB, archive []byte, name string, mode int64) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(archive)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Name == name {
			hdr.Mode = mode
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(mustRead(t, tr)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return out.Bytes()
}

func mustRead(t testing.TB, r *tar.Reader) []byte {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkLayered(t *testing.T, img string) {
	t.Helper()
	if got := names(lsImage(t, img, "/etc")); got != "attr keep" {
		t.Errorf("/etc holds %q, want the whiteout to remove gone: attr keep", got)
	}
	if got := names(lsImage(t, img, "/opq")); got != "new sub" {
		t.Errorf("opaque /opq holds %q, want: new sub", got)
	}
	if got := names(lsImage(t, img, "/opq/sub")); got != "fresh" {
		t.Errorf("/opq/sub holds %q, want the lower layer's deep gone: fresh", got)
	}
	if got := names(lsImage(t, img, "/usr/lib")); got != "a b" {
		t.Errorf("/usr/lib holds %q, want b written through the lib symlink: a b", got)
	}
	bin := lsImage(t, img, "/usr/bin")
	if bin["su"].mode != 0o104755 {
		t.Errorf("/usr/bin/su mode %o, want 104755", bin["su"].mode)
	}
	if out := debugfs(t, img, "stat /usr/bin/su"); !strings.Contains(out, "Links: 2") {
		t.Errorf("su is not hard linked to su2:\n%s", out)
	}
	if e := lsImage(t, img, "/home/user")[".profile"]; e.uid != 1000 || e.gid != 1001 || e.mode != 0o100600 {
		t.Errorf(".profile = %+v, want owner 1000:1001, mode 100600", e)
	}
	if out := debugfs(t, img, "stat /dev/null"); !strings.Contains(out, "character special") || !strings.Contains(out, "01:03") {
		t.Errorf("/dev/null is not the character device 1:3:\n%s", out)
	}
	if e := lsImage(t, img, "/run")["fifo"]; e.mode != 0o10600 {
		t.Errorf("/run/fifo mode %o, want a 0600 FIFO", e.mode)
	}
	if out := debugfs(t, img, "ea_get /etc/attr user.hearth"); !strings.Contains(out, "yes") {
		t.Errorf("extended attribute user.hearth lost: %q", out)
	}
	if out := debugfs(t, img, "stat /etc/keep"); !strings.Contains(out, "2024") {
		t.Errorf("modification time not kept:\n%s", out)
	}
}

func TestImportOCI(t *testing.T) {
	needTools(t)
	layers := layeredImage(t)
	gzipped := [][]byte{gzipBytes(t, layers[0]), gzipBytes(t, layers[1])}
	other := ociImage{platform: &v1.Platform{OS: "linux", Architecture: "riscv64"}, layers: [][]byte{tarBytes(t, file("wrong", "platform"))}}
	here := &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	for _, tc := range []struct {
		name   string
		layout files
	}{
		{"single", ociLayout(t, ociImage{layers: layers})},
		{"gzip layers", ociLayout(t, ociImage{layers: gzipped, mediaType: v1.MediaTypeImageLayerGzip})},
		{"zstd layers", ociLayout(t, ociImage{layers: [][]byte{zstdBytes(t, layers[0]), zstdBytes(t, layers[1])}, mediaType: v1.MediaTypeImageLayerZstd})},
		{"multi-platform", ociLayout(t, other, ociImage{platform: here, layers: layers})},
	} {
		t.Run(tc.name+" directory", func(t *testing.T) {
			res, img, err := importFile(t, tc.layout.writeDir(t, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != FormatOCI || res.Layers != 2 || !res.HasInit || res.Compression != "" {
				t.Errorf("result %+v, want an OCI image of 2 layers with /sbin/init", res)
			}
			checkLayered(t, img)
		})
		t.Run(tc.name+" tar.gz", func(t *testing.T) {
			res, img, err := importFile(t, writeFile(t, gzipBytes(t, tc.layout.tar(t))))
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != FormatOCI || res.Compression != "gzip" {
				t.Errorf("result %+v, want a gzip-compressed OCI layout", res)
			}
			checkLayered(t, img)
		})
	}
}

func TestImportDockerArchive(t *testing.T) {
	needTools(t)
	archive := dockerArchive(t, layeredImage(t)...)
	res, img, err := importFile(t, writeFile(t, archive.tar(t)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatDockerArchive || res.Layers != 2 || !res.HasInit {
		t.Errorf("result %+v, want a docker archive of 2 layers with /sbin/init", res)
	}
	checkLayered(t, img)
}

func TestImportImageErrors(t *testing.T) {
	needTools(t)
	layer := tarBytes(t, file("a", "a"))
	badDigest := ociLayout(t, ociImage{layers: [][]byte{layer}})
	for name, data := range badDigest {
		if strings.HasPrefix(name, "blobs/") && bytes.Equal(data, layer) {
			badDigest[name] = tarBytes(t, file("a", "tampered"))
		}
	}
	badDiffID := dockerArchive(t, layer)
	badDiffID["0abc/layer.tar"] = tarBytes(t, file("a", "tampered"))
	missing := sha256Of([]byte("not in the layout"))
	brokenZstd := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, layer...)
	twoImages := dockerArchive(t, layer)
	twoImages["manifest.json"] = []byte(`[{"Config":"cfg.json","RepoTags":["a:1"],"Layers":[]},{"Config":"cfg.json","RepoTags":["b:2"],"Layers":[]}]`)
	for _, tc := range []struct {
		name   string
		layout files
		want   error
		detail string
	}{
		{"digest mismatch", badDigest, ErrInvalidImage, "does not match digest sha256:"},
		{"diff_id mismatch", badDiffID, ErrInvalidImage, "uncompressed layer"},
		{"encrypted layer", ociLayout(t, ociImage{layers: [][]byte{layer}, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"}), ErrUnsupported, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"},
		{"broken zstd layer", ociLayout(t, ociImage{layers: [][]byte{brokenZstd}, mediaType: v1.MediaTypeImageLayerZstd}), ErrInvalidImage, "zstd"},
		{"xz layer", ociLayout(t, ociImage{layers: [][]byte{append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, layer...)}}), ErrUnsupported, "xz-compressed"},
		{"wrong platform", ociLayout(t, ociImage{platform: &v1.Platform{OS: "linux", Architecture: "s390x"}, layers: [][]byte{layer}}), ErrUnsupported, "linux/s390x"},
		{"two docker images", twoImages, ErrUnsupported, "a:1, b:2"},
		{"missing blob", files{"oci-layout": []byte(`{}`), "index.json": []byte(`{"manifests":[{"digest":"` + missing + `"}]}`)}, ErrInvalidImage, "blobs/sha256/" + strings.TrimPrefix(missing, "sha256:")},
		{"escaping digest", files{"oci-layout": []byte(`{}`), "index.json": []byte(`{"manifests":[{"digest":"sha256:../../etc"}]}`)}, ErrInvalidImage, "sha256:../../etc"},
		{"broken index", files{"oci-layout": []byte(`{}`), "index.json": []byte(`{`)}, ErrInvalidImage, "index.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := importFile(t, writeFile(t, tc.layout.tar(t)))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.detail)
			}
		})
	}
}

func TestImportRawExt4(t *testing.T) {
	needTools(t)
	const size = 32 * mib
	src := testguest.Image(t, size)
	res, img, err := importFile(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatExt4 || res.Size != size || !res.HasInit || res.Layers != 0 {
		t.Errorf("result %+v, want ext4 of %d bytes with /sbin/init", res, size)
	}
	info, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if allocated := info.Sys().(*syscall.Stat_t).Blocks * 512; allocated >= size/2 {
		t.Errorf("copy allocates %d of %d bytes: not sparse", allocated, size)
	}
	if _, ok := lsImage(t, img, "/bin")["busybox"]; !ok {
		t.Error("/bin/busybox missing from the copy")
	}

	t.Run("gzip", func(t *testing.T) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		res, img, err := importFile(t, writeFile(t, gzipBytes(t, data)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Format != FormatExt4 || res.Compression != "gzip" || res.Size != size || !res.HasInit {
			t.Errorf("result %+v, want gzip-compressed ext4 of %d bytes with /sbin/init", res, size)
		}
		info, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		if allocated := info.Sys().(*syscall.Stat_t).Blocks * 512; allocated >= size/2 {
			t.Errorf("copy allocates %d of %d bytes: not sparse", allocated, size)
		}
		if got := debugfs(t, img, "cat /etc/inittab"); got != testguest.InitTab {
			t.Errorf("/etc/inittab = %q", got)
		}
	})
	t.Run("grown", func(t *testing.T) {
		res, img, err := importFile(t, src, WithSize(64*mib))
		if err != nil {
			t.Fatal(err)
		}
		if got := fsSize(t, img); res.Size != 64*mib || got != 64*mib {
			t.Errorf("image of %d bytes holds a filesystem of %d bytes, want both 64 MiB", res.Size, got)
		}
	})
	t.Run("shrink refused", func(t *testing.T) {
		_, _, err := importFile(t, src, WithSize(16*mib))
		if !errors.Is(err, ErrTooSmall) {
			t.Errorf("err = %v, want ErrTooSmall", err)
		}
	})
}

// fsSize reads the size of the filesystem in img from its superblock.
func fsSize(t *testing.T, img string) int64 {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		key, value, _ := strings.Cut(line, ":")
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err == nil {
			fields[key] = n
		}
	}
	return fields["Block count"] * fields["Block size"]
}

func TestImportPartitionedDisk(t *testing.T) {
	needTools(t)
	disk := make([]byte, 4*mib)
	disk[446+4] = 0x83                 // one Linux partition
	copy(disk[446+12:], []byte{0, 8})  // of 2048 sectors
	disk[510], disk[511] = 0x55, 0xaa  // MBR signature
	copy(disk[mib:], "partition data") // something to copy
	res, img, err := importFile(t, writeFile(t, disk))
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatDisk || res.HasInit || res.Size != 4*mib {
		t.Errorf("result %+v, want a 4 MiB disk without init", res)
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, disk) {
		t.Error("disk image not copied byte for byte")
	}
}

func TestImportHostileTar(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name    string
		entries []entry
		want    error
		check   func(t *testing.T, img string)
	}{
		{name: "dot-dot", entries: []entry{file("../etc/x", "x")}, want: ErrUnsafePath},
		{name: "dot-dot inside", entries: []entry{file("a/../../x", "x")}, want: ErrUnsafePath},
		{name: "hard link out", entries: []entry{{name: "x", typ: tar.TypeLink, link: "../../../etc/passwd"}}, want: ErrUnsafePath},
		{name: "hard link to a host file", entries: []entry{{name: "x", typ: tar.TypeLink, link: "/etc/passwd"}}, want: os.ErrNotExist},
		{
			name:    "absolute name",
			entries: []entry{file("/abs", "abs")},
			check: func(t *testing.T, img string) {
				if got := debugfs(t, img, "cat /abs"); got != "abs" {
					t.Errorf("/abs = %q, want it inside the image", got)
				}
			},
		},
		{
			name: "symlink escape",
			entries: []entry{
				dir("a/b/"), symlink("a/b/up", "../../../../.."), symlink("a/b/abs", "/"), dir("etc/"),
				file("a/b/up/etc/x", "through up"), file("a/b/abs/etc/y", "through abs"),
			},
			check: func(t *testing.T, img string) {
				if got := names(lsImage(t, img, "/etc")); got != "x y" {
					t.Errorf("/etc holds %q, want both writes kept inside the image: x y", got)
				}
			},
		},
		{
			name:    "symlink loop",
			entries: []entry{symlink("a", "b"), symlink("b", "a"), file("a/x", "x")},
			want:    ErrInvalidImage,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			src := filepath.Join(parent, "hostile.tar")
			if err := os.WriteFile(src, tarBytes(t, tc.entries...), 0o644); err != nil {
				t.Fatal(err)
			}
			_, img, err := importFile(t, src)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, img)
			}
			left, _ := os.ReadDir(parent)
			if len(left) != 1 {
				t.Errorf("the archive's directory holds %d entries, want only the archive", len(left))
			}
		})
	}
}

func TestImportGarbage(t *testing.T) {
	needTools(t)
	noise := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	fakeExt4 := append([]byte(nil), noise...)
	fakeExt4[ext4MagicOffset], fakeExt4[ext4MagicOffset+1] = 0x53, 0xef
	for _, tc := range []struct {
		name   string
		data   []byte
		want   error
		detail string
	}{
		{"random", noise, ErrUnknownFormat, "not a tar archive"},
		{"empty", nil, ErrUnknownFormat, "empty file"},
		{"zeros", make([]byte, 8192), ErrUnknownFormat, "empty archive"},
		{"text", []byte("hello, this is not an image\n"), ErrUnknownFormat, "not a tar"},
		{"zstd of noise", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, noise...), ErrInvalidImage, "zstd"},
		{"zstd of text", zstdBytes(t, []byte("not an image")), ErrUnknownFormat, "zstd-compressed file"},
		{"xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, noise...), ErrUnsupported, "xz"},
		{"ext4 magic on garbage", fakeExt4, ErrInvalidImage, "e2fsck cannot repair"},
		{"gzip of noise", gzipBytes(t, noise), ErrUnknownFormat, "gzip-compressed file"},
		{"truncated gzip", gzipBytes(t, tarBytes(t, file("a", string(noise))))[:2000], ErrInvalidImage, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := importFile(t, writeFile(t, tc.data))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.detail)
			}
		})
	}
	t.Run("plain directory", func(t *testing.T) {
		_, _, err := importFile(t, t.TempDir())
		if !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("err = %v, want ErrUnknownFormat", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := importFile(t, filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}

func TestImportTooSmall(t *testing.T) {
	needTools(t)
	src := testguest.Tarball(t)
	// Below the content's size Import refuses at once; just above it,
	// mkfs.ext4 finds no room for its own metadata.
	u, err := measure(context.Background(), testguest.Tree(t))
	if err != nil {
		t.Fatal(err)
	}
	floor := u.bytes + (u.inodes+u.inodes/4+64)*inodeSize
	for _, size := range []int64{1 * mib, floor} {
		_, _, err := importFile(t, src, WithSize(size))
		if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "MiB by default") {
			t.Errorf("size %d: err = %v, want ErrTooSmall with the default size", size, err)
		}
	}
	res, _, err := importFile(t, src, WithSize(20*mib+12345))
	if err != nil || res.Size != 20*mib+12345 {
		t.Errorf("size 20 MiB+12345: %+v, %v; want exactly that size", res, err)
	}
}

func TestImportExistingDestination(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "drive.img")
	if err := os.WriteFile(dst, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(context.Background(), writeFile(t, tarBytes(t, file("a", "a"))), dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("err = %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "keep" {
		t.Errorf("existing destination changed to %q", got)
	}
}

func TestImportCancelled(t *testing.T) {
	needTools(t)
	src := testguest.Tarball(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := importCtx(ctx, t, src); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	// Cancelled while mkfs.ext4 runs: the logger sees the mkfs line first.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	cancelAtMkfs := writerFunc(func(line []byte) (int, error) {
		if bytes.Contains(line, []byte("msg=mkfs.ext4")) {
			cancel()
		}
		return len(line), nil
	})
	if _, _, err := importCtx(ctx, t, src, WithLogger(slog.New(slog.NewTextHandler(cancelAtMkfs, nil)))); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{tempPrefix + "dead/tree/etc", tempPrefix + "live", "keep"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	live, err := os.Open(filepath.Join(dir, tempPrefix+"live"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := unix.Flock(int(live.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	var got []string
	for _, e := range left {
		got = append(got, e.Name())
	}
	if want := []string{tempPrefix + "live", "keep"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	if err := RemoveStale(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing directory: %v", err)
	}
}

// TestImportMounts loop-mounts an imported image read-only, as a guest's root
// is mounted, and checks that no loop device is left.
func TestImportMounts(t *testing.T) {
	needTools(t)
	if os.Geteuid() != 0 {
		t.Skip("loop-mounting needs root")
	}
	_, img, err := importFile(t, writeFile(t, dockerArchive(t, layeredImage(t)...).tar(t)))
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	got, rerr := os.ReadFile(filepath.Join(mnt, "usr/lib/b"))
	entries, derr := os.ReadDir(filepath.Join(mnt, "opq"))
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if rerr != nil || string(got) != "b" || derr != nil || len(entries) != 2 {
		t.Errorf("mounted image: usr/lib/b = %q (%v), opq has %d entries (%v)", got, rerr, len(entries), derr)
	}
	assertNoLoop(t, img)
}

// assertNoLoop checks that no loop device is left on img.
func assertNoLoop(t *testing.T, img string) {
	t.Helper()
	path, _ := filepath.EvalSymlinks(img)
	for _, l := range testguest.LoopDevicesLeft(func(backing string) bool { return backing == path }) {
		t.Errorf("loop device left: %s", l)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestImportProgress follows the reading of a gzip tarball, of a raw ext4
// image and of a qcow2 image (qemu-img's own progress): done grows, never
// past the file's size, and reaches it.
func TestImportProgress(t *testing.T) {
	needTools(t)
	data, err := os.ReadFile(testguest.Tarball(t))
	if err != nil {
		t.Fatal(err)
	}
	tarball := writeFile(t, gzipBytes(t, data))
	_, ext4, err := importFile(t, tarball)
	if err != nil {
		t.Fatal(err)
	}
	qcow2 := toQcow2(t, ext4)
	for name, src := range map[string]string{"tarball": tarball, "ext4": ext4, "qcow2": qcow2} {
		t.Run(name, func(t *testing.T) {
			info, err := os.Stat(src)
			if err != nil {
				t.Fatal(err)
			}
			var last int64
			var calls, between int
			_, _, err = importFile(t, src, WithProgress(func(done, total int64) {
				calls++
				if done > 0 && done < total {
					between++
				}
				if total != info.Size() || done < last || done > total {
					t.Errorf("progress %d of %d after %d; the file is %d bytes", done, total, last, info.Size())
				}
				last = done
			}))
			if err != nil {
				t.Fatal(err)
			}
			if last != info.Size() || calls < 2 || between == 0 {
				t.Errorf("progress ended at %d of %d bytes after %d reports, %d of them on the way", last, info.Size(), calls, between)
			}
		})
	}
}

// TestTempDir: a temporary directory is kept from RemoveStale while it is
// held and goes with its contents on remove.
func TestTempDir(t *testing.T) {
	dir := t.TempDir()
	path, remove, err := TempDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "upload"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(path, "upload")); err != nil {
		t.Errorf("RemoveStale removed a held directory: %v", err)
	}
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left %v after remove", left)
	}
}

// TestImportFormats: WithFormats lets the formats named through and refuses
// the others, naming what the file is.
func TestImportFormats(t *testing.T) {
	needTools(t)
	tarball := writeFile(t, tarBytes(t, dir("etc"), file("etc/hostname", "x\n")))
	_, ext4, err := importFile(t, tarball)
	if err != nil {
		t.Fatal(err)
	}
	oci := writeFile(t, ociLayout(t, ociImage{layers: layeredImage(t)}).tar(t))
	for _, tc := range []struct {
		name, src string
		allow     []Format
		refused   string // "" when it imports
	}{
		{"tarball as tarball", tarball, []Format{FormatTar}, ""},
		{"tarball as raw", tarball, []Format{FormatExt4, FormatDisk}, "the file is a root-filesystem tarball"},
		{"ext4 as tarball", ext4, []Format{FormatTar}, "the file is a raw ext4 filesystem image"},
		{"oci as tarball", oci, []Format{FormatTar}, "the file is an OCI image"},
		{"oci as image", oci, []Format{FormatOCI, FormatDockerArchive}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := importFile(t, tc.src, WithFormats(tc.allow...))
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused != "" && (!errors.Is(err, ErrOtherFormat) || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("err = %v, want ErrOtherFormat saying %q", err, tc.refused)
			}
		})
	}
}

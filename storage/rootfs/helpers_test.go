package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"hearth/internal/logtest"
)

// entry is one tar entry a test writes.
type entry struct {
	name         string
	typ          byte
	body         string
	link         string
	mode         int64
	uid, gid     int
	major, minor int64
	xattrs       map[string]string
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, Size: int64(len(e.body)), ModTime: epoch,
			Format: tar.FormatPAX,
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body[:hdr.Size])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

func sha256Of(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// files is an archive's content by name, written out as a directory or a tar.
type files map[string][]byte

func (fs files) writeDir(t testing.TB, dir string) string {
	t.Helper()
	for name, data := range fs {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (fs files) tar(t testing.TB) []byte {
	t.Helper()
	names := make([]string, 0, len(fs))
	for name := range fs {
		names = append(names, name)
	}
	sort.Strings(names)
	var entries []entry
	for _, name := range names {
		entries = append(entries, file(name, string(fs[name])))
	}
	return tarBytes(t, entries...)
}

// ociImage is one image of an OCI layout: its layers (tar, possibly
// compressed) and, when set, its platform.
type ociImage struct {
	platform  *v1.Platform
	layers    [][]byte
	mediaType string // of every layer; the OCI tar media type by default
}

// ociLayout returns the files of an OCI image layout holding images.
func ociLayout(t testing.TB, images ...ociImage) files {
	t.Helper()
	out := files{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	blob := func(data []byte) string {
		d := sha256Of(data)
		out["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] = data
		return d
	}
	var idx []map[string]any
	for _, img := range images {
		mediaType := img.mediaType
		if mediaType == "" {
			mediaType = "application/vnd.oci.image.layer.v1.tar"
		}
		var layers []map[string]any
		for _, l := range img.layers {
			layers = append(layers, map[string]any{"mediaType": mediaType, "digest": blob(l), "size": len(l)})
		}
		cfg := blob([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`))
		man := mustJSON(t, map[string]any{
			"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg},
			"layers": layers,
		})
		d := map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": blob(man), "size": len(man)}
		if img.platform != nil {
			d["platform"] = img.platform
		}
		idx = append(idx, d)
	}
	out["index.json"] = mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageIndex, "manifests": idx})
	return out
}

// dockerArchive returns the files of a `docker save` archive of one image,
// its config listing the layers' diff_ids as Docker does.
func dockerArchive(t testing.TB, layers ...[]byte) files {
	t.Helper()
	out := files{}
	var paths, diffIDs []string
	for i, l := range layers {
		p := strconv.Itoa(i) + "abc/layer.tar"
		out[p] = l
		paths = append(paths, p)
		diffIDs = append(diffIDs, sha256Of(l))
	}
	cfg := mustJSON(t, map[string]any{"os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	out["cfg.json"] = cfg
	out["manifest.json"] = mustJSON(t, []map[string]any{{"Config": "cfg.json", "RepoTags": []string{"test:latest"}, "Layers": paths}})
	out["repositories"] = []byte(`{}`)
	return out
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// importFile runs Import into a fresh directory and checks that, success or
// failure, nothing but the drive image is left there.
func importFile(t testing.TB, src string, opts ...Option) (Result, string, error) {
	t.Helper()
	return importCtx(context.Background(), t, src, opts...)
}

func importCtx(ctx context.Context, t testing.TB, src string, opts ...Option) (Result, string, error) {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "drive.img")
	opts = append([]Option{WithLogger(logtest.Logger(t))}, opts...)
	res, err := Import(ctx, src, dst, opts...)
	left, rerr := os.ReadDir(dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	want := "[drive.img]"
	if err != nil {
		want = "[]"
	}
	if got := "[" + strings.Join(names, " ") + "]"; got != want {
		t.Errorf("after Import (err %v) the directory holds %s, want %s", err, got, want)
	}
	return res, dst, err
}

// dentry is a directory entry as debugfs `ls -p` shows it.
type dentry struct {
	mode     uint64
	uid, gid int
	size     string
}

func lsImage(t testing.TB, img, dir string) map[string]dentry {
	t.Helper()
	out := debugfs(t, img, "ls -p "+dir)
	entries := map[string]dentry{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(strings.Trim(line, "/"), "/")
		if len(f) < 5 || f[4] == "." || f[4] == ".." {
			continue
		}
		mode, _ := strconv.ParseUint(f[1], 8, 32)
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		size := ""
		if len(f) > 5 {
			size = f[5]
		}
		entries[f[4]] = dentry{mode: mode, uid: uid, gid: gid, size: size}
	}
	return entries
}

func debugfs(t testing.TB, img, request string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", request, img).Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", request, err)
	}
	return string(out)
}

func names(m map[string]dentry) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs", "e2fsck", "resize2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs e2fsprogs (%s): %v", tool, err)
		}
	}
}

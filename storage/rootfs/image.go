package rootfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
)

// Media types Import reads. Layers are also told apart by content, so a
// mislabelled one still works; these decide which manifests are images.
const (
	mediaOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerImage   = "application/vnd.docker.distribution.manifest.v2+json"
	maxIndexDepth      = 4
	maxManifestBytes   = 4 << 20
	guestOS            = "linux"
	annotationRefName  = "org.opencontainers.image.ref.name"
	dockerManifestFile = "manifest.json"
	ociLayoutFile      = "oci-layout"
	ociIndexFile       = "index.json"
)

// descriptor, index and manifest are the parts of the OCI image spec (and
// Docker's schema 2, which has the same shape) that Import reads.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type index struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
	Layers    []descriptor `json:"layers"` // set when a "manifest" entry is one
	Config    descriptor   `json:"config"`
}

// dockerManifest is one entry of a `docker save` manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// imageConfig is the part of an image configuration that checks layers.
type imageConfig struct {
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// layer is one layer to apply: a file in the layout, the digest of its bytes
// (OCI) and of its uncompressed tar (the configuration's diff_ids), when
// known.
type layer struct {
	path      string
	mediaType string
	digest    string
	diffID    string
}

// image is an OCI layout or docker-save directory, opened.
type image struct {
	root   *os.Root
	format Format
	layers []layer
}

func (img *image) Close() error { return img.root.Close() }

// isImageLayout reports whether dir holds an OCI layout or a docker-save
// archive rather than a root filesystem. A manifest.json counts only when it
// is a JSON array, so a root filesystem that happens to have one at its top
// is still a root filesystem.
func isImageLayout(dir string) (bool, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false, err
	}
	defer root.Close()
	if isRegular(root, ociLayoutFile) && isRegular(root, ociIndexFile) {
		return true, nil
	}
	if !isRegular(root, dockerManifestFile) {
		return false, nil
	}
	data, err := root.ReadFile(dockerManifestFile)
	if err != nil {
		return false, err
	}
	var list []json.RawMessage
	return json.Unmarshal(data, &list) == nil, nil
}

func isRegular(root *os.Root, name string) bool {
	info, err := root.Lstat(name)
	return err == nil && info.Mode().IsRegular()
}

// openImage reads the manifests of the OCI layout or docker-save archive in
// dir and picks the image to import.
func openImage(dir string) (*image, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	img := &image{root: root}
	switch {
	case isRegular(root, ociLayoutFile):
		img.format = FormatOCI
		err = img.readOCI()
	case isRegular(root, dockerManifestFile):
		img.format = FormatDockerArchive
		err = img.readDocker()
	default:
		err = fmt.Errorf("directory %s holds no %s (OCI image layout) or %s (docker save): %w",
			dir, ociLayoutFile, dockerManifestFile, ErrUnknownFormat)
	}
	if err != nil {
		root.Close()
		return nil, err
	}
	return img, nil
}

func (img *image) readJSON(name string, v any) error {
	f, err := img.root.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, errors.Join(err, ErrInvalidImage))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v: %w", name, err, ErrInvalidImage)
	}
	return nil
}

// blobPath checks a digest and returns where its blob lives in the layout.
func blobPath(digest string) (string, error) {
	alg, encoded, ok := strings.Cut(digest, ":")
	if !ok || newDigester(alg) == nil || encoded == "" || strings.Trim(encoded, "0123456789abcdef") != "" {
		return "", fmt.Errorf("digest %q: %w", digest, ErrInvalidImage)
	}
	return "blobs/" + alg + "/" + encoded, nil
}

func newDigester(alg string) hash.Hash {
	switch alg {
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}

func (img *image) readOCI() error {
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := img.readJSON(ociLayoutFile, &layout); err != nil {
		return err
	}
	var idx index
	if err := img.readJSON(ociIndexFile, &idx); err != nil {
		return err
	}
	man, err := img.pickManifest(idx, ociIndexFile, 0)
	if err != nil {
		return err
	}
	var cfg imageConfig
	if man.Config.Digest != "" {
		p, err := blobPath(man.Config.Digest)
		if err != nil {
			return err
		}
		if err := img.readJSON(p, &cfg); err != nil {
			return err
		}
	}
	for i, d := range man.Layers {
		if err := checkLayerMediaType(d.MediaType); err != nil {
			return err
		}
		p, err := blobPath(d.Digest)
		if err != nil {
			return err
		}
		l := layer{path: p, mediaType: d.MediaType, digest: d.Digest}
		if len(cfg.RootFS.DiffIDs) == len(man.Layers) {
			l.diffID = cfg.RootFS.DiffIDs[i]
		}
		img.layers = append(img.layers, l)
	}
	return nil
}

// pickManifest walks an index down to the image manifest for linux on this
// host's architecture, or the only image there is.
func (img *image) pickManifest(idx index, name string, depth int) (index, error) {
	if idx.Layers != nil || idx.MediaType == mediaOCIManifest || idx.MediaType == mediaDockerImage {
		return idx, nil
	}
	if depth > maxIndexDepth {
		return index{}, fmt.Errorf("%s: indexes nested too deep: %w", name, ErrInvalidImage)
	}
	var chosen *descriptor
	var seen []string
	var unplatformed []descriptor
	for i, d := range idx.Manifests {
		if d.Platform == nil {
			unplatformed = append(unplatformed, d)
			seen = append(seen, describe(d))
			continue
		}
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
		if chosen == nil && d.Platform.OS == guestOS && d.Platform.Architecture == runtime.GOARCH {
			chosen = &idx.Manifests[i]
		}
	}
	if chosen == nil && len(idx.Manifests) == 1 && len(unplatformed) == 1 {
		chosen = &unplatformed[0]
	}
	if chosen == nil {
		if len(idx.Manifests) == 0 {
			return index{}, fmt.Errorf("%s lists no image: %w", name, ErrInvalidImage)
		}
		return index{}, fmt.Errorf("%s: no image for %s/%s among [%s]: %w",
			name, guestOS, runtime.GOARCH, strings.Join(seen, ", "), ErrUnsupported)
	}
	p, err := blobPath(chosen.Digest)
	if err != nil {
		return index{}, err
	}
	var next index
	if err := img.readJSON(p, &next); err != nil {
		return index{}, err
	}
	if next.MediaType == "" {
		next.MediaType = chosen.MediaType
	}
	switch next.MediaType {
	case mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerImage, "":
	default:
		return index{}, fmt.Errorf("%s: manifest media type %q: %w", p, next.MediaType, ErrUnsupported)
	}
	return img.pickManifest(next, p, depth+1)
}

func describe(d descriptor) string {
	if ref := d.Annotations[annotationRefName]; ref != "" {
		return ref
	}
	return d.Digest
}

// checkLayerMediaType refuses layers Import cannot read, naming them.
func checkLayerMediaType(mediaType string) error {
	switch {
	case strings.HasSuffix(mediaType, "+zstd") || strings.HasSuffix(mediaType, ".zstd"):
		return fmt.Errorf("layer media type %q: zstd layers are not read (only uncompressed and gzip): %w", mediaType, ErrUnsupported)
	case mediaType == "",
		strings.HasSuffix(mediaType, ".tar"),
		strings.HasSuffix(mediaType, "+gzip"),
		strings.HasSuffix(mediaType, ".tar.gzip"),
		strings.HasSuffix(mediaType, ".tar.gz"):
		return nil
	}
	return fmt.Errorf("layer media type %q: %w", mediaType, ErrUnsupported)
}

func (img *image) readDocker() error {
	var list []dockerManifest
	if err := img.readJSON(dockerManifestFile, &list); err != nil {
		return err
	}
	if len(list) != 1 {
		var tags []string
		for _, m := range list {
			tags = append(tags, strings.Join(m.RepoTags, " "))
		}
		return fmt.Errorf("%s holds %d images [%s]; save exactly one: %w",
			dockerManifestFile, len(list), strings.Join(tags, ", "), ErrUnsupported)
	}
	m := list[0]
	var cfg imageConfig
	if m.Config != "" {
		if err := img.readJSON(m.Config, &cfg); err != nil {
			return err
		}
	}
	for i, p := range m.Layers {
		l := layer{path: p}
		if len(cfg.RootFS.DiffIDs) == len(m.Layers) {
			l.diffID = cfg.RootFS.DiffIDs[i]
		}
		img.layers = append(img.layers, l)
	}
	return nil
}

// applyLayers unpacks the image's layers in order into a new tree dir.
func applyLayers(ctx context.Context, img *image, dir string, o *options) error {
	u, err := newUnpacker(dir, o)
	if err != nil {
		return err
	}
	for i, l := range img.layers {
		if err = applyLayer(ctx, img.root, u, l); err != nil {
			err = fmt.Errorf("layer %d (%s): %w", i+1, l.path, err)
			break
		}
	}
	return errors.Join(err, u.close())
}

// gzipMagic and zstdMagic tell a layer's compression by content.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func applyLayer(ctx context.Context, root *os.Root, u *unpacker, l layer) error {
	f, err := root.Open(l.path)
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalidImage)
	}
	defer f.Close()
	blob, err := newVerifier(bufio.NewReaderSize(f, readBuf), l.digest)
	if err != nil {
		return err
	}
	br := bufio.NewReader(blob)
	magic, _ := br.Peek(4)
	var tarStream io.Reader = br
	switch {
	case bytes.HasPrefix(magic, zstdMagic):
		return fmt.Errorf("zstd-compressed layer (media type %q); only uncompressed and gzip layers are read: %w", l.mediaType, ErrUnsupported)
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %v: %w", err, ErrInvalidImage)
		}
		defer zr.Close()
		tarStream = zr
	}
	diff, err := newVerifier(tarStream, l.diffID)
	if err != nil {
		return err
	}
	if err := u.apply(ctx, diff, l.path); err != nil {
		return err
	}
	// Read what the tar reader left (its end padding) so the digests cover
	// every byte.
	if _, err := io.Copy(io.Discard, ctxReader{ctx, diff}); err != nil {
		return err
	}
	if err := diff.check(); err != nil {
		return fmt.Errorf("uncompressed layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, ctxReader{ctx, br}); err != nil {
		return err
	}
	return blob.check()
}

// verifier hashes what is read through it and compares the sum with a
// digest at the end; with no digest it only passes the bytes through.
type verifier struct {
	io.Reader
	h      hash.Hash
	digest string
}

func newVerifier(r io.Reader, digest string) (*verifier, error) {
	v := &verifier{Reader: r, digest: digest}
	if digest == "" {
		return v, nil
	}
	alg, _, _ := strings.Cut(digest, ":")
	if v.h = newDigester(alg); v.h == nil {
		return nil, fmt.Errorf("digest %q: unknown algorithm: %w", digest, ErrUnsupported)
	}
	v.Reader = io.TeeReader(r, v.h)
	return v, nil
}

func (v *verifier) check() error {
	if v.h == nil {
		return nil
	}
	alg, _, _ := strings.Cut(v.digest, ":")
	if got := alg + ":" + hex.EncodeToString(v.h.Sum(nil)); got != v.digest {
		return fmt.Errorf("content has digest %s, expected %s: %w", got, v.digest, ErrInvalidImage)
	}
	return nil
}

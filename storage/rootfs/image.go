package rootfs

import (
	"bufio"
	"context"
	_ "crypto/sha256" // digests of blobs and layers
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's schema 2 media types, which image-spec does not define; their
// documents have the OCI shape.
const (
	mediaDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerImage = "application/vnd.docker.distribution.manifest.v2+json"
)

const (
	guestOS            = "linux"
	maxIndexDepth      = 4
	maxManifestBytes   = 4 << 20
	dockerManifestFile = "manifest.json"
)

// dockerManifest is one entry of a `docker save` manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// layer is one layer to apply: a file in the layout, the digest of its bytes
// (OCI) and of its uncompressed tar (the configuration's diff_ids), when
// known.
type layer struct {
	path      string
	mediaType string
	digest    digest.Digest
	diffID    digest.Digest
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
	if isRegular(root, v1.ImageLayoutFile) && isRegular(root, v1.ImageIndexFile) {
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
	case isRegular(root, v1.ImageLayoutFile):
		img.format = FormatOCI
		err = img.readOCI()
	case isRegular(root, dockerManifestFile):
		img.format = FormatDockerArchive
		err = img.readDocker()
	default:
		err = fmt.Errorf("directory %s holds no %s (OCI image layout) or %s (docker save): %w",
			dir, v1.ImageLayoutFile, dockerManifestFile, ErrUnknownFormat)
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
func blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", d, err, ErrInvalidImage)
	}
	return v1.ImageBlobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded(), nil
}

func (img *image) readBlob(d digest.Digest, v any) (string, error) {
	p, err := blobPath(d)
	if err != nil {
		return "", err
	}
	return p, img.readJSON(p, v)
}

func (img *image) readOCI() error {
	var layout v1.ImageLayout
	if err := img.readJSON(v1.ImageLayoutFile, &layout); err != nil {
		return err
	}
	var idx v1.Index
	if err := img.readJSON(v1.ImageIndexFile, &idx); err != nil {
		return err
	}
	man, err := img.pickManifest(idx, v1.ImageIndexFile, 0)
	if err != nil {
		return err
	}
	var cfg v1.Image
	if man.Config.Digest != "" {
		if _, err := img.readBlob(man.Config.Digest, &cfg); err != nil {
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

// manifestOrIndex reads a blob that may be either, as an index's entry does
// not always say which.
type manifestOrIndex struct {
	MediaType string          `json:"mediaType"`
	Manifests []v1.Descriptor `json:"manifests"`
	Config    v1.Descriptor   `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
}

// pickManifest walks an index down to the image manifest for linux on this
// host's architecture, or the only image there is.
func (img *image) pickManifest(idx v1.Index, name string, depth int) (v1.Manifest, error) {
	if depth > maxIndexDepth {
		return v1.Manifest{}, fmt.Errorf("%s: indexes nested too deep: %w", name, ErrInvalidImage)
	}
	var chosen *v1.Descriptor
	var seen []string
	for i, d := range idx.Manifests {
		if d.Platform == nil {
			seen = append(seen, describe(d))
			continue
		}
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
		if chosen == nil && d.Platform.OS == guestOS && d.Platform.Architecture == runtime.GOARCH {
			chosen = &idx.Manifests[i]
		}
	}
	if chosen == nil && len(idx.Manifests) == 1 && idx.Manifests[0].Platform == nil {
		chosen = &idx.Manifests[0]
	}
	if chosen == nil {
		if len(idx.Manifests) == 0 {
			return v1.Manifest{}, fmt.Errorf("%s lists no image: %w", name, ErrInvalidImage)
		}
		return v1.Manifest{}, fmt.Errorf("%s: no image for %s/%s among [%s]: %w",
			name, guestOS, runtime.GOARCH, strings.Join(seen, ", "), ErrUnsupported)
	}
	var next manifestOrIndex
	p, err := img.readBlob(chosen.Digest, &next)
	if err != nil {
		return v1.Manifest{}, err
	}
	if next.MediaType == "" {
		next.MediaType = chosen.MediaType
	}
	switch {
	case next.MediaType == v1.MediaTypeImageIndex || next.MediaType == mediaDockerList ||
		next.MediaType == "" && next.Manifests != nil:
		return img.pickManifest(v1.Index{MediaType: next.MediaType, Manifests: next.Manifests}, p, depth+1)
	case next.MediaType == v1.MediaTypeImageManifest || next.MediaType == mediaDockerImage ||
		next.MediaType == "" && next.Layers != nil:
		return v1.Manifest{MediaType: next.MediaType, Config: next.Config, Layers: next.Layers}, nil
	}
	return v1.Manifest{}, fmt.Errorf("%s: manifest media type %q: %w", p, next.MediaType, ErrUnsupported)
}

func describe(d v1.Descriptor) string {
	if ref := d.Annotations[v1.AnnotationRefName]; ref != "" {
		return ref
	}
	return d.Digest.String()
}

// checkLayerMediaType refuses, naming them, layers that are not tar streams
// (encrypted ones, artifacts).
func checkLayerMediaType(mediaType string) error {
	for _, suffix := range []string{".tar", "+gzip", "+zstd", ".tar.gzip", ".tar.gz", ".tar.zstd"} {
		if strings.HasSuffix(mediaType, suffix) {
			return nil
		}
	}
	if mediaType == "" {
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
	var cfg v1.Image
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
	rc, compression, err := decompress(br)
	if err != nil {
		return fmt.Errorf("media type %q: %w", l.mediaType, err)
	}
	defer rc.Close()
	diff, err := newVerifier(rc, l.diffID)
	if err != nil {
		return err
	}
	stream := "tar"
	if compression != "" {
		stream = compression + "-compressed tar"
	}
	if err := u.apply(ctx, diff, stream); err != nil {
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

// verifier passes bytes through and, given a digest, checks at the end that
// they match it.
type verifier struct {
	io.Reader
	digest digest.Digest
	v      digest.Verifier
}

func newVerifier(r io.Reader, d digest.Digest) (*verifier, error) {
	v := &verifier{Reader: r, digest: d}
	if d == "" {
		return v, nil
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %v: %w", d, err, ErrInvalidImage)
	}
	v.v = d.Verifier()
	v.Reader = io.TeeReader(r, v.v)
	return v, nil
}

func (v *verifier) check() error {
	if v.v == nil || v.v.Verified() {
		return nil
	}
	return fmt.Errorf("content does not match digest %s: %w", v.digest, ErrInvalidImage)
}

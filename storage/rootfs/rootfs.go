// Package rootfs makes and keeps the drive images Hearth guests boot from.
//
// Import is what `hearth image import` runs: it reads a root-filesystem
// tarball (plain, gzip, zstd or bzip2), an OCI image layout (a directory or a
// tar of one), a `docker save` archive, a raw image (an ext4, xfs or btrfs
// filesystem, or a whole MBR or GPT partitioned disk, copied as it is) or a
// qcow2 image (converted to raw by qemu-img, Debian's qemu-utils; one with a
// backing file is refused, a damaged one fails with qemu-img's reason),
// recognised by content and never by file name. Archives become a sparse
// ext4 image made by mkfs.ext4 -d (e2fsprogs).
//
// Archives are unpacked into a private temporary tree beside the destination
// (so the space used is the data volume's, not /tmp's) through an os.Root, so
// no entry of a hostile archive can write outside it: `..` is refused,
// absolute names and symbolic links are resolved inside the tree, as the
// guest itself would see them. Owners, modes, symbolic links, hard links,
// device nodes, extended attributes and times are kept as root keeps them.
//
// At a guest's start, the guest layer calls:
//   - FindRoot, which says where the root filesystem of a boot drive lies
//     (the whole drive, or the root partition of an MBR or GPT disk: by GPT
//     root type, else the Linux partition holding /sbin/init, else the
//     largest) and what it is, with the offset and size a loop device
//     needs, and KernelSupports, which says whether the host kernel has it;
//   - Grow, which extends a last root partition to the end of a grown drive
//     and grows an ext4 root offline, as cloud images' growpart and
//     resize2fs do; and GrowMounted, which grows a mounted xfs or btrfs root.
//
// Partition tables are read and written with go-diskfs (pure Go; GPT
// checksums verified, the backup table used when the primary is damaged).
// Their errors wrap ErrNoRoot, ErrNoKernelSupport or ErrInUse and name no host
// path, so they can be shown as the reason a server is dead.
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinel errors; Import wraps them with the detail at fault, so callers test
// them with errors.Is.
var (
	// ErrUnknownFormat: the source is none of the formats Import reads.
	ErrUnknownFormat = errors.New("unrecognised image format")
	// ErrUnsupported: a recognised format uses something Import cannot read
	// (xz compression, an unknown layer media type, no image for this
	// platform).
	ErrUnsupported = errors.New("unsupported image")
	// ErrInvalidImage: the image is damaged or inconsistent (a manifest that
	// does not parse, a missing blob, a digest that does not match).
	ErrInvalidImage = errors.New("invalid image")
	// ErrUnsafePath: an archive entry would land outside the root (`..`).
	ErrUnsafePath = errors.New("unsafe path in archive")
	// ErrTooSmall: the requested size cannot hold the content.
	ErrTooSmall = errors.New("size too small for the image content")
	// ErrOtherFormat: the source is not of a format WithFormats allows.
	ErrOtherFormat = errors.New("not the format asked for")

	// Errors of FindRoot, Grow and KernelSupports. Their messages, and the
	// detail wrapped around them, name no host path, so a caller can show
	// them as the reason a server is dead.

	// ErrNoRoot: the drive holds no root filesystem Hearth can boot (no
	// filesystem it knows, no Linux partition, an unreadable partition
	// table).
	ErrNoRoot = errors.New("no usable root filesystem")
	// ErrNoKernelSupport: the root filesystem is one the host kernel cannot
	// mount.
	ErrNoKernelSupport = errors.New("filesystem not supported by the host kernel")
	// ErrInUse: Grow was asked to change a drive that a loop device holds.
	ErrInUse = errors.New("drive is in use")
)

// Format is the kind of source Import recognised.
type Format string

const (
	// FormatTar is a root-filesystem tarball.
	FormatTar Format = "rootfs-tar"
	// FormatOCI is an OCI image layout, as a directory or a tar of one.
	FormatOCI Format = "oci"
	// FormatDockerArchive is the output of `docker save` (manifest.json and
	// layer tars).
	FormatDockerArchive Format = "docker-archive"
	// FormatExt4 is a raw ext2/3/4 filesystem image, copied as it is.
	FormatExt4 Format = "ext4"
	// FormatXFS and FormatBtrfs are raw xfs and btrfs filesystem images,
	// copied as they are; they grow at the guest's start (Grow,
	// GrowMounted).
	FormatXFS   Format = "xfs"
	FormatBtrfs Format = "btrfs"
	// FormatDisk is a raw disk image with an MBR or GPT partition table,
	// copied whole, as it is; FindRoot finds the root partition a guest
	// boots from, and Grow extends it at the guest's start.
	FormatDisk Format = "disk"
	// FormatQcow2 is a QEMU qcow2 image, converted to raw by qemu-img
	// (Debian's qemu-utils); what it held is in Result.Content.
	FormatQcow2 Format = "qcow2"
)

// Result describes the drive image Import wrote.
type Result struct {
	// Format is what the source was.
	Format Format
	// Content is what the drive image holds: FormatExt4 for archives
	// (packed into ext4), the raw format itself for raw images, and what a
	// qcow2 image held (FormatExt4, FormatXFS, FormatBtrfs or FormatDisk).
	Content Format
	// Compression is how the source file was compressed: "gzip", "zstd",
	// "bzip2" or "" for none.
	Compression string
	// Size is the size in bytes of the image written (sparse; its apparent
	// size, which is what a drive's `size` is).
	Size int64
	// Layers is the number of layers applied: 1 for a tarball, 0 for a raw
	// image.
	Layers int
	// HasInit reports whether /sbin/init exists in the image (followed
	// through symbolic links inside the tree for archives; as a directory
	// entry for raw ext4 images; false for other raw images, whose root
	// FindRoot finds at start). Without it a guest runs /bin/sh.
	HasInit bool
}

// Option changes how Import works.
type Option func(*options)

type options struct {
	size     int64
	log      *slog.Logger
	tempDir  string
	progress func(done, total int64)
	formats  []Format
}

// WithSize makes the image exactly size bytes instead of the content's size
// plus headroom. A size that cannot hold the content fails with ErrTooSmall.
// A raw ext4 image smaller than size is grown (resize2fs); other raw images
// are only extended (their filesystem grows at the guest's start, Grow); one
// larger is refused with ErrTooSmall.
func WithSize(size int64) Option { return func(o *options) { o.size = size } }

// WithLogger receives what Import does and anything it could not keep (for
// instance an extended attribute the filesystem refused).
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// WithTempDir sets where the temporary tree is unpacked. The default is the
// destination's directory, so the space used is the data volume's.
func WithTempDir(dir string) Option { return func(o *options) { o.tempDir = dir } }

// WithProgress receives, as Import goes, how much of the source file it has
// read: done of total bytes (the file's size). Reading a file ends before
// Import's last steps (mkfs.ext4, e2fsck, resize2fs), so done reaching
// total is not the end. A qcow2 image reports nothing until it is
// converted; a directory, nothing at all. fn runs on Import's goroutine.
func WithProgress(fn func(done, total int64)) Option {
	return func(o *options) { o.progress = fn }
}

// WithFormats makes Import refuse, with ErrOtherFormat, a source that is
// none of formats, as soon as it knows (raw images and qcow2 at once, tar
// archives once unpacked), before it makes a filesystem.
func WithFormats(formats ...Format) Option {
	return func(o *options) { o.formats = formats }
}

// expect checks the source's format against WithFormats.
func (o *options) expect(f Format) error {
	if len(o.formats) == 0 || slices.Contains(o.formats, f) {
		return nil
	}
	return fmt.Errorf("the file is %s: %w", f.Describe(), ErrOtherFormat)
}

// Describe names the format in words, with its article ("a qcow2 image").
func (f Format) Describe() string {
	switch f {
	case FormatTar:
		return "a root-filesystem tarball"
	case FormatOCI:
		return "an OCI image"
	case FormatDockerArchive:
		return "a docker-save archive"
	case FormatExt4, FormatXFS, FormatBtrfs:
		return "a raw " + string(f) + " filesystem image"
	case FormatDisk:
		return "a raw disk image"
	case FormatQcow2:
		return "a qcow2 image"
	}
	return string(f)
}

// Import reads the image at src (a file, or a directory holding an OCI image
// layout or an unpacked `docker save`), recognises its format by content and
// writes a drive image to dst, which must not exist yet: ext4 for archives,
// the raw image as it is otherwise.
//
// Steps:
//   - gzip, zstd and bzip2 are undone on the fly (files and layers); xz is
//     refused (ErrUnsupported);
//   - a raw ext4, xfs or btrfs image or a partitioned disk image (compressed
//     or not) is copied sparsely, whole, and extended to WithSize; an ext4
//     one is checked with e2fsck -p and grown with resize2fs;
//   - a qcow2 image is checked (qemu-img check) and converted (qemu-img
//     convert) into the drive, then treated as the raw image it held;
//   - anything else that is not a tar archive fails with ErrUnknownFormat;
//   - a tar is unpacked into a temporary tree; if it holds an OCI layout or a
//     `docker save` archive, the image for linux/GOARCH (or the only one) is
//     assembled from its layers in order, whiteouts applied, into a second tree;
//   - mkfs.ext4 -d packs the tree into a sparse image of the requested size or,
//     without one, of the content's size plus a quarter plus 64 MiB, rounded
//     up to a MiB.
//
// Temporary trees are removed on every path, and on failure (cancellation
// included) dst is removed too; RemoveStale clears what a killed process
// left.
func Import(ctx context.Context, src, dst string, opts ...Option) (res Result, err error) {
	o := options{log: slog.New(slog.DiscardHandler), tempDir: filepath.Dir(dst)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.size < 0 {
		return Result{}, fmt.Errorf("size %d: %w", o.size, ErrTooSmall)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Result{}, fmt.Errorf("create drive image: %w", err)
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close drive image %s: %w", dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	// Errors do not repeat src: the caller names it.
	if res, err = importInto(ctx, src, out, &o); err != nil {
		return Result{}, err
	}
	if err := out.Sync(); err != nil {
		return Result{}, fmt.Errorf("sync drive image %s: %w", dst, err)
	}
	return res, nil
}

func importInto(ctx context.Context, src string, out *os.File, o *options) (Result, error) {
	info, err := os.Stat(src)
	if err != nil {
		return Result{}, err
	}
	work, remove, err := TempDir(o.tempDir)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err := remove(); err != nil {
			o.log.Warn("could not remove a temporary tree", "dir", work, "err", err)
		}
	}()
	if info.IsDir() {
		return importLayout(ctx, src, work, out, o, Result{})
	}
	f, err := os.Open(src)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	kind, err := detect(f)
	if err != nil {
		return Result{}, err
	}
	if kind.format != FormatTar {
		if err := o.expect(kind.format); err != nil {
			return Result{}, err
		}
	}
	in := o.reading(f, info.Size())
	switch kind.format {
	case FormatExt4, FormatXFS, FormatBtrfs, FormatDisk:
		return copyRaw(ctx, f, in, out, kind, o)
	case FormatQcow2:
		return convertQcow2(ctx, f, out, o)
	}
	// A tar: unpack it, then see whether it was a container image.
	res := Result{Compression: kind.compression}
	unpacked := filepath.Join(work, "archive")
	if err := unpackFile(ctx, in, unpacked, o); err != nil {
		return Result{}, err
	}
	layout, err := isImageLayout(unpacked)
	if err != nil {
		return Result{}, err
	}
	if layout {
		return importLayout(ctx, unpacked, work, out, o, res)
	}
	if err := o.expect(FormatTar); err != nil {
		return Result{}, err
	}
	res.Format, res.Layers = FormatTar, 1
	return finish(ctx, unpacked, out, o, res)
}

// tempPrefix names Import's temporary trees.
const tempPrefix = ".hearth-import-"

// TempDir makes a private temporary directory in dir (the directory given
// to WithTempDir) of the kind Import unpacks into: until remove, which
// deletes it with its contents, it holds a lock that keeps RemoveStale away;
// after a crash RemoveStale clears it. Callers keep files there that must
// not outlive a failure, such as an upload waiting to be imported.
func TempDir(dir string) (path string, remove func() error, err error) {
	path, err = os.MkdirTemp(dir, tempPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory: %w", err)
	}
	// The lock tells RemoveStale, run by another process, that this
	// directory is in use; closing it releases the lock.
	lock, err := os.Open(path)
	if err == nil {
		if err = unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(path)
		return "", nil, fmt.Errorf("lock temporary directory: %w", err)
	}
	remove = func() error {
		err := os.RemoveAll(path)
		lock.Close()
		return err
	}
	return path, remove, nil
}

// reading returns f, as a reader at offsets, reporting to WithProgress how
// far into its total bytes it has been read.
func (o *options) reading(f *os.File, total int64) io.ReaderAt {
	if o.progress == nil {
		return f
	}
	return &progressReaderAt{r: f, total: total, report: o.progress}
}

// progressReaderAt reports the furthest offset read.
type progressReaderAt struct {
	r      io.ReaderAt
	total  int64
	done   int64
	report func(done, total int64)
}

func (p *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	p.reached(off + int64(n))
	return n, err
}

// reached notes that everything before end is done with: read, or a hole
// skipped.
func (p *progressReaderAt) reached(end int64) {
	if end > p.done {
		p.done = min(end, p.total)
		p.report(p.done, p.total)
	}
}

// RemoveStale removes from dir (the directory given to WithTempDir) the
// temporary trees of imports that were killed before they could clean up
// (SIGKILL, power loss). Trees of imports still running hold a lock and are
// kept, so it is safe to call while `hearth image import` runs beside.
func RemoveStale(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			errs = append(errs, os.RemoveAll(p))
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// importLayout assembles the image held by the OCI layout or docker-save
// directory dir into a tree under work and packs it.
func importLayout(ctx context.Context, dir, work string, out *os.File, o *options, res Result) (Result, error) {
	img, err := openImage(dir)
	if err != nil {
		return Result{}, err
	}
	defer img.Close()
	if err := o.expect(img.format); err != nil {
		return Result{}, err
	}
	tree := filepath.Join(work, "rootfs")
	if err := applyLayers(ctx, img, tree, o); err != nil {
		return Result{}, err
	}
	res.Format, res.Layers = img.format, len(img.layers)
	return finish(ctx, tree, out, o, res)
}

// finish packs tree into out and fills in the rest of res.
func finish(ctx context.Context, tree string, out *os.File, o *options, res Result) (Result, error) {
	hasInit, err := treeHasInit(tree)
	if err != nil {
		return Result{}, err
	}
	size, err := mkfs(ctx, tree, out, o)
	if err != nil {
		return Result{}, err
	}
	res.Size, res.HasInit, res.Content = size, hasInit, FormatExt4
	return res, nil
}

package rootfs

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes AUFS bookkeeping entries (.wh..wh..plnk, …),
	// which carry nothing a root filesystem needs.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	// maxLinks bounds the symbolic links followed while resolving one name,
	// as the kernel's ELOOP does.
	maxLinks = 40
	readBuf  = 1 << 20
)

// unpacker applies tar layers onto one tree. Every file operation goes
// through an os.Root, so even a resolution mistake cannot leave the tree.
type unpacker struct {
	root *os.Root
	log  *slog.Logger
	// dirTimes are applied last: entries written into a directory change
	// its modification time.
	dirTimes    map[string]time.Time
	chownFailed bool
	buf         []byte // scratch space for writeSparse
}

func newUnpacker(dir string, o *options) (*unpacker, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	// Mkdir is subject to the umask; the guest's / must be 0755 unless an
	// archive says otherwise.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &unpacker{root: root, log: o.log, dirTimes: map[string]time.Time{}, buf: make([]byte, readBuf)}, nil
}

// close sets the directories' times and releases the root.
func (u *unpacker) close() error {
	var errs []error
	for dir, mtime := range u.dirTimes {
		if err := u.root.Chtimes(dir, mtime, mtime); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, u.root.Close())
	return errors.Join(errs...)
}

// unpackFile unpacks the tar in f, compressed or not, into a new directory
// dir.
func unpackFile(ctx context.Context, f io.ReaderAt, dir string, o *options) error {
	rc, _, err := decompress(bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), readBuf))
	if err != nil {
		return err
	}
	defer rc.Close()
	u, err := newUnpacker(dir, o)
	if err != nil {
		return err
	}
	err = u.apply(ctx, rc, "archive")
	return errors.Join(err, u.close())
}

// apply unpacks one layer from r, honouring whiteouts against what earlier
// layers left in the tree.
func (u *unpacker) apply(ctx context.Context, r io.Reader, layer string) error {
	tr := tar.NewReader(ctxReader{ctx, r})
	// unpacked holds every path this layer wrote, and their parents: an
	// opaque directory keeps those and loses the rest.
	unpacked := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %v: %w", layer, err, ErrInvalidImage)
		}
		if err := u.entry(ctx, tr, hdr, unpacked); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: entry %q: %w", layer, hdr.Name, err)
		}
	}
}

// cleanName turns a tar entry name into a path relative to the root.
// Absolute names are read from the root (as GNU tar does); `..` is refused.
func cleanName(name string) (string, error) {
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("`..` climbs out of the root: %w", ErrUnsafePath)
		}
	}
	p := path.Clean("/" + name)
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

func (u *unpacker) resolve(name string, followLast bool) (string, error) {
	return resolveIn(u.root, name, followLast)
}

// resolveIn returns where name lands in root, with the symbolic links among
// its directories (and its last element when followLast) replaced by their
// targets read as the guest reads them: absolute targets start at the root
// and `..` stops there. Elements that do not exist yet are kept as they are.
func resolveIn(root *os.Root, name string, followLast bool) (string, error) {
	var done []string
	todo := strings.Split(name, "/")
	links := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		candidate := path.Join(append(done, elem)...)
		if len(todo) == 0 && !followLast {
			done = append(done, elem)
			break
		}
		info, err := root.Lstat(candidate)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Mode()&fs.ModeSymlink == 0) {
			done = append(done, elem)
			continue
		}
		if err != nil {
			return "", err
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links: %w", name, ErrInvalidImage)
		}
		target, err := root.Readlink(candidate)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = done[:0]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

// markUnpacked records p and its parents as written by this layer.
func markUnpacked(unpacked map[string]bool, p string) {
	for ; p != "." && !unpacked[p]; p = path.Dir(p) {
		unpacked[p] = true
	}
}

func (u *unpacker) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header, unpacked map[string]bool) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(name)
	parent, err := u.resolve(dir, true)
	if err != nil {
		return err
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parent, base, unpacked)
	}
	if parent != "." {
		if err := u.root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	target := path.Join(parent, base)
	if name == "." {
		target = "."
	}
	markUnpacked(unpacked, target)

	var file *os.File
	switch hdr.Typeflag {
	case tar.TypeDir:
		info, err := u.root.Lstat(target)
		if err == nil && !info.IsDir() {
			if err := u.root.RemoveAll(target); err != nil {
				return err
			}
		}
		if err != nil || !info.IsDir() {
			if err := u.root.Mkdir(target, 0o700); err != nil {
				return err
			}
		}
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := u.replace(target); err != nil {
			return err
		}
		if file, err = u.root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		defer file.Close()
		// Written sparsely: images carry huge sparse files (lastlog).
		src := &readErr{r: tr}
		n, err := writeSparse(ctx, file, src, 0, u.buf)
		if src.err != nil {
			return fmt.Errorf("read content: %w: %w", src.err, ErrInvalidImage)
		}
		if err != nil {
			return err
		}
		if err := file.Truncate(n); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := u.replace(target); err != nil {
			return err
		}
		if err := u.root.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		old, err := cleanName(hdr.Linkname)
		if err == nil {
			old, err = u.resolve(old, false)
		}
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		if old == target {
			return nil
		}
		if err := u.replace(target); err != nil {
			return err
		}
		if err := u.root.Link(old, target); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := u.replace(target); err != nil {
			return err
		}
		if err := u.mknod(parent, base, hdr); err != nil {
			if !errors.Is(err, unix.EPERM) {
				return err
			}
			u.log.Warn("skipping a device node (not running as root?)", "entry", hdr.Name, "err", err)
			return nil
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		u.log.Warn("skipping a tar entry of a type not kept", "entry", hdr.Name, "type", string(hdr.Typeflag))
		return nil
	}
	if hdr.Typeflag == tar.TypeLink {
		return nil // the inode's metadata came with its first name
	}
	return u.metadata(target, hdr, file)
}

// whiteout applies a whiteout entry found in directory parent.
func (u *unpacker) whiteout(parent, base string, unpacked map[string]bool) error {
	switch {
	case base == whiteoutOpaque:
		return u.makeOpaque(parent, unpacked)
	case strings.HasPrefix(base, whiteoutMeta):
		return nil
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." {
		return fmt.Errorf("whiteout %q names no file: %w", base, ErrInvalidImage)
	}
	return u.root.RemoveAll(path.Join(parent, hidden))
}

// makeOpaque removes from dir whatever earlier layers put there; what this
// layer wrote stays.
func (u *unpacker) makeOpaque(dir string, unpacked map[string]bool) error {
	d, err := u.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case !unpacked[p]:
			err = u.root.RemoveAll(p)
		case e.IsDir():
			err = u.makeOpaque(p, unpacked)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// replace clears target for a new non-directory entry: a later layer's file
// replaces whatever was there, directory included.
func (u *unpacker) replace(target string) error {
	if _, err := u.root.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return u.root.RemoveAll(target)
}

func (u *unpacker) mknod(parent, base string, hdr *tar.Header) error {
	d, err := u.root.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(int(d.Fd()), base, mode, int(dev)); err != nil {
		return fmt.Errorf("mknod %s: %w", path.Join(parent, base), err)
	}
	return nil
}

// metadata gives target the owner, mode, extended attributes and times of
// hdr, in that order: chown clears set-id bits and file capabilities.
func (u *unpacker) metadata(target string, hdr *tar.Header, file *os.File) error {
	if err := u.root.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		if !errors.Is(err, syscall.EPERM) {
			return err
		}
		if !u.chownFailed {
			u.log.Warn("cannot keep owners (not running as root?)", "err", err)
			u.chownFailed = true
		}
	}
	symlink := hdr.Typeflag == tar.TypeSymlink
	if !symlink {
		if err := u.root.Chmod(target, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
	}
	if err := u.xattrs(target, hdr, file); err != nil {
		return err
	}
	switch {
	case hdr.Typeflag == tar.TypeDir:
		u.dirTimes[target] = hdr.ModTime
	case !symlink:
		atime := hdr.AccessTime
		if atime.IsZero() {
			atime = hdr.ModTime
		}
		return u.root.Chtimes(target, atime, hdr.ModTime)
	}
	return nil
}

// xattrs sets the extended attributes of hdr (PAX SCHILY.xattr records) on a
// regular file or directory. The kernel refuses user attributes on symbolic
// links and device nodes, so those are logged and dropped.
func (u *unpacker) xattrs(target string, hdr *tar.Header, file *os.File) error {
	const prefix = "SCHILY.xattr."
	for key, value := range hdr.PAXRecords {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		attr := strings.TrimPrefix(key, prefix)
		if file == nil && hdr.Typeflag != tar.TypeDir {
			u.log.Warn("extended attribute dropped", "entry", hdr.Name, "attr", attr, "type", string(hdr.Typeflag))
			continue
		}
		f := file
		if f == nil {
			d, err := u.root.Open(target)
			if err != nil {
				return err
			}
			defer d.Close()
			f = d
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(value), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				u.log.Warn("extended attribute dropped", "entry", hdr.Name, "attr", attr, "err", err)
				continue
			}
			return fmt.Errorf("set extended attribute %s on %s: %w", attr, target, err)
		}
	}
	return nil
}

// readErr remembers a read error, to tell a damaged archive from a failing
// write.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	mib           = 1 << 20
	blockSize     = 4096
	inodeSize     = 256
	bytesPerInode = 16384
	// fastSymlinkMax is the longest symbolic link target ext4 keeps inside
	// the inode; longer ones take a block.
	fastSymlinkMax = 59
	// headroomFixed and headroomShare make the default size: content plus a
	// quarter plus 64 MiB, which covers the journal (4–64 MiB up to 16 GiB)
	// and leaves the guest room to work.
	headroomFixed = 64 * mib
	headroomShare = 4
)

// usage is what a tree takes on ext4 with 4 KiB blocks.
type usage struct {
	bytes  int64 // data, directory and long-symlink blocks
	inodes int64 // distinct inodes (hard links counted once)
}

func measure(ctx context.Context, tree string) (usage, error) {
	var u usage
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		if st != nil && st.Nlink > 1 && !info.IsDir() {
			key := [2]uint64{st.Dev, st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		u.inodes++
		switch mode := info.Mode(); {
		case mode.IsRegular():
			size := roundUp(info.Size(), blockSize)
			if st != nil {
				// A sparse file takes only its allocated blocks.
				size = min(size, roundUp(st.Blocks*512, blockSize))
			}
			u.bytes += size
		case mode.IsDir():
			u.bytes += blockSize
		case mode&fs.ModeSymlink != 0 && info.Size() > fastSymlinkMax:
			u.bytes += blockSize
		}
		return nil
	})
	return u, err
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// defaultSize is the image size for content of usage u when none is asked.
func defaultSize(u usage) int64 {
	need := u.bytes + u.inodes*inodeSize
	return roundUp(need+need/headroomShare+headroomFixed, mib)
}

// mkfs packs tree into out with mkfs.ext4 -d and returns the image's size.
func mkfs(ctx context.Context, tree string, out *os.File, o *options) (int64, error) {
	u, err := measure(ctx, tree)
	if err != nil {
		return 0, fmt.Errorf("measure tree: %w", err)
	}
	size := o.size
	if size == 0 {
		size = defaultSize(u)
	}
	// Enough inodes for the content and a quarter more, never fewer than
	// mkfs's usual one per 16 KiB.
	inodes := max(size/bytesPerInode, u.inodes+u.inodes/4+64)
	if floor := u.bytes + inodes*inodeSize; size < floor {
		return 0, fmt.Errorf("size %d bytes: the content needs at least %d bytes (%d MiB by default): %w",
			size, floor, defaultSize(u)/mib, ErrTooSmall)
	}
	if err := out.Truncate(size); err != nil {
		return 0, err
	}
	o.log.Info("mkfs.ext4", "bytes", size, "inodes", inodes, "content_bytes", u.bytes)
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-b", strconv.Itoa(blockSize),
		"-N", strconv.FormatInt(inodes, 10), "-d", tree, out.Name())
	if output, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		msg := strings.TrimSpace(string(output))
		if outOfSpace(msg) {
			return 0, fmt.Errorf("size %d bytes (%d MiB by default): mkfs.ext4: %s: %w", size, defaultSize(u)/mib, msg, ErrTooSmall)
		}
		return 0, fmt.Errorf("mkfs.ext4: %v: %s", err, msg)
	}
	return size, nil
}

func outOfSpace(mkfsOutput string) bool {
	for _, s := range []string{"Could not allocate", "No space left", "too small", "Not enough space"} {
		if strings.Contains(mkfsOutput, s) {
			return true
		}
	}
	return false
}

// treeHasInit reports whether tree has an executable /sbin/init, following
// symbolic links inside the tree as the guest would.
func treeHasInit(tree string) (bool, error) {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return false, err
	}
	defer root.Close()
	p, err := resolveIn(root, "sbin/init", true)
	if err != nil {
		return false, nil // a link loop is no init
	}
	info, err := root.Lstat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0, nil
}

// copyRaw copies a raw filesystem or disk image, compressed or not, into
// out, leaving holes where the source has holes or zero blocks, and sizes it.
// Data is read through in (src, or src reporting progress).
func copyRaw(ctx context.Context, src *os.File, in io.ReaderAt, out *os.File, k kind, o *options) (Result, error) {
	var srcSize int64
	if k.compression != "" {
		rc, _, err := decompress(bufio.NewReaderSize(io.NewSectionReader(in, 0, 1<<62), readBuf))
		if err != nil {
			return Result{}, err
		}
		defer rc.Close()
		data := &readErr{r: rc}
		if srcSize, err = writeSparse(ctx, out, data, 0, make([]byte, mib)); err != nil {
			if data.err != nil && ctx.Err() == nil {
				return Result{}, fmt.Errorf("%s: %w: %w", k.compression, data.err, ErrInvalidImage)
			}
			return Result{}, err
		}
	} else {
		info, err := src.Stat()
		if err != nil {
			return Result{}, err
		}
		srcSize = info.Size()
		if err := copySparse(ctx, src, in, out, srcSize); err != nil {
			return Result{}, err
		}
	}
	return sizeRaw(ctx, out, srcSize, o, Result{Format: k.format, Content: k.format, Compression: k.compression})
}

// sizeRaw makes the raw image of res.Content in out, srcSize bytes long, the
// asked size, growing an ext4 filesystem to fill it. Other filesystems and
// partitioned disks grow at the guest's start (Grow).
func sizeRaw(ctx context.Context, out *os.File, srcSize int64, o *options, res Result) (Result, error) {
	size := o.size
	if size == 0 {
		size = srcSize
	}
	if size < srcSize {
		return Result{}, fmt.Errorf("size %d bytes: the %s image is %d bytes and is not shrunk: %w", size, res.Content, srcSize, ErrTooSmall)
	}
	if err := out.Truncate(size); err != nil {
		return Result{}, err
	}
	res.Size = size
	if res.Content != FormatExt4 {
		o.log.Info("image copied as it is; it grows to its drive at the guest's start", "content", res.Content)
		return res, nil
	}
	// Our copy may be checked and repaired freely; resize2fs insists on a
	// fresh check anyway.
	if err := run(ctx, "e2fsck", "-f", "-p", out.Name()); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() >= 4 {
			return Result{}, fmt.Errorf("ext4 image has errors e2fsck cannot repair: %w: %w", err, ErrInvalidImage)
		}
	}
	if size > srcSize {
		if err := run(ctx, "resize2fs", out.Name()); err != nil {
			return Result{}, err
		}
	}
	stat, err := exec.CommandContext(ctx, "debugfs", "-R", "stat /sbin/init", out.Name()).Output()
	if err != nil {
		return Result{}, fmt.Errorf("debugfs: %w", err)
	}
	res.HasInit = bytes.Contains(stat, []byte("Inode:"))
	return res, nil
}

func run(ctx context.Context, name string, args ...string) error {
	output, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(output)))
	}
	return nil
}

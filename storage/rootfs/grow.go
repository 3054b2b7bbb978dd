package rootfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Grow makes the root filesystem of the unmounted drive image at path fill
// the drive, as cloud images' growpart and resize2fs do at first boot, and
// returns the root as it is then:
//   - a GPT whose backup header is not at the end of a grown drive has it
//     moved there; a root partition that is the disk's last is extended to
//     the end of the disk (MBR: at most 2 TiB), in pure Go (go-diskfs);
//   - an ext4 filesystem is checked (e2fsck -f -p) and grown (resize2fs)
//     offline, e2fsprogs; in a partition through a loop device (losetup,
//     util-linux's mount package; root only);
//   - xfs and btrfs grow only mounted: when the returned Root's CanGrow
//     holds, call GrowMounted once the guest's root is mounted.
//
// When sizes already match it only reads the partition table and the
// superblock. A drive a loop device holds (mounted, or in a running guest)
// is refused with ErrInUse: call Grow before attaching it. Errors wrap
// ErrNoRoot, ErrInUse or ErrInvalidImage and name no host path.
func Grow(ctx context.Context, path string, log *slog.Logger) (Root, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := notLooped(path); err != nil {
		return Root{}, err
	}
	f, root, err := openRoot(ctx, path, os.O_RDWR, log)
	if err != nil {
		return Root{}, err
	}
	defer f.Close()
	if root.Table != "" {
		if root, err = growPartition(f, root, log); err != nil {
			return Root{}, err
		}
	}
	if root.FS != FSExt4 || !root.CanGrow() {
		return root, nil
	}
	return growExt4(ctx, f, root, log)
}

// growPartition moves a GPT's backup header to the end of the drive and
// extends the root partition to the end when it is the last one.
func growPartition(f *os.File, root Root, log *slog.Logger) (Root, error) {
	info, err := f.Stat()
	if err != nil {
		return Root{}, err
	}
	sectors := uint64(info.Size() / sectorSize)
	var (
		write   func() error
		changed bool
	)
	switch root.Table {
	case "gpt":
		t, err := gpt.Read(f, sectorSize, sectorSize)
		if err != nil {
			return Root{}, fmt.Errorf("%w: GPT partition table unreadable (%s)", ErrNoRoot, err)
		}
		if t.TotalSize() != sectors*sectorSize || t.RecoveredFromBackup {
			t.Resize(sectors * sectorSize)
			changed = true
			log.Info("rootfs: GPT backup header moved to the end of the drive")
		}
		if p := lastGPT(t, root.Partition); p != nil && t.LastDataSector()-p.End >= mib/sectorSize {
			p.Expand(t.LastDataSector() - p.End)
			root.Size = int64(p.End-p.Start+1) * sectorSize
			changed = true
		}
		write = func() error { return t.Write(f, int64(sectors*sectorSize)) }
	case "mbr":
		t, err := mbr.Read(f, sectorSize, sectorSize)
		if err != nil {
			return Root{}, fmt.Errorf("%w: partition table unreadable (%s)", ErrNoRoot, err)
		}
		end := min(sectors, 1<<32-1)
		if p := lastMBR(t, root.Partition); p != nil && end-uint64(p.Start)-uint64(p.Size) >= mib/sectorSize {
			p.Size = uint32(end - uint64(p.Start))
			root.Size = int64(p.Size) * sectorSize
			changed = true
		}
		write = func() error { return t.Write(f, int64(sectors*sectorSize)) }
	}
	if !changed {
		return root, nil
	}
	if err := write(); err != nil {
		return Root{}, fmt.Errorf("write the partition table: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Root{}, fmt.Errorf("write the partition table: %w", errors.Unwrap(err))
	}
	log.Info("rootfs: root partition grown", "partition", root.Partition, "bytes", root.Size)
	return root, nil
}

// lastGPT returns partition number n of t if no other partition ends after
// it, else nil.
func lastGPT(t *gpt.Table, n int) *gpt.Partition {
	var root *gpt.Partition
	for _, p := range t.Partitions {
		if p.Index == n {
			root = p
		}
	}
	for _, p := range t.Partitions {
		if root == nil || (p != root && p.End >= root.End) {
			return nil
		}
	}
	return root
}

// lastMBR is lastGPT for an MBR.
func lastMBR(t *mbr.Table, n int) *mbr.Partition {
	if n < 1 || n > len(t.Partitions) {
		return nil
	}
	root := t.Partitions[n-1]
	for _, p := range t.Partitions {
		if p != root && p.Type != mbr.Empty && p.Size > 0 && p.Start+p.Size > root.Start {
			return nil
		}
	}
	return root
}

// growExt4 checks and grows the ext4 root to fill root.Size, offline.
// resize2fs sets a regular file's length to the filesystem's new end, which
// for a partition would cut the disk there: a partition is grown through a
// loop device bounded to it (root only).
func growExt4(ctx context.Context, f *os.File, root Root, log *slog.Logger) (Root, error) {
	info, err := f.Stat()
	if err != nil {
		return Root{}, err
	}
	dev := f.Name()
	if root.Offset != 0 {
		out, err := exec.CommandContext(ctx, "losetup", "--find", "--show",
			"--offset", strconv.FormatInt(root.Offset, 10), "--sizelimit", strconv.FormatInt(root.Size, 10), f.Name()).CombinedOutput()
		if err != nil {
			return Root{}, fmt.Errorf("%s: loop device to grow it: %s", root, oneLine(out, err, f.Name()))
		}
		dev = strings.TrimSpace(string(out))
		defer func() {
			if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
				log.Warn("rootfs: loop device left attached", "dev", dev, "err", oneLine(out, err))
			}
		}()
	}
	// resize2fs wants a fresh check. Exit codes 1 and 2 mean errors fixed.
	if out, err := exec.CommandContext(ctx, "e2fsck", "-f", "-p", dev).CombinedOutput(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() >= 4 {
			return Root{}, fmt.Errorf("%s: the filesystem has errors e2fsck cannot repair (%s): %w", root, oneLine(out, err, f.Name()), ErrInvalidImage)
		}
	}
	if out, err := exec.CommandContext(ctx, "resize2fs", dev).CombinedOutput(); err != nil {
		return Root{}, fmt.Errorf("%s: resize2fs: %s", root, oneLine(out, err, f.Name()))
	}
	// A whole-drive filesystem ends on a block: the drive keeps its size.
	if err := f.Truncate(info.Size()); err != nil {
		return Root{}, fmt.Errorf("restore the drive's size: %w", errors.Unwrap(err))
	}
	sb, err := readSuperblock(f, root.Offset)
	if err != nil {
		return Root{}, err
	}
	log.Info("rootfs: filesystem grown", "fs", root.FS, "from", root.FSSize, "to", sb.size)
	root.FSSize = sb.size
	return root, nil
}

// GrowMounted grows the xfs (xfs_growfs, xfsprogs) or btrfs (btrfs
// filesystem resize max, btrfs-progs) root mounted at dir to fill its
// device, when root.CanGrow. ext4 is grown offline by Grow and left alone
// here.
func GrowMounted(ctx context.Context, root Root, dir string) error {
	var cmd *exec.Cmd
	switch {
	case !root.CanGrow():
		return nil
	case root.FS == FSXFS:
		cmd = exec.CommandContext(ctx, "xfs_growfs", "-d", dir)
	case root.FS == FSBtrfs:
		cmd = exec.CommandContext(ctx, "btrfs", "filesystem", "resize", "max", dir)
	default:
		return nil
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("grow the %s root: %s", root.FS, oneLine(out, err, dir))
	}
	return nil
}

// notLooped refuses a file that a loop device is bound to.
func notLooped(path string) error {
	want, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: cannot open the drive: %w", ErrNoRoot, errors.Unwrap(err))
	}
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, b := range backing {
		data, err := os.ReadFile(b)
		if err != nil {
			continue
		}
		if info, err := os.Stat(strings.TrimSuffix(string(data), "\n")); err == nil && os.SameFile(info, want) {
			return fmt.Errorf("%w: a loop device (%s) holds it", ErrInUse, filepath.Base(filepath.Dir(filepath.Dir(b))))
		}
	}
	return nil
}

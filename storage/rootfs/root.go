package rootfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Filesystem types FindRoot recognises, named as mount(2) names them.
const (
	FSExt4  = "ext4" // ext2, ext3 and ext4 alike: the ext4 driver mounts them all
	FSXFS   = "xfs"
	FSBtrfs = "btrfs"
)

// Root is where the root filesystem of a boot drive lies. Offset and Size
// are what a loop device needs (LoopInfo64 lo_offset and lo_sizelimit) to
// present the filesystem alone.
type Root struct {
	FS     string // FSExt4, FSXFS or FSBtrfs
	Offset int64  // bytes from the start of the drive
	Size   int64  // bytes the filesystem may use: the partition, or the rest of the drive
	// FSSize is the filesystem's own size from its superblock; below Size
	// it can be grown (Grow, GrowMounted).
	FSSize int64
	// Table is "gpt", "mbr", or "" for a filesystem on the whole drive;
	// Partition is then the root's 1-based number in it (0 for none).
	Table     string
	Partition int
	// slack is the room below which the filesystem cannot grow (its tools
	// drop a last allocation group that would be too small).
	slack int64
}

// CanGrow reports whether the filesystem is smaller than the room it has by
// enough for its tools to grow it.
func (r Root) CanGrow() bool { return r.Size-r.FSSize >= max(r.slack, mib) }

// Rooted on the whole drive or in a partition, for logs.
func (r Root) String() string {
	if r.Table == "" {
		return r.FS + " on the whole drive"
	}
	return fmt.Sprintf("%s in %s partition %d", r.FS, r.Table, r.Partition)
}

const (
	xfsMagic           = "XFSB"
	btrfsSuperOffset   = 64 << 10
	btrfsMagic         = "_BHRfS_M"
	btrfsMagicOffset   = btrfsSuperOffset + 0x40
	superblockReadSize = btrfsSuperOffset + 4096 // covers the three superblocks
	mbrLinux           = 0x83
)

// Partition types the root is looked for in (UAPI "Discoverable Partitions
// Specification"): the root type of this architecture, else generic Linux
// data.
var (
	gptRootTypes = map[string]gpt.Type{
		"amd64": gpt.LinuxRootX86_64,
		"arm64": gpt.LinuxRootArm64,
	}
	gptLinuxData = gpt.LinuxFilesystem
)

// fsInfo is what a superblock tells.
type fsInfo struct {
	fs    string // "" for none FindRoot knows
	size  int64
	slack int64 // see Root.slack
}

// superblock reads the filesystem at the start of head (superblockReadSize
// bytes, zero-padded).
func superblock(head []byte) fsInfo {
	switch {
	case binary.LittleEndian.Uint16(head[ext4MagicOffset:]) == ext4Magic:
		sb := head[ext4SuperblockOffset:]
		blocks := uint64(binary.LittleEndian.Uint32(sb[0x04:]))
		if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
			blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
		}
		block := int64(1) << (10 + min(binary.LittleEndian.Uint32(sb[0x18:]), 16))
		// resize2fs drops a last group shorter than its inode table and
		// 50 blocks; more than that is room to grow.
		inodeTable := int64(binary.LittleEndian.Uint32(sb[0x28:])) * int64(binary.LittleEndian.Uint16(sb[0x58:]))
		return fsInfo{fs: FSExt4, size: int64(blocks) * block, slack: inodeTable + 64*block}
	case string(head[:4]) == xfsMagic:
		return fsInfo{fs: FSXFS, size: int64(binary.BigEndian.Uint64(head[8:]) * uint64(binary.BigEndian.Uint32(head[4:])))}
	case string(head[btrfsMagicOffset:btrfsMagicOffset+8]) == btrfsMagic:
		return fsInfo{fs: FSBtrfs, size: int64(binary.LittleEndian.Uint64(head[btrfsSuperOffset+0x70:]))}
	}
	return fsInfo{}
}

// readSuperblock reads the superblock area of the filesystem at off.
func readSuperblock(f *os.File, off int64) (fsInfo, error) {
	head := make([]byte, superblockReadSize)
	if _, err := f.ReadAt(head, off); err != nil && !errors.Is(err, io.EOF) {
		return fsInfo{}, fmt.Errorf("read at %d: %w", off, errors.Unwrap(err))
	}
	return superblock(head), nil
}

// FindRoot finds the root filesystem of the boot drive image at path: an
// ext4, xfs or btrfs filesystem on the whole drive, or a partition of an MBR
// or GPT partitioned disk. In a partitioned disk the root is, in order: the
// GPT partition of this architecture's root type; the only Linux partition
// (GPT generic Linux data, MBR 0x83) holding a filesystem; among several,
// the first holding /sbin/init; else the largest. Telling several apart
// reads ext4 through debugfs (e2fsprogs) and mounts xfs and btrfs read-only,
// noexec, nodev and nosuid in a private temporary directory (root only).
//
// An xfs or btrfs root also needs the host kernel's support
// (KernelSupports). Errors wrap ErrNoRoot or ErrNoKernelSupport with a
// one-line reason that names no host path. MBR logical partitions and disks
// of 4 KiB sectors are not read.
func FindRoot(ctx context.Context, path string, log *slog.Logger) (Root, error) {
	f, root, err := openRoot(ctx, path, os.O_RDONLY, log)
	if err != nil {
		return Root{}, err
	}
	defer f.Close()
	if root.FS != FSExt4 {
		if err := KernelSupports(root.FS); err != nil {
			return Root{}, err
		}
	}
	return root, nil
}

// openRoot opens the drive image at path (flag: os.O_RDONLY or os.O_RDWR)
// and finds its root. log may be nil.
func openRoot(ctx context.Context, path string, flag int, log *slog.Logger) (*os.File, Root, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, Root{}, fmt.Errorf("%w: cannot open the drive: %w", ErrNoRoot, errors.Unwrap(err))
	}
	root, err := findRoot(ctx, f, log)
	if err != nil {
		f.Close()
		return nil, Root{}, err
	}
	return f, root, nil
}

func findRoot(ctx context.Context, f *os.File, log *slog.Logger) (Root, error) {
	info, err := f.Stat()
	if err != nil {
		return Root{}, fmt.Errorf("%w: %w", ErrNoRoot, errors.Unwrap(err))
	}
	whole, err := readSuperblock(f, 0)
	if err != nil {
		return Root{}, fmt.Errorf("%w: %w", ErrNoRoot, err)
	}
	head := make([]byte, headSize)
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Root{}, fmt.Errorf("%w: %w", ErrNoRoot, errors.Unwrap(err))
	}
	// A stale btrfs superblock may survive at 64 KiB in a partitioned
	// disk's gap; ext4 and xfs superblocks cannot coexist with a table.
	if whole.fs == FSExt4 || whole.fs == FSXFS || (whole.fs == FSBtrfs && !hasPartitionTable(head)) {
		return Root{FS: whole.fs, Size: info.Size(), FSSize: whole.size, slack: whole.slack}, nil
	}
	if !hasPartitionTable(head) {
		return Root{}, fmt.Errorf("%w: the drive holds no ext4, xfs or btrfs filesystem and no partition table", ErrNoRoot)
	}
	parts, table, err := readPartitions(f)
	if err != nil {
		return Root{}, err
	}
	var candidates []Root
	for _, p := range parts {
		if !p.linux && !p.root {
			continue
		}
		if p.offset+p.size > info.Size() {
			if p.root {
				return Root{}, fmt.Errorf("%w: %s root partition %d ends past the end of the drive", ErrNoRoot, table, p.number)
			}
			log.Warn("rootfs: partition ends past the end of the drive", "partition", p.number)
			continue
		}
		sb, err := readSuperblock(f, p.offset)
		if err != nil {
			return Root{}, fmt.Errorf("%w: %s partition %d: %w", ErrNoRoot, table, p.number, err)
		}
		r := Root{FS: sb.fs, Offset: p.offset, Size: p.size, FSSize: sb.size, Table: table, Partition: p.number, slack: sb.slack}
		if p.root {
			if sb.fs == "" {
				return Root{}, fmt.Errorf("%w: %s root partition %d holds no ext4, xfs or btrfs filesystem", ErrNoRoot, table, p.number)
			}
			return r, nil
		}
		if sb.fs != "" {
			candidates = append(candidates, r)
		}
	}
	switch len(candidates) {
	case 0:
		return Root{}, fmt.Errorf("%w: no Linux partition of the %s partition table holds an ext4, xfs or btrfs filesystem", ErrNoRoot, table)
	case 1:
		return candidates[0], nil
	}
	largest := candidates[0]
	for _, c := range candidates {
		has, err := hasInit(ctx, f.Name(), c)
		if err != nil {
			log.Warn("rootfs: cannot look for /sbin/init", "partition", c.Partition, "fs", c.FS, "err", err)
		}
		if has {
			return c, nil
		}
		if c.Size > largest.Size {
			largest = c
		}
	}
	log.Info("rootfs: no Linux partition holds /sbin/init; taking the largest", "partition", largest.Partition)
	return largest, nil
}

// partition is one entry of a partition table.
type partition struct {
	number       int
	offset, size int64 // bytes
	root, linux  bool  // GPT root type of this architecture; Linux data (GPT) or 0x83 (MBR)
}

// readPartitions reads the GPT (checksums verified, the backup taken when
// the primary is damaged) or else the MBR of f.
func readPartitions(f *os.File) ([]partition, string, error) {
	var parts []partition
	g, gerr := gpt.Read(f, sectorSize, sectorSize)
	if gerr == nil {
		for _, p := range g.Partitions {
			if p.End < p.Start {
				continue
			}
			parts = append(parts, partition{
				number: p.Index,
				offset: int64(p.Start) * sectorSize,
				size:   int64(p.End-p.Start+1) * sectorSize,
				root:   strings.EqualFold(string(p.Type), string(gptRootTypes[runtime.GOARCH])),
				linux:  strings.EqualFold(string(p.Type), string(gptLinuxData)),
			})
		}
		return parts, "gpt", nil
	}
	head := make([]byte, sectorSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, "", fmt.Errorf("%w: partition table unreadable: %w", ErrNoRoot, errors.Unwrap(err))
	}
	if string(head[sectorSize-2:]) == "\x55\xaa" && head[446+4] == 0xee {
		return nil, "", fmt.Errorf("%w: GPT partition table unreadable (%s)", ErrNoRoot, gerr)
	}
	m, err := mbr.Read(f, sectorSize, sectorSize)
	if err != nil {
		return nil, "", fmt.Errorf("%w: partition table unreadable (%s)", ErrNoRoot, err)
	}
	for _, p := range m.Partitions {
		if p.Type == mbr.Empty || p.Size == 0 {
			continue
		}
		parts = append(parts, partition{
			number: p.Index,
			offset: int64(p.Start) * sectorSize,
			size:   int64(p.Size) * sectorSize,
			linux:  p.Type == mbrLinux,
		})
	}
	return parts, "mbr", nil
}

// hasInit reports whether the filesystem of root in the image at path has
// /sbin/init: through debugfs for ext4 (no mount), by a read-only mount for
// the others, once Check has passed them.
func hasInit(ctx context.Context, path string, root Root) (bool, error) {
	if root.FS == FSExt4 {
		// e2fsprogs reads at an offset inside the image (`?offset=`).
		out, err := exec.CommandContext(ctx, "debugfs", "-R", "stat /sbin/init", e2fsPath(path, root)).Output()
		if err != nil {
			return false, fmt.Errorf("debugfs: %w", err)
		}
		return bytes.Contains(out, []byte("Inode:")), nil
	}
	if err := KernelSupports(root.FS); err != nil {
		return false, err
	}
	dir, err := os.MkdirTemp("", "hearth-probe-")
	if err != nil {
		return false, err
	}
	defer os.Remove(dir)
	// The partition alone, read-only; checked before the kernel mounts it.
	loop, err := exec.CommandContext(ctx, "losetup", "--find", "--show", "--read-only",
		"--offset", strconv.FormatInt(root.Offset, 10), "--sizelimit", strconv.FormatInt(root.Size, 10), path).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("losetup: %s", oneLine(loop, err, path))
	}
	dev := strings.TrimSpace(string(loop))
	defer exec.Command("losetup", "--detach", dev).Run()
	if err := Check(ctx, dev, root.FS, true); err != nil {
		return false, err
	}
	opts := "ro,noexec,nodev,nosuid"
	// A dirty log is not replayed onto the drive.
	switch root.FS {
	case FSXFS:
		opts += ",norecovery"
	case FSBtrfs:
		opts += ",rescue=nologreplay"
	}
	if out, err := exec.CommandContext(ctx, "mount", "-t", root.FS, "-o", opts, dev, dir).CombinedOutput(); err != nil {
		return false, fmt.Errorf("mount: %s", oneLine(out, err))
	}
	defer exec.Command("umount", dir).Run()
	return treeHasInit(dir)
}

// e2fsPath names the filesystem of root for e2fsprogs' tools: the image,
// with the partition's offset as an I/O option.
func e2fsPath(path string, root Root) string {
	if root.Offset == 0 {
		return path
	}
	return path + "?offset=" + strconv.FormatInt(root.Offset, 10)
}

// oneLine is a command's failure as one line naming no host path: its
// output, lines joined, with each of paths replaced by its base name; else
// err.
func oneLine(out []byte, err error, paths ...string) string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", "; ")), " ")
	if msg == "" {
		msg = err.Error()
	}
	for _, p := range paths {
		msg = strings.ReplaceAll(msg, p, filepath.Base(p))
	}
	return msg
}

// KernelSupports reports whether the host kernel mounts filesystems of type
// fs (as /proc/filesystems lists them), loading its module with modprobe
// when it is not loaded yet. The error wraps ErrNoKernelSupport.
func KernelSupports(fs string) error {
	if kernelLists(fs) {
		return nil
	}
	out, err := exec.Command("modprobe", "-q", fs).CombinedOutput()
	if kernelLists(fs) {
		return nil
	}
	reason := "not built in"
	if err != nil {
		reason = "modprobe " + fs + ": " + oneLine(out, err)
	}
	return fmt.Errorf("%s root: %w (%s)", fs, ErrNoKernelSupport, reason)
}

func kernelLists(fs string) bool {
	data, err := os.ReadFile("/proc/filesystems")
	return err == nil && filesystemsList(data, fs)
}

// filesystemsList reports whether the /proc/filesystems text data lists fs.
func filesystemsList(data []byte, fs string) bool {
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[len(fields)-1] == fs {
			return true
		}
	}
	return false
}

package rootfs

import (
	"archive/tar"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// kind is what detect found at the start of a file.
type kind struct {
	format      Format // FormatTar for any tar (container images are told apart once unpacked)
	compression string // "gzip", "zstd", "bzip2" or ""
}

const (
	ext4SuperblockOffset = 1024
	ext4MagicOffset      = ext4SuperblockOffset + 56
	ext4Magic            = 0xef53
	sectorSize           = 512
	// headSize covers an MBR, a GPT header and the ext4, xfs and btrfs
	// superblocks.
	headSize   = superblockReadSize
	qcow2Magic = "QFI\xfb"
)

// detect tells by content what r holds: a raw ext2/3/4, xfs or btrfs
// filesystem, a partitioned disk or a tar archive, any of them possibly
// compressed, or a qcow2 image (not compressed).
func detect(r io.ReaderAt) (kind, error) {
	rc, compression, err := decompress(bufio.NewReaderSize(io.NewSectionReader(r, 0, 1<<62), headSize))
	if err != nil {
		return kind{}, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, headSize)
	head, err := br.Peek(headSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return kind{}, fmt.Errorf("%s: %v: %w", compression, err, ErrInvalidImage)
	}
	if len(head) == 0 {
		return kind{}, fmt.Errorf("empty file: %w", ErrUnknownFormat)
	}
	k, err := classify(head, br)
	if err != nil && compression != "" {
		return kind{}, fmt.Errorf("%s-compressed file: %w", compression, err)
	}
	if k.format == FormatQcow2 && compression != "" {
		return kind{}, fmt.Errorf("%s-compressed qcow2 image (decompress it first): %w", compression, ErrUnsupported)
	}
	k.compression = compression
	return k, err
}

// classify tells the format from the first bytes of the (uncompressed)
// content, head, and r, which reads that content from its start.
func classify(head []byte, r io.Reader) (kind, error) {
	if string(head[:min(len(head), len(qcow2Magic))]) == qcow2Magic {
		return kind{format: FormatQcow2}, nil
	}
	padded := make([]byte, superblockReadSize)
	copy(padded, head)
	// ext4 and xfs superblocks leave no room for a tar header or a
	// partition table; btrfs's, at 64 KiB, is looked at last.
	fs := superblock(padded).fs
	switch fs {
	case FSExt4:
		return kind{format: FormatExt4}, nil
	case FSXFS:
		return kind{format: FormatXFS}, nil
	}
	tarErr := isTar(r)
	if tarErr == nil {
		return kind{format: FormatTar}, nil
	}
	if hasPartitionTable(head) {
		return kind{format: FormatDisk}, nil
	}
	if fs == FSBtrfs {
		return kind{format: FormatBtrfs}, nil
	}
	return kind{}, tarErr
}

// isTar reads the first header of r. An archive with no entry at all is
// refused too: it would import as an empty drive, which nobody means.
func isTar(r io.Reader) error {
	_, err := tar.NewReader(r).Next()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("empty archive (or a file of zeros): %w", ErrUnknownFormat)
	default:
		return fmt.Errorf("not a tar archive, OCI layout, docker-save archive or ext4/disk image (%v): %w", err, ErrUnknownFormat)
	}
}

// hasPartitionTable reports a GPT header in sector 1, or an MBR signature
// with at least one plausible partition entry (a FAT boot sector has the
// signature too, but its partition area holds boot code).
func hasPartitionTable(head []byte) bool {
	if len(head) >= 2*sectorSize && string(head[sectorSize:sectorSize+8]) == "EFI PART" {
		return true
	}
	if len(head) < sectorSize || head[510] != 0x55 || head[511] != 0xaa {
		return false
	}
	valid := 0
	for i := range 4 {
		entry := head[446+16*i : 446+16*(i+1)]
		status, typ := entry[0], entry[4]
		if status != 0x00 && status != 0x80 {
			return false
		}
		if typ != 0 {
			if binary.LittleEndian.Uint32(entry[12:]) == 0 {
				return false
			}
			valid++
		}
	}
	return valid > 0
}

package rootfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// zeroBlock is what writeSparse compares against.
var zeroBlock = make([]byte, blockSize)

// writeSparse copies r into dst from offset off on, writing no all-zero
// block, and returns the bytes read. The caller truncates dst to its final
// size, so trailing zeros become a hole too. buf (a multiple of blockSize)
// is scratch space.
func writeSparse(ctx context.Context, dst *os.File, r io.Reader, off int64, buf []byte) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := fill(r, buf)
		for b := 0; b < n; b += blockSize {
			block := buf[b:min(b+blockSize, n)]
			if bytes.Equal(block, zeroBlock[:len(block)]) {
				continue
			}
			if _, werr := dst.WriteAt(block, off+total+int64(b)); werr != nil {
				return total, werr
			}
		}
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// fill reads into buf until it is full or r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// CopySparse copies the first n bytes of src to dst, skipping holes
// (SEEK_DATA/SEEK_HOLE) and all-zero blocks, so a downloaded, fully
// allocated image becomes sparse too.
func CopySparse(ctx context.Context, src, dst *os.File, n int64) error {
	return copySparse(ctx, src, src, dst, n)
}

// copySparse is CopySparse finding src's holes by its descriptor and
// reading its data through in.
func copySparse(ctx context.Context, src *os.File, in io.ReaderAt, dst *os.File, n int64) error {
	buf := make([]byte, mib)
	fd := int(src.Fd())
	for off := int64(0); off < n; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			data = off // no SEEK_DATA here: read everything
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > n {
			hole = n
		}
		if _, err := writeSparse(ctx, dst, io.NewSectionReader(in, data, hole-data), data, buf); err != nil {
			return err
		}
		off = hole
	}
	if p, ok := in.(*progressReaderAt); ok { // the holes count as read
		p.reached(n)
	}
	return nil
}

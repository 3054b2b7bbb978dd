package rootfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compression is a stream compression recognised by its magic number.
type compression struct {
	name  string
	magic []byte
	open  func(io.Reader) (io.ReadCloser, error) // nil: recognised, not read
}

// compressions are those of root-filesystem tarballs and image layers in the
// wild. klauspost/compress, already in the build through containerd, reads
// zstd, and gzip a little faster than the standard library.
var compressions = []compression{
	{"gzip", []byte{0x1f, 0x8b}, func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, func(r io.Reader) (io.ReadCloser, error) {
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}},
	{"bzip2", []byte{'B', 'Z', 'h'}, func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(bzip2.NewReader(r)), nil }},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, nil},
}

// decompress returns the content of r, undoing the compression its first
// bytes show, and the compression's name ("" for none).
func decompress(r *bufio.Reader) (io.ReadCloser, string, error) {
	head, _ := r.Peek(8)
	for _, c := range compressions {
		if !bytes.HasPrefix(head, c.magic) {
			continue
		}
		if c.open == nil {
			return nil, "", fmt.Errorf("%s-compressed (gzip, zstd and bzip2 are read): %w", c.name, ErrUnsupported)
		}
		rc, err := c.open(r)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v: %w", c.name, err, ErrInvalidImage)
		}
		return rc, c.name, nil
	}
	return io.NopCloser(r), "", nil
}

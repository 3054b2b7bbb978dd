package api

import (
	"context"
	"errors"
	"io"
	"strings"

	"hearth/storage"
	"hearth/storage/rootfs"
	"hearth/web/eh"
)

// ImportFormats are the formats an import may ask for, by the name a form
// sends ("" detects the format from the content), in the order a form
// offers them.
var ImportFormats = []ImportFormat{
	{"", "Detect from the content", nil},
	{"tar", "Root-filesystem tarball (.tar, .tar.gz, .tar.zst)", []rootfs.Format{rootfs.FormatTar}},
	{"oci", "OCI image or docker save archive", []rootfs.Format{rootfs.FormatOCI, rootfs.FormatDockerArchive}},
	{"raw", "Raw disk or filesystem image (ext4, xfs, btrfs, MBR/GPT)", []rootfs.Format{rootfs.FormatExt4, rootfs.FormatXFS, rootfs.FormatBtrfs, rootfs.FormatDisk}},
	{"qcow2", "qcow2 image", []rootfs.Format{rootfs.FormatQcow2}},
}

// ImportFormat is one choice of ImportFormats.
type ImportFormat struct {
	Name    string
	Label   string
	formats []rootfs.Format
}

// ImportOptions describe a library image to import.
type ImportOptions struct {
	Name   string // of the library drive (required)
	Format string // one of ImportFormats' names
	Size   string // optional: the drive's size, as the API writes sizes; default: the content plus headroom
	File   string // the uploaded file's name, for messages
}

// StagedImport is an import whose file has been received; Import or
// Discard it.
type StagedImport struct {
	caller     Caller
	opts       ImportOptions
	importOpts []rootfs.Option
	upload     *storage.Upload
}

// Size is the received file's length in bytes.
func (st *StagedImport) Size() int64 { return st.upload.Size }

// Discard deletes the received file.
func (st *StagedImport) Discard() { st.upload.Remove() }

// CheckImport checks an import before its file is sent: admins only, a
// name, a known format, a valid size.
func CheckImport(c Caller, o ImportOptions) ([]rootfs.Option, error) {
	if !c.Admin {
		return nil, eh.Forbiddenf("only admins import images into the library")
	}
	if strings.TrimSpace(o.Name) == "" {
		return nil, atKey("name", eh.Usagef("give the library image a name"))
	}
	var opts []rootfs.Option
	i := formatIndex(o.Format)
	if i < 0 {
		return nil, atKey("format", eh.Usagef("format %q: choose one of the formats offered", o.Format))
	}
	if f := ImportFormats[i].formats; f != nil {
		opts = append(opts, rootfs.WithFormats(f...))
	}
	if o.Size != "" {
		size, err := eh.ParseSize(o.Size)
		if err != nil {
			return nil, atKey("size", eh.Usagef("size %s: %v", o.Size, err))
		}
		opts = append(opts, rootfs.WithSize(size))
	}
	return opts, nil
}

func formatIndex(name string) int {
	for i, f := range ImportFormats {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// StageImport checks an import (CheckImport) and receives its file from
// body onto the data disk, streaming; expected is the length announced
// (-1: unknown), refused at once when the disk cannot hold it.
func (s *Service) StageImport(ctx context.Context, c Caller, o ImportOptions, body io.Reader, expected int64) (*StagedImport, error) {
	opts, err := CheckImport(c, o)
	if err != nil {
		return nil, err
	}
	up, err := s.store.ReceiveUpload(bodyReader{body}, expected)
	if err != nil {
		var be bodyError
		if errors.As(err, &be) {
			return nil, eh.Usagef("the upload of %s was cut off: %v", o.File, be.err)
		}
		return nil, apiError(err)
	}
	return &StagedImport{caller: c, opts: o, importOpts: opts, upload: up}, nil
}

// Imported is what an import made.
type Imported struct {
	Drive eh.Props
	// What says what the file was, in words ("a qcow2 image holding a raw
	// ext4 filesystem image, gzip-compressed").
	What string
}

// Import turns a staged file into a library image owned by its caller,
// readable by everyone (as `hearth image import` publishes), reporting to
// progress how much of the file it has read. The file is deleted, whatever
// the outcome. Errors say plainly what is wrong with the file.
func (s *Service) Import(ctx context.Context, st *StagedImport, progress func(done, total int64)) (Imported, error) {
	defer st.Discard()
	opts := append([]rootfs.Option{rootfs.WithLogger(s.log.With("import", st.opts.Name))}, st.importOpts...)
	if progress != nil {
		opts = append(opts, rootfs.WithProgress(progress))
	}
	d, res, err := s.store.ImportImage(ctx, st.caller.ID, strings.TrimSpace(st.opts.Name), st.upload.Path, opts...)
	if err != nil {
		s.log.Warn("import failed", "user", st.caller.ID, "file", st.opts.File, "name", st.opts.Name, "err", err)
		return Imported{}, importError(st.opts.File, err)
	}
	what := res.Format.Describe()
	if res.Format == rootfs.FormatQcow2 { // archives all become ext4: said only of what a qcow2 held
		what += " holding " + res.Content.Describe()
	}
	if res.Compression != "" {
		what += ", " + res.Compression + "-compressed"
	}
	s.log.Info("imported a library image", "user", st.caller.ID, "file", st.opts.File, "name", d.Name, "drive", d.ID, "format", what, "bytes", d.Size)
	return Imported{Drive: s.driveProps(d, false), What: what}, nil
}

// importError says what is wrong with an imported file, plainly.
func importError(file string, err error) error {
	// The detail without the sentinel's words, which the sentence says.
	detail := func(sentinel error) string {
		return strings.TrimSuffix(err.Error(), ": "+sentinel.Error())
	}
	switch {
	case errors.Is(err, rootfs.ErrUnknownFormat):
		d := detail(rootfs.ErrUnknownFormat)
		if strings.Contains(d, "not a tar archive") { // the list of what it is not, said better
			d = "it is no root-filesystem tarball, OCI or docker save archive, raw disk or filesystem image, or qcow2 image"
		}
		return eh.Usagef("%s is not an image Hearth can import: %s", file, d)
	case errors.Is(err, rootfs.ErrOtherFormat):
		return eh.Usagef("%s is not the format chosen: %s; choose its format, or let Hearth detect it", file, detail(rootfs.ErrOtherFormat))
	case errors.Is(err, rootfs.ErrInvalidImage):
		return eh.Usagef("%s is damaged or incomplete: %s", file, detail(rootfs.ErrInvalidImage))
	case errors.Is(err, rootfs.ErrUnsafePath), errors.Is(err, rootfs.ErrUnsupported), errors.Is(err, rootfs.ErrTooSmall):
		return eh.Usagef("%s cannot be imported: %v", file, err)
	}
	return apiError(err)
}

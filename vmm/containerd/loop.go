package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"hearth/vmm/guest"

	"golang.org/x/sys/unix"
)

// loopDevice is a loop device and the image file behind it, as recorded in a
// guest's labels so that a later Hearth can detach exactly what it attached.
type loopDevice struct {
	Device string `json:"dev"`  // /dev/loopN
	File   string `json:"file"` // absolute path of the backing image, symlinks resolved
	// Base is the device's I/O count when it was attached: the kernel keeps
	// counting across reuses of a loop device, so a guest's I/O is the difference.
	Base guest.DiskCounters `json:"base"`
}

// loopConfig is how a loop device presents its file.
type loopConfig struct {
	ReadOnly bool
	// Autoclear has the kernel detach the device on its last close.
	Autoclear bool
	// Offset and SizeLimit (0: to the end) present part of the file, such
	// as the root partition of a partitioned drive.
	Offset, SizeLimit int64
}

// attachLoop binds file to a free loop device. The returned *os.File holds
// the device open: with autoclear the kernel detaches the device on its last
// close, so the caller keeps it open until something else (the root mount)
// holds the device, then closes it.
func attachLoop(file string, lc loopConfig) (loopDevice, *os.File, error) {
	abs, err := filepath.Abs(file)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return loopDevice{}, nil, fmt.Errorf("image %s: %w", file, err)
	}
	mode := os.O_RDWR
	var flags uint32
	if lc.ReadOnly {
		mode = os.O_RDONLY
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	if lc.Autoclear {
		flags |= unix.LO_FLAGS_AUTOCLEAR
	}
	backing, err := os.OpenFile(abs, mode, 0)
	if err != nil {
		return loopDevice{}, nil, fmt.Errorf("image %s: %w", file, err)
	}
	defer backing.Close()

	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return loopDevice{}, nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()

	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = flags
	cfg.Info.Offset, cfg.Info.Sizelimit = uint64(lc.Offset), uint64(lc.SizeLimit)
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], abs)
	// Another process may take the free device between the two calls; the
	// kernel then answers EBUSY and we ask again.
	for attempt := 0; attempt < 100; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return loopDevice{}, nil, fmt.Errorf("loop devices: get free: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := openLoopNode(dev, n, mode)
		if err != nil {
			return loopDevice{}, nil, err
		}
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if err == nil {
			l := loopDevice{Device: dev, File: abs}
			l.Base, _ = l.stat()
			return l, f, nil
		}
		f.Close()
		if !errors.Is(err, unix.EBUSY) {
			return loopDevice{}, nil, fmt.Errorf("attach %s to %s: %w", abs, dev, err)
		}
	}
	return loopDevice{}, nil, fmt.Errorf("attach %s: no free loop device after 100 attempts: %w", abs, unix.EBUSY)
}

// openLoopNode opens /dev/loopN, creating the node where no devtmpfs did.
func openLoopNode(dev string, n, mode int) (*os.File, error) {
	f, err := os.OpenFile(dev, mode, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", dev, err)
		}
		f, err = os.OpenFile(dev, mode, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	return f, nil
}

// loopBacking reports the file behind a loop device, "" when it is free.
func loopBacking(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
}

// detach releases l if the device still belongs to l's file (the number may
// have been reused by someone else since it was recorded). A device still
// open or mounted is marked autoclear by the kernel and goes with its last user.
func (l loopDevice) detach() error {
	if l.Device == "" || loopBacking(l.Device) != l.File {
		return nil
	}
	f, err := os.OpenFile(l.Device, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("detach %s: %w", l.Device, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s (%s): %w", l.Device, l.File, err)
	}
	return nil
}

// counters is the I/O of the guest since the device was attached to it.
func (l loopDevice) counters() (guest.DiskCounters, error) {
	now, err := l.stat()
	if err != nil {
		return guest.DiskCounters{}, err
	}
	since := func(now, base uint64) uint64 {
		if now < base { // the device was recreated: count from zero
			return now
		}
		return now - base
	}
	return guest.DiskCounters{
		ReadBytes:     since(now.ReadBytes, l.Base.ReadBytes),
		ReadRequests:  since(now.ReadRequests, l.Base.ReadRequests),
		WriteBytes:    since(now.WriteBytes, l.Base.WriteBytes),
		WriteRequests: since(now.WriteRequests, l.Base.WriteRequests),
	}, nil
}

// stat reads /sys/block/loopN/stat (sectors are 512 bytes).
func (l loopDevice) stat() (guest.DiskCounters, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(l.Device), "stat"))
	if err != nil {
		return guest.DiskCounters{}, err
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return guest.DiskCounters{}, fmt.Errorf("%s stat: %d fields", l.Device, len(f))
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	return guest.DiskCounters{ReadRequests: n(0), ReadBytes: n(2) * 512, WriteRequests: n(4), WriteBytes: n(6) * 512}, nil
}

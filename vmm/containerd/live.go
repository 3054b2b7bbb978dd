package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"hearth/storage/rootfs"
	"hearth/vmm/guest"
)

// A read-only boot drive (a cdrom, a library image, another user's drive)
// boots a live system: its filesystem is mounted read-only and idmapped at
// DATA/run/ID/live/lower, and an overlayfs with that as its lower layer and
// a throwaway upper layer in DATA/run/ID/live/{upper,work} becomes the
// guest's root. The guest writes only to the upper layer, which goes with
// the run directory at stop, delete and crash recovery; the drive stays
// byte for byte what it was, and any number of servers boot it at once,
// each with its own upper layer.
//
// Ownership needs no idmapping of the overlay itself (overlayfs does not
// allow that): the lower layer is idmapped, so its files read as the
// guest's host ids; overlayfs creates and copies up upper files with the
// owner the calling guest process (or the lower file) has, i.e. host ids
// inside the guest's range, and the upper directory is given the lower
// root's owner and mode. Guest root therefore owns / as on the drive.

// liveDirName is the live system's layers under DATA/run/ID.
const liveDirName = "live"

// mountLive mounts the read-only filesystem fs on dev as a live root at
// rootDir, its layers under guestDir/live.
func mountLive(fs, dev, guestDir, rootDir string, idmap func(mfd int) error) (err error) {
	live := filepath.Join(guestDir, liveDirName)
	lower, upper, work := filepath.Join(live, "lower"), filepath.Join(live, "upper"), filepath.Join(live, "work")
	if err := mountRoot(fs, dev, lower, true, idmap); err != nil {
		return err
	}
	// overlayfs holds private clones of its layers: the lower mount is not
	// needed once the overlay exists (nor on failure).
	defer func() {
		if uerr := unmountRoot(lower); uerr != nil && err == nil {
			err = uerr
		}
	}()
	var st unix.Stat_t
	if err := unix.Stat(lower, &st); err != nil {
		return fmt.Errorf("the live root's lower layer: %w", err)
	}
	for _, dir := range []string{upper, work} {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("the live root's layers: %w", err)
		}
	}
	// The overlay's root directory is the upper one: it must look like the
	// drive's root to the guest.
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("the live root's upper layer: %w", err)
	}
	if err := unix.Chmod(upper, st.Mode&0o7777); err != nil {
		return fmt.Errorf("the live root's upper layer: %w", err)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%w: the live root needs overlayfs: %w", guest.ErrBootDrive, err)
	}
	defer unix.Close(fsfd)
	// The layers are named through file descriptors: the overlay's mount
	// options, which the guest reads in /proc/mounts, then show
	// /proc/self/fd/N instead of host paths.
	var layers [3]string
	for i, dir := range []string{lower, upper, work} {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("the live root's layers: %w", err)
		}
		defer unix.Close(fd)
		layers[i] = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	for _, kv := range overlayOptions(layers[0], layers[1], layers[2]) {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("the live root's overlay (%s): %s", kv[0], fsContextError(fsfd, err))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		// The kernel's reason names the layers; the server's owner sees
		// it, so not with their host paths.
		reason := strings.ReplaceAll(fsContextError(fsfd, err), live+"/", "")
		return fmt.Errorf("%w: the live root's overlay cannot be made: %s", guest.ErrBootDrive, reason)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("the live root's overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return err
	}
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, rootDir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the live root at %s: %w", rootDir, err)
	}
	return nil
}

// overlayOptions are the live root's overlay parameters. The lower layer is
// a tenant's filesystem: overlayfs's own extended attributes found in it
// (redirects, metacopy) are not followed, and nothing is indexed.
func overlayOptions(lower, upper, work string) [][2]string {
	return [][2]string{
		{"lowerdir", lower},
		{"upperdir", upper},
		{"workdir", work},
		{"redirect_dir", "nofollow"},
		{"metacopy", "off"},
		{"index", "off"},
	}
}

// Under Kata the guest's own kernel mounts the root, so there is no host
// mount to lay an overlay on: a read-only boot drive boots from a
// throwaway copy instead, DATA/run/ID/live/disk.img, a reflink where the
// filesystem of DATA has them (xfs, btrfs: instant, no space) and else a
// sparse copy of the drive's data; the guest writes to the copy, which goes
// with the run directory at stop, delete and crash recovery.
const liveDiskName = "disk.img"

// liveCopy makes the throwaway copy of the drive image at src for the
// guest whose run directory is guestDir and returns its path.
func liveCopy(ctx context.Context, src, guestDir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("%w: cannot open the drive: %w", guest.ErrBootDrive, errors.Unwrap(err))
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(guestDir, liveDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, liveDiskName)
	out, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	defer out.Close()
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if err := out.Truncate(st.Size()); err != nil {
			return "", fmt.Errorf("live copy of the boot drive: %w", err)
		}
		if err := rootfs.CopySparse(ctx, in, out, st.Size()); err != nil {
			return "", fmt.Errorf("live copy of the boot drive: %w", err)
		}
	}
	return path, out.Close()
}

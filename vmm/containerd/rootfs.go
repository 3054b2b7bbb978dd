package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"hearth/storage/rootfs"
	"hearth/vmm/guest"
)

// A boot drive is made ready in steps, so that each can be undone: its root
// filesystem is found (a bare filesystem or a partition), grown to fill its
// room when the drive is writable, and presented alone by a loop device
// (offset and size limit); under runc it is then mounted by Hearth at
// DATA/run/ID/rootfs with the guest's ids mapped, and runc gets that
// directory as the container's root. Under Kata the VM mounts the loop
// device itself (hot-plugged as a block device).

// rootDirName is the guest's root under DATA/run/ID.
const rootDirName = "rootfs"

// findBootRoot finds the boot drive's root filesystem and, for a writable
// drive, grows it first (offline: before a loop device holds the drive).
// Errors wrap guest.ErrBootDrive (guest.ErrBusy for a drive a loop device
// holds) and name no host path.
func findBootRoot(ctx context.Context, boot guest.Disk, log *slog.Logger) (rootfs.Root, error) {
	var (
		root rootfs.Root
		err  error
	)
	if boot.ReadOnly {
		root, err = rootfs.FindRoot(ctx, boot.Image, log)
	} else if root, err = rootfs.Grow(ctx, boot.Image, log); err == nil && root.FS != rootfs.FSExt4 {
		err = rootfs.KernelSupports(root.FS)
	}
	switch {
	case errors.Is(err, rootfs.ErrInUse): // another guest's, or one ending right now
		return root, fmt.Errorf("boot drive: %w: %w", guest.ErrBusy, err)
	case err != nil:
		return root, fmt.Errorf("%w: %w", guest.ErrBootDrive, err)
	}
	return root, nil
}

// bootLoop is how the loop device presents the root filesystem alone.
func bootLoop(root rootfs.Root, readOnly bool) loopConfig {
	return loopConfig{ReadOnly: readOnly, Autoclear: true, Offset: root.Offset, SizeLimit: root.Size}
}

// mountRoot mounts the filesystem fs on the block device dev at dir:
// nodev (a tenant's device nodes open nothing on the host; suid stays, so
// su and sudo work in the guest), read-only for a read-only drive, and,
// when idmap is not nil, idmapped by it (usernsCache.idmap) so that the
// guest's ids are the ids on the drive (nothing is ever chowned). The mount is made detached and moved
// into place whole, so dir never shows a half-made mount.
func mountRoot(fs, dev, dir string, readOnly bool, idmap func(mfd int) error) error {
	fsfd, err := unix.Fsopen(fs, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("mount the %s root: %w", fs, err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return fmt.Errorf("mount the %s root: %w", fs, err)
	}
	if readOnly {
		for _, opt := range readOnlyOptions(fs) {
			var err error
			if key, value, ok := strings.Cut(opt, "="); ok {
				err = unix.FsconfigSetString(fsfd, key, value)
			} else {
				err = unix.FsconfigSetFlag(fsfd, opt)
			}
			if err != nil {
				return fmt.Errorf("mount the %s root read-only (%s): %w", fs, opt, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("%w: the %s root cannot be mounted: %s", guest.ErrBootDrive, fs, fsContextError(fsfd, err))
	}
	attrs := unix.MOUNT_ATTR_NODEV
	if readOnly {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("mount the %s root: %w", fs, err)
	}
	defer unix.Close(mfd)
	if idmap != nil {
		if err := idmap(mfd); err != nil {
			return fmt.Errorf("%w: the %s root cannot be idmapped: %w", guest.ErrBootDrive, fs, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the root at %s: %w", dir, err)
	}
	return nil
}

// readOnlyOptions are the mount options of a read-only drive's filesystem:
// ro, and no replay of a journal or log, which would write the drive (and
// which a read-only loop device refuses anyway).
func readOnlyOptions(fs string) []string {
	switch fs {
	case rootfs.FSExt4:
		return []string{"ro", "noload"}
	case rootfs.FSXFS:
		return []string{"ro", "norecovery"}
	case rootfs.FSBtrfs:
		return []string{"ro", "rescue=nologreplay"}
	}
	return []string{"ro"}
}

// fsContextError is the kernel's own reason for a failed fsconfig (read
// from the filesystem context, e.g. "ext4: VFS: Can't find ext4
// filesystem"), else err.
func fsContextError(fsfd int, err error) string {
	buf := make([]byte, 4096)
	var msgs []string
	for {
		n, rerr := unix.Read(fsfd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msg := strings.TrimSpace(string(buf[:n]))
		// "e ext4: message": severity, then the text
		if _, text, ok := strings.Cut(msg, " "); ok && (msg[0] == 'e' || msg[0] == 'w') {
			msgs = append(msgs, text)
		}
	}
	if len(msgs) == 0 {
		return err.Error()
	}
	return strings.Join(msgs, "; ")
}

// unmountRoot takes the guest's root away (the loop device, autoclear, goes
// with it). Nothing mounted there is no error.
func unmountRoot(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		// Something (a leftover process) still holds it: detach it now, the
		// superblock goes with the last user.
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount the guest's root: %w", err)
	}
	return nil
}

// removeRunDir removes DATA/run/ID after unmounting the guest's root from
// it. It never removes a directory a root is still mounted in: that would
// delete the guest's files.
// A live system's upper layer goes with it.
func (h *Host) removeRunDir(id string) error {
	dir := filepath.Join(h.runDir, id)
	for _, mnt := range []string{filepath.Join(dir, rootDirName), filepath.Join(dir, liveDirName, "lower")} {
		if err := unmountRoot(mnt); err != nil {
			return err
		}
		if mounted, _ := mountinfo.Mounted(mnt); mounted {
			return fmt.Errorf("guest %s: its root is still mounted; DATA/run/%s left in place", id, id)
		}
	}
	return os.RemoveAll(dir)
}

// guestInit is /sbin/init when the guest's root tree has one (any kind of
// file: it is often a symlink to systemd), else /bin/sh.
func guestInit(root string) string {
	if _, err := os.Lstat(filepath.Join(root, "sbin/init")); err != nil {
		return "/bin/sh"
	}
	return "/sbin/init"
}

// waitLoopCleared waits (a few seconds at most) until the kernel has let go
// of l after its last user: autoclear runs in a work item after the last
// close, and a drive a loop device still holds cannot be grown or started.
func waitLoopCleared(l loopDevice) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if loopBacking(l.Device) != l.File {
			return
		}
	}
}

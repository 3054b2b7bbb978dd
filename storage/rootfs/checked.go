package rootfs

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Checked remembers the drive images whose ext4 root the host last saw
// consistent — a Check that passed, or the host kernel's own clean unmount
// of a root it mounted — together with the image file's change time, so a
// start can skip Check while nothing can have written the image since.
//
// The kernel sets a file's change time (ctime) at every change of its
// bytes or size, whoever makes it: write(2) (API writes and uploads,
// imaging, e2fsprogs), a loop device (a Kata VM's or a guest's raw disk),
// mmap, truncate, fallocate, a clone into it; and nobody can set it back
// (utimes sets it to now). So no writer needs to remember to mark a drive:
// an image whose inode, size, mtime and ctime are as recorded holds the
// bytes that were found consistent. Only timestamps coarser than the
// clock make two changes look alike: a record is only made of a change
// time older than ctimeMargin (a few kernel ticks at the coarsest HZ).
//
// Records live in memory: after a restart of Hearth every drive is
// checked once again.
type Checked struct {
	mu   sync.Mutex
	seen map[fileID]checkedState
}

type fileID struct{ dev, ino uint64 }

// checkedState is the image as it was found consistent.
type checkedState struct {
	size, mtime, ctime int64 // bytes; nanoseconds since the epoch
	root               Root
	writable           bool // also good for a writable start (journal clean, nothing left to replay)
}

// ctimeMargin is how much older than now a change time must be to tell
// every later change apart from it: the kernel stamps files from a clock
// that moves once per tick (10 ms at HZ=100).
const ctimeMargin = 30 * time.Millisecond

// margin is ctimeMargin, or 2 s for a change time without nanoseconds: a
// filesystem that keeps whole seconds only (ext4 with 128-byte inodes).
func margin(ctime int64) time.Duration {
	if ctime%int64(time.Second) == 0 {
		return 2 * time.Second
	}
	return ctimeMargin
}

// NewChecked returns an empty record.
func NewChecked() *Checked { return &Checked{seen: map[fileID]checkedState{}} }

// age is how long ago the kernel stamped the change time ctime: measured
// on the wall clock the kernel stamps files from, never an injected one.
func age(ctime int64) time.Duration { return time.Since(time.Unix(0, ctime)) }

// Unchanged reports whether the image at path holds root exactly as it was
// last found consistent: good for a read-only start after any record, for
// a writable one only after a record that left nothing to replay.
func (c *Checked) Unchanged(path string, root Root, readOnly bool) bool {
	if root.FS != FSExt4 {
		return false
	}
	id, now, err := statImage(path)
	if err != nil {
		return false
	}
	c.mu.Lock()
	was, ok := c.seen[id]
	c.mu.Unlock()
	return ok && was.size == now.size && was.mtime == now.mtime && was.ctime == now.ctime &&
		was.root == root && (readOnly || was.writable)
}

// Passed records that Check(…, readOnly) passed on root of the image at
// path, if the image's change time is old enough to tell later changes
// apart (else it is simply not recorded). A check of a writable drive
// replays its journal first, so it is good for either kind of start.
func (c *Checked) Passed(path string, root Root, readOnly bool) {
	c.record(path, root, !readOnly)
}

// Unmounted records that the host kernel has let go of root of the image
// at path after mounting it writable — the caller makes sure the
// filesystem is really gone (its loop device released), not just detached
// — when its ext4 superblock says it was unmounted clean: no journal to
// replay, no error recorded. It waits out ctimeMargin when the unmount has
// just written the image (where times keep whole seconds only, it records
// nothing then: the next start checks).
func (c *Checked) Unmounted(path string, root Root) error {
	if root.FS != FSExt4 {
		return nil
	}
	if err := cleanExt4(path, root.Offset); err != nil {
		c.forget(path)
		return err
	}
	_, st, err := statImage(path)
	if err != nil {
		return err
	}
	if wait := margin(st.ctime) - age(st.ctime); wait > 0 && wait <= ctimeMargin {
		time.Sleep(wait)
	}
	c.record(path, root, true)
	return nil
}

func (c *Checked) record(path string, root Root, writable bool) {
	if root.FS != FSExt4 {
		return
	}
	id, st, err := statImage(path)
	if err != nil {
		return
	}
	if age(st.ctime) < margin(st.ctime) {
		c.forget(path)
		return
	}
	st.root, st.writable = root, writable
	c.mu.Lock()
	c.seen[id] = st
	c.mu.Unlock()
}

func (c *Checked) forget(path string) {
	if id, _, err := statImage(path); err == nil {
		c.mu.Lock()
		delete(c.seen, id)
		c.mu.Unlock()
	}
}

func statImage(path string) (fileID, checkedState, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, checkedState{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, checkedState{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}, nil
}

// ext4 superblock fields cleanExt4 reads (offsets in the superblock).
const (
	ext4State           = 0x3a  // le16: 1 unmounted clean, 2 errors detected
	ext4FeatureIncompat = 0x60  // le32
	ext4ErrorCount      = 0x194 // le32: errors the kernel recorded
	ext4StateValid      = 0x1
	ext4StateErrors     = 0x2
	ext4NeedsRecovery   = 0x4 // INCOMPAT_RECOVER: the journal holds what a mount would replay
)

// cleanExt4 is nil when the ext4 superblock at off in the image at path
// says the filesystem was unmounted clean.
func cleanExt4(path string, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, off+ext4SuperblockOffset); err != nil {
		return fmt.Errorf("read the ext4 superblock: %w", err)
	}
	state := binary.LittleEndian.Uint16(sb[ext4State:])
	switch {
	case binary.LittleEndian.Uint16(sb[ext4MagicOffset-ext4SuperblockOffset:]) != ext4Magic:
		return fmt.Errorf("%w: no ext4 superblock", ErrDamaged)
	case state&ext4StateValid == 0 || state&ext4StateErrors != 0 || binary.LittleEndian.Uint32(sb[ext4ErrorCount:]) != 0:
		return fmt.Errorf("%w: the kernel recorded ext4 errors", ErrDamaged)
	case binary.LittleEndian.Uint32(sb[ext4FeatureIncompat:])&ext4NeedsRecovery != 0:
		return fmt.Errorf("ext4 not unmounted clean: its journal needs replaying")
	}
	return nil
}

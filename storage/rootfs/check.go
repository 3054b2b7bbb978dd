package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ErrDamaged is a filesystem its checker finds damaged: the host kernel
// does not mount it.
var ErrDamaged = errors.New("filesystem damaged")

// CheckTimeout bounds one filesystem check. e2fsck -n -f reads a 1 GiB
// Debian root in about 0.3 s; a check still running after this long is
// refused rather than delaying a start without end.
const CheckTimeout = 2 * time.Minute

// Check checks the filesystem fs on dev (a block device or image file)
// before the host kernel mounts it, with the filesystem's own checker,
// within CheckTimeout:
//   - ext2/3/4: `e2fsck -n -f`, which writes nothing (exit status 4,
//     errors left uncorrected, or more refuses the filesystem). A writable
//     drive's journal, left by a guest killed mid-write, is replayed first
//     (`e2fsck -E journal_only -p`, what the kernel's mount would do
//     anyway): unreplayed, it reads as damage. A read-only drive's journal
//     is not replayed, by the check or by the mount (noload).
//   - xfs: `xfs_repair -n`. A log left dirty by a killed guest makes it
//     report what the mount's log replay will fix; for a writable drive that
//     alone is not damage.
//   - btrfs: `btrfs check --readonly`.
//
// A damaged filesystem, or a check that could not finish, is an error
// wrapping ErrDamaged with a one-line reason naming no host path.
func Check(ctx context.Context, dev, fs string, readOnly bool) error {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	var cmd *exec.Cmd
	switch fs {
	case FSExt4:
		if !readOnly {
			replay := exec.CommandContext(ctx, "e2fsck", "-E", "journal_only", "-p", dev)
			if out, err := replay.CombinedOutput(); err != nil && replay.ProcessState.ExitCode() >= 4 {
				return fmt.Errorf("%w: ext4 journal replay (e2fsck, exit %d): %s", ErrDamaged, replay.ProcessState.ExitCode(), checkSummary(out, dev))
			}
		}
		cmd = exec.CommandContext(ctx, "e2fsck", "-n", "-f", dev)
	case FSXFS:
		cmd = exec.CommandContext(ctx, "xfs_repair", "-n", dev)
	case FSBtrfs:
		cmd = exec.CommandContext(ctx, "btrfs", "check", "--readonly", dev)
	default:
		return fmt.Errorf("%w: no checker for a %s filesystem", ErrDamaged, fs)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: the %s check did not finish within %s", ErrDamaged, fs, CheckTimeout)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // the checker itself is missing
		return fmt.Errorf("%w: the %s filesystem cannot be checked: %v", ErrDamaged, fs, err)
	}
	status := 0
	if exit != nil {
		status = exit.ExitCode()
	}
	if checkPassed(fs, status, string(out), readOnly) {
		return nil
	}
	return fmt.Errorf("%w: %s check (%s, exit %d): %s", ErrDamaged, fs, cmd.Args[0], status, checkSummary(out, dev))
}

// checkPassed reads a checker's exit status (and, for xfs, its output).
func checkPassed(fs string, status int, out string, readOnly bool) bool {
	switch fs {
	case FSExt4:
		// 0 clean; 1 and 2 errors corrected (not with -n); 4 errors left
		// uncorrected; 8 operational error; 16, 32, 128 worse.
		return status < 4
	case FSXFS:
		return status == 0 || (!readOnly && strings.Contains(out, "metadata changes in a log"))
	}
	return status == 0
}

// checkSummary is the gist of a checker's output on one short line: the
// lines that are not progress, the device named by its base name only.
func checkSummary(out []byte, dev string) string {
	var keep []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "Pass "), strings.HasPrefix(line, "e2fsck 1."),
			strings.HasPrefix(line, "Phase "), strings.HasPrefix(line, "- "), strings.HasPrefix(line, "[") && strings.Contains(line, "checking"):
			continue
		}
		keep = append(keep, line)
	}
	msg := oneLine([]byte(strings.Join(keep, "\n")), errors.New("no output"), dev)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

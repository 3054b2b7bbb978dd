package containerd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// ptySlaveMajorFirst and ptySlaveMajorLast bound the device majors of Unix
// 98 pty slaves, which runc's console is.
const ptySlaveMajorFirst, ptySlaveMajorLast = 136, 143

// freesConsole reports whether an init needs the console freed from its
// session: every /sbin/init but systemd, which frees it itself. A shell
// Hearth starts as PID 1 (an image without /sbin/init) keeps it: its
// interactive use needs it.
func freesConsole(init, kind string) bool {
	return init == "/sbin/init" && kind != initSystemd
}

// freeConsole takes the console away from the session of the created, not
// yet started init pid.
//
// A guest's console is the terminal runc makes for its init, and runc makes
// it init's controlling terminal too. On a machine the kernel starts init
// with none, and inits that start gettys rely on that: busybox's or
// sysvinit's getty makes the console its own controlling terminal
// (TIOCSCTTY), which fails while init's session holds it ("getty: console:
// TIOCSCTTY: Operation not permitted"): only CAP_SYS_ADMIN in the host's
// user namespace may take a terminal from another session. So the host does:
// a short-lived process makes the console its controlling terminal with
// steal and exits, which leaves the console to no session. Output, input and
// the terminal itself (held by the runc shim) are untouched.
func freeConsole(pid uint32) error {
	root, err := os.Open(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		return err
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), "dev/console", &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return fmt.Errorf("open the guest's /dev/console: %w", err)
	}
	console := os.NewFile(uintptr(fd), "/dev/console")
	defer console.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if major := unix.Major(st.Rdev); st.Mode&unix.S_IFMT != unix.S_IFCHR || major < ptySlaveMajorFirst || major > ptySlaveMajorLast {
		return errors.New("the guest's /dev/console is not a pty")
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	// Setsid then Setctty: Go's child calls TIOCSCTTY with 1, the steal.
	// When it exits as its session's leader, the console has no session.
	cmd := exec.Command(truePath)
	cmd.Stdin = console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("take the console from init's session: %w %s", err, out)
	}
	return nil
}

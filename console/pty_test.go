package console

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ptyStream is a real shell on a pseudo-terminal, behind the Stream
// interface: output fans out like the guest console's, input goes to the pty.
type ptyStream struct {
	*fakeStream
	master *os.File
}

func (p *ptyStream) Write(b []byte) (int, error) {
	p.fakeStream.Write(b) // record what was typed
	return p.master.Write(b)
}

// startShell runs busybox's ash (it asks for the cursor position after
// each prompt, as guest shells do) on a new pty.
func startShell(t *testing.T) *ptyStream {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox (apt-get install busybox-static)")
	}
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: DefaultRows, Col: DefaultColumns})
	cmd := exec.Command(busybox, "sh", "-i")
	cmd.Env = []string{"TERM=xterm", "PS1=guest$ ", "HOME=/", "PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &ptyStream{fakeStream: newFakeStream(), master: master}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				p.emit(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		master.Close()
		<-done
	})
	return p
}

// TestRealShell types into busybox's ash through VNC key events and reads
// the answer off the rendered terminal; the shell's cursor position queries
// are answered, or its line editing would stall.
func TestRealShell(t *testing.T) {
	m := testRegistry(t)
	sh := startShell(t)
	ep, err := m.Attach("shell", "shell", sh, "pw")
	if err != nil {
		t.Fatal(err)
	}
	con := m.console("shell")
	c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	c.setEncodings(encZRLE, encCopyRect)
	waitScreen(t, con, "guest$ ")
	for _, r := range "echo $((6*7))" {
		c.tap(uint32(r))
	}
	c.tap(ksReturn)
	waitScreen(t, con, "\n42")
	c.requestUpdate(false)
	if err := c.readUpdate(); err != nil {
		t.Fatal(err)
	}
	compareFramebuffer(t, c, con)
	// Line editing works after the prompt's query: recall the line, edit it.
	c.tap(ksUp)
	c.tap(ksBackSpace)
	c.tap(ksBackSpace)
	for _, r := range "+1))" {
		c.tap(uint32(r))
	}
	c.tap(ksReturn)
	waitScreen(t, con, "\n43")
}

// TestRealShellQueries: ash asks for the cursor position (ESC[6n) after
// each prompt; the console answers what its emulator shows.
func TestRealShellQueries(t *testing.T) {
	m := testRegistry(t)
	sh := startShell(t)
	if _, err := m.Attach("shell", "shell", sh, "pw"); err != nil {
		t.Fatal(err)
	}
	waitScreen(t, m.console("shell"), "guest$ ")
	sh.master.Write([]byte("echo hi\r"))
	waitScreen(t, m.console("shell"), "\nhi")
	// The prompt after "hi" asked where the cursor is: row 8, after "guest$ ".
	sh.waitInput(t, "\x1b[8;8R")
}

package console

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const qemuBinary = "/usr/bin/qemu-system-x86_64" // Debian's qemu-system-x86

// startQEMU runs a PC with standard VGA and no disk under TCG, its display
// on a VNC socket without authentication, as a VM server's QEMU will run,
// and returns the socket's path. SeaBIOS finds nothing to boot and says so
// in VGA text mode. QEMU is killed when the test ends.
func startQEMU(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(qemuBinary); err != nil {
		t.Skipf("no QEMU (install Debian's qemu-system-x86): %v", err)
	}
	sock := filepath.Join(t.TempDir(), "vnc.sock")
	var stderr bytes.Buffer
	cmd := exec.Command(qemuBinary, "-machine", "pc", "-accel", "tcg", "-m", "64",
		"-display", "none", "-vga", "std", "-vnc", "unix:"+sock,
		"-nodefaults", "-no-user-config", "-serial", "none", "-monitor", "none")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("QEMU said: %s", stderr.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("QEMU ended before opening its VNC socket: %v: %s", err, stderr.String())
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU opened no VNC socket in 30 s: %s", stderr.String())
		}
	}
}

// TestRelayQEMU: viewers of a relay console on a real QEMU, over the
// native port and the websocket at once, see the VGA display (SeaBIOS's
// text mode, 720×400) drawn, with the server's name as desktop name.
func TestRelayQEMU(t *testing.T) {
	sock := startQEMU(t)
	m := testRegistry(t)
	srv := consoleServer(t, m, true, nil)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	ep, err := m.AttachRelay("vm1", "my vm", dial, "secret")
	if err != nil {
		t.Fatal(err)
	}
	conn := dialTCP(t, ep)
	conn.SetDeadline(time.Now().Add(2 * time.Minute)) // TCG on a shared machine
	ws, _, err := dialWS(t, srv.URL, "/servers/vm1/vnc", "")
	if err != nil {
		t.Fatal(err)
	}
	var native *rfbClient
	for via, rw := range map[string]io.ReadWriter{"vnc": conn, "web": ws} {
		c, err := dialRFB(rw, "003.008", "secret")
		if err != nil {
			t.Fatalf("%s: %v", via, err)
		}
		t.Logf("%s: QEMU's desktop: %d×%d, %+v", via, c.width, c.height, c.pf)
		if c.name != "my vm" {
			t.Errorf("%s: desktop name %q, want the server's", via, c.name)
		}
		waitVGAText(t, c)
		t.Logf("%s: desktop sizes on the way: %+v; rectangles per encoding: %v", via, c.sizes, c.encodings)
		if c.name != "my vm" {
			t.Errorf("%s: desktop name %q after updates, want the server's", via, c.name)
		}
		if via == "vnc" {
			native = c
		}
	}
	// A viewer's SetDesktopSize is QEMU's to answer, and the answer the
	// viewer's: std VGA takes no size from a viewer (QEMU 7.2 answers
	// status 3, and the text mode stays).
	native.setEncodings(encRaw, encDesktopSize, encExtendedDesktopSize)
	native.setDesktopSize(1024, 768)
	native.requestUpdate(true)
	for !slices.ContainsFunc(native.sizes, func(s sizeSeen) bool { return s.reason == resizeByViewer }) {
		if err := native.readUpdate(); err != nil {
			t.Fatalf("waiting for QEMU's answer to SetDesktopSize, sizes %+v: %v", native.sizes, err)
		}
		native.requestUpdate(true)
	}
	t.Logf("QEMU's answer to SetDesktopSize 1024×768: %+v", native.sizes[len(native.sizes)-1])
}

// waitVGAText asks for updates until the desktop is VGA text mode
// (720×400) with something drawn. It takes noVNC's pixel format and
// encodings: the display converts, the relay only carries. DesktopName is
// asked for to see that QEMU's own name does not come through later.
func waitVGAText(t *testing.T, c *rfbClient) {
	t.Helper()
	c.setPixelFormat(noVNCPixelFormat)
	c.setEncodings(encRaw, encCopyRect, encDesktopSize, encDesktopName)
	c.requestUpdate(false)
	for {
		if err := c.readUpdate(); err != nil {
			t.Fatalf("at %d×%d, sizes %+v: %v", c.width, c.height, c.sizes, err)
		}
		if c.width == 720 && c.height == 400 && slices.ContainsFunc(c.fb, func(p uint32) bool { return p != 0 }) {
			return // SeaBIOS's text, on the VGA text mode
		}
		c.requestUpdate(true)
	}
}

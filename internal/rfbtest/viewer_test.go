package rfbtest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/console"
	"hearth/internal/logtest"
)

// terminal is a guest terminal that printed backlog and keeps what is typed.
type terminal struct {
	backlog string
	mu      sync.Mutex
	typed   []byte
}

func (g *terminal) Subscribe() ([]byte, <-chan []byte, func()) {
	ch := make(chan []byte)
	var once sync.Once
	return []byte(g.backlog), ch, func() { once.Do(func() { close(ch) }) }
}

func (g *terminal) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.typed = append(g.typed, p...)
	return len(p), nil
}

func (g *terminal) input() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return string(g.typed)
}

// TestViewerOnHearthConsole: against a terminal's console on Hearth's VNC
// port, a wrong password is refused, the right one shows the desktop's
// name and the guest's text drawn, and a typed line reaches the guest.
func TestViewerOnHearthConsole(t *testing.T) {
	reg := console.NewRegistry(console.WithListen("127.0.0.1"), console.WithBasePort(0))
	t.Cleanup(func() { reg.Close() })
	guest := &terminal{backlog: "login: "}
	ep, err := reg.Attach("srv-1", "web", guest, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port))

	if _, err := Dial("tcp", addr, "wrong"); !errors.Is(err, ErrRefused) {
		t.Fatalf("a wrong password: %v, want ErrRefused", err)
	}
	v := MustDial(t, "tcp", addr, "s3cret")
	if v.Name != "web" {
		t.Errorf("desktop name %q, want the server's", v.Name)
	}
	v.SetDeadline(time.Now().Add(time.Minute))
	if err := v.Wait((*Viewer).Lit); err != nil {
		t.Fatalf("%dx%d, never drawn: %v", v.Width, v.Height, err)
	}
	v.Drain()
	if err := v.TypeLine("root"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(guest.input(), "root\r"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest got %q, want root and Return", guest.input())
		}
	}
}

// TestVGAText checks the screen reader against QEMU's own rendering:
// SeaBIOS's screen of a machine with no drive, every cell recognised.
func TestVGAText(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skipf("no QEMU (Debian package qemu-system-x86): %v", err)
	}
	dir, err := os.MkdirTemp("", "vga") // unix socket paths are at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "vnc")
	out := &logtest.Buffer{} // QEMU writes while a failure reads
	qemu := exec.Command("qemu-system-x86_64", "-accel", "tcg", "-m", "32", "-nodefaults", "-vga", "std",
		"-display", "none", "-vnc", "unix:"+socket)
	qemu.Stdout, qemu.Stderr = out, out
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { qemu.Wait(); close(exited) }() //nolint:errcheck // out says why it ended
	t.Cleanup(func() { qemu.Process.Kill(); <-exited })
	v, err := DialDisplay(socket, exited, time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	defer v.Close()

	text := v.WaitText(t, "No bootable device.", 2*time.Minute)
	t.Logf("the screen reads:\n%s", text)
	if !strings.HasPrefix(text, "SeaBIOS (version ") {
		t.Errorf("first line is not SeaBIOS's banner:\n%s", text)
	}
	if strings.Contains(text, "?") {
		t.Errorf("cells no glyph of the font matches ('?'):\n%s", text)
	}
}

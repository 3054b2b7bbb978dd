package e2e

import (
	"bufio"
	"bytes"
	endian "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/vmm/qemu"
)

// A VM's VGA console is checked the way a person reads it: the test's own
// RFB client (rfb_test.go's handshake) keeps a copy of the framebuffer, and
// vgaText turns a text-mode screen back into characters by matching every
// cell, pixel for pixel, against the font the VGA BIOS loaded. QEMU draws
// text mode as 80x25 cells of 9x16 pixels (720x400); the ninth column is
// the background except for line-drawing characters, which no test reads.

// vgaBIOS is SeaBIOS's VGA BIOS for QEMU's std VGA (package seabios, a
// dependency of qemu-system-x86); it holds the IBM 8x16 font.
const vgaBIOS = "/usr/share/seabios/vgabios-stdvga.bin"

const (
	vgaCols, vgaRows   = 80, 25
	vgaCellW, vgaCellH = 9, 16
)

var (
	vgaFontOnce sync.Once
	vgaFont     map[[vgaCellH]byte]byte // glyph bitmap → character
	vgaFontErr  error
)

// glyphA is 'A' in the IBM 8x16 font, found in the ROM to place the font.
var glyphA = [vgaCellH]byte{0, 0, 0x10, 0x38, 0x6c, 0xc6, 0xc6, 0xfe, 0xc6, 0xc6, 0xc6, 0xc6, 0, 0, 0, 0}

// loadVGAFont reads the 256 glyphs of the 8x16 font out of the VGA BIOS.
// Printable ASCII wins where glyphs are alike (space, NUL and 0xff are all
// blank).
func loadVGAFont(t testing.TB) map[[vgaCellH]byte]byte {
	t.Helper()
	vgaFontOnce.Do(func() {
		rom, err := os.ReadFile(vgaBIOS)
		if err != nil {
			vgaFontErr = fmt.Errorf("the VGA font (install qemu-system-x86, which brings seabios): %w", err)
			return
		}
		at := bytes.Index(rom, glyphA[:]) - 'A'*vgaCellH
		if at < 0 || at+256*vgaCellH > len(rom) {
			vgaFontErr = fmt.Errorf("no 8x16 font in %s", vgaBIOS)
			return
		}
		vgaFont = map[[vgaCellH]byte]byte{}
		for _, c := range append(asciiPrintable(), allBytes()...) {
			var g [vgaCellH]byte
			copy(g[:], rom[at+int(c)*vgaCellH:])
			if _, ok := vgaFont[g]; !ok {
				vgaFont[g] = c
			}
		}
	})
	if vgaFontErr != nil {
		t.Fatal(vgaFontErr)
	}
	return vgaFont
}

func asciiPrintable() []byte {
	var b []byte
	for c := byte(' '); c <= '~'; c++ {
		b = append(b, c)
	}
	return b
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// vncScreen is an RFB client that keeps the framebuffer, in 32-bit
// true colour it asks for (0xRRGGBB), Raw encoding and DesktopSize.
type vncScreen struct {
	conn          net.Conn
	br            *bufio.Reader
	width, height int
	pix           []uint32
	updates       int // FramebufferUpdates received
}

// dialScreen connects to a VNC endpoint (network "tcp" for Hearth's port
// with the server's password, "unix" for a QEMU display socket without)
// and asks for the whole screen.
func dialScreen(t testing.TB, network, addr, password string) *vncScreen {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	s := &vncScreen{conn: conn, br: bufio.NewReader(conn)}
	w, h, err := rfbHandshake(s.br, conn, password)
	if err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	conn.SetDeadline(time.Time{})
	s.resize(w, h)
	setPixelFormat := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	setEncodings := []byte{2, 0, 0, 2, 0, 0, 0, 0 /* Raw */, 0xff, 0xff, 0xff, 0x21 /* DesktopSize, -223 */}
	if _, err := conn.Write(append(setPixelFormat, setEncodings...)); err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	if err := s.request(false); err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	return s
}

func (s *vncScreen) resize(w, h int) {
	s.width, s.height = w, h
	s.pix = make([]uint32, w*h)
}

// request asks for the screen (incremental: only what changes).
func (s *vncScreen) request(incremental bool) error {
	msg := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if incremental {
		msg[1] = 1
	}
	endian.BigEndian.PutUint16(msg[6:], uint16(s.width))
	endian.BigEndian.PutUint16(msg[8:], uint16(s.height))
	_, err := s.conn.Write(msg)
	return err
}

// next reads server messages up to and including one FramebufferUpdate,
// applies it and asks for the next one.
func (s *vncScreen) next(deadline time.Time) error {
	s.conn.SetReadDeadline(deadline)
	for {
		kind, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // FramebufferUpdate
			resized, err := s.readUpdate()
			if err != nil {
				return err
			}
			s.updates++
			return s.request(!resized)
		case 1: // SetColourMapEntries (not for true colour, skipped)
			var hdr [5]byte
			if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
				return err
			}
			if _, err := s.br.Discard(6 * int(endian.BigEndian.Uint16(hdr[3:]))); err != nil {
				return err
			}
		case 2: // Bell
		case 3: // ServerCutText
			var hdr [7]byte
			if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
				return err
			}
			if _, err := s.br.Discard(int(endian.BigEndian.Uint32(hdr[3:]))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("RFB message type %d", kind)
		}
	}
}

func (s *vncScreen) readUpdate() (resized bool, err error) {
	var hdr [3]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return false, err
	}
	for range endian.BigEndian.Uint16(hdr[1:]) {
		var r [12]byte
		if _, err := io.ReadFull(s.br, r[:]); err != nil {
			return false, err
		}
		x, y := int(endian.BigEndian.Uint16(r[0:])), int(endian.BigEndian.Uint16(r[2:]))
		w, h := int(endian.BigEndian.Uint16(r[4:])), int(endian.BigEndian.Uint16(r[6:]))
		switch enc := int32(endian.BigEndian.Uint32(r[8:])); enc {
		case 0: // Raw
			if x+w > s.width || y+h > s.height {
				return false, fmt.Errorf("rectangle %dx%d+%d+%d outside %dx%d", w, h, x, y, s.width, s.height)
			}
			row := make([]byte, 4*w)
			for j := range h {
				if _, err := io.ReadFull(s.br, row); err != nil {
					return false, err
				}
				for i := range w {
					s.pix[(y+j)*s.width+x+i] = endian.LittleEndian.Uint32(row[4*i:]) & 0xffffff
				}
			}
		case -223: // DesktopSize
			s.resize(w, h)
			resized = true
		default:
			return false, fmt.Errorf("RFB encoding %d, asked for Raw and DesktopSize only", enc)
		}
	}
	return resized, nil
}

// lit reports whether any pixel of the screen is not black.
func (s *vncScreen) lit() bool {
	for _, p := range s.pix {
		if p != 0 {
			return true
		}
	}
	return false
}

// text is the screen read as VGA text: up to 25 lines of up to 80
// characters (trailing blanks and blank lines cut), '?' for a cell no glyph matches; "" unless the
// screen is 720x400 text mode.
func (s *vncScreen) text(t testing.TB) string {
	if s.width != vgaCols*vgaCellW || s.height != vgaRows*vgaCellH {
		return ""
	}
	font := loadVGAFont(t)
	var lines []string
	for row := range vgaRows {
		line := make([]byte, vgaCols)
		for col := range vgaCols {
			line[col] = s.cell(font, col*vgaCellW, row*vgaCellH)
		}
		lines = append(lines, strings.TrimRight(string(line), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// cell matches one character cell: its background is the colour of the
// ninth column's top pixel, every other colour is ink. A cell under the
// cursor (ink on rows 13-14 when shown, as SeaBIOS sets it) matches without
// its last two rows; a blank one under it reads '_'.
func (s *vncScreen) cell(font map[[vgaCellH]byte]byte, x0, y0 int) byte {
	bg := s.pix[y0*s.width+x0+8]
	var g [vgaCellH]byte
	for y := range vgaCellH {
		for x := range 8 {
			if s.pix[(y0+y)*s.width+x0+x] != bg {
				g[y] |= 0x80 >> x
			}
		}
	}
	if c, ok := font[g]; ok {
		return c
	}
	g[vgaCellH-2], g[vgaCellH-1] = 0, 0
	if c, ok := font[g]; ok {
		return c
	}
	return '?'
}

// waitText reads updates until the screen's text contains want, and
// returns that text.
func (s *vncScreen) waitText(t testing.TB, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		text := s.text(t)
		if strings.Contains(text, want) {
			return text
		}
		if err := s.next(deadline); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the screen never showed %q within %s; it shows (%dx%d):\n%s", want, within, s.width, s.height, text)
			}
			t.Fatalf("VNC: %v; the screen shows:\n%s", err, text)
		}
	}
}

// vmImage is one of the images tools/vm-images.sh builds (disk.img,
// installer.iso): in $HEARTH_VM_IMAGES, else test-artifacts/vm at the module
// root. Without it the test skips, or fails under CI, where `./task test`
// builds it first.
func vmImage(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("HEARTH_VM_IMAGES")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artifacts", "vm")
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no VM test image (%v): run ./task vm-images", err)
		}
		t.Skipf("no VM test image (%v): run ./task vm-images", err)
	}
	return path
}

// handVM is QEMU run by the test itself with qemu.Command's argv, as an
// operator would run it by hand: no containerd, no Hearth.
type handVM struct {
	cmd    *exec.Cmd
	serial *logtest.Buffer // the serial console (QEMU's stdout) and stderr
	exited chan struct{}
	vnc    string // the display's unix socket
}

// runQEMU starts vm; cleanup kills QEMU. It skips where QEMU is missing.
func runQEMU(t testing.TB, vm qemu.VM) *handVM {
	t.Helper()
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skipf("%s not installed (Debian package %s): %v", qemu.Binary, qemu.Package, err)
	}
	argv, err := qemu.Command(vm)
	if err != nil {
		t.Fatal(err)
	}
	h := &handVM{serial: &logtest.Buffer{}, exited: make(chan struct{}), vnc: filepath.Join(vm.RunDir, qemu.VNCSocket)}
	h.cmd = exec.Command(argv[0], argv[1:]...)
	h.cmd.Env = append(os.Environ(), qemu.Env(vm)...)
	h.cmd.Stdout, h.cmd.Stderr = h.serial, h.serial
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }() //nolint:errcheck // ProcessState says how it ended
	t.Cleanup(h.kill)
	return h
}

// kill ends QEMU (a power cut) and waits for it.
func (h *handVM) kill() {
	h.cmd.Process.Kill()
	<-h.exited
}

// screen connects to the display once QEMU has made its socket.
func (h *handVM) screen(t testing.TB) *vncScreen {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(h.vnc); err == nil {
			return dialScreen(t, "unix", h.vnc, "")
		}
		select {
		case <-h.exited:
			t.Fatalf("QEMU exited (%v):\n%s", h.cmd.ProcessState, h.serial)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU made no VNC socket in a minute:\n%s", h.serial)
		}
	}
}

// shortDir is a temporary directory with a short path: unix socket paths
// are at most 107 bytes.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestVGAText checks the screen reader against QEMU's own rendering:
// SeaBIOS's screen with no drive, every cell recognised, then the test
// disk's kernel console (text mode kept by vga=normal) showing its banner.
func TestVGAText(t *testing.T) {
	t.Run("firmware", func(t *testing.T) {
		vm := runQEMU(t, qemu.VM{Name: "vgatext", SMP: 1, Mem: 32, RunDir: shortDir(t)})
		text := vm.screen(t).waitText(t, "No bootable device.", 2*time.Minute)
		t.Logf("the screen reads:\n%s", text)
		if !strings.HasPrefix(text, "SeaBIOS (version ") {
			t.Errorf("first line is not SeaBIOS's banner:\n%s", text)
		}
		if strings.Contains(text, "?") {
			t.Errorf("cells no glyph of the font matches ('?'):\n%s", text)
		}
	})
	t.Run("kernel", func(t *testing.T) {
		dir := shortDir(t)
		vm := runQEMU(t, qemu.VM{Name: "vgatext", SMP: 1, Mem: 128, RunDir: dir,
			Drives: []qemu.Drive{{Key: "ide:0:0", Image: vmImage(t, "disk.img"), ReadOnly: true}}})
		text := vm.screen(t).waitText(t, "hearth-e2e disk", 2*time.Minute)
		t.Logf("the screen reads:\n%s", text)
		if !strings.Contains(text, "SYSLINUX") {
			t.Errorf("the boot loader's line is gone from the screen:\n%s", text)
		}
	})
}

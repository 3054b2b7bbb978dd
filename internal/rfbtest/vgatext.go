package rfbtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A VGA console is read the way a person reads it: Text turns a text-mode
// screen back into characters by matching every cell, pixel for pixel,
// against the font the VGA BIOS loaded. QEMU draws text mode as 80x25
// cells of 9x16 pixels (720x400); the ninth column is the background except
// for line-drawing characters, which no test reads.

// VGABIOS is SeaBIOS's VGA BIOS for QEMU's std VGA (package seabios, a
// dependency of qemu-system-x86); it holds the IBM 8x16 font.
const VGABIOS = "/usr/share/seabios/vgabios-stdvga.bin"

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

// loadVGAFont reads the 256 glyphs of the 8x16 font out of the VGA BIOS,
// once. Printable ASCII wins where glyphs are alike (space, NUL and 0xff
// are all blank).
func loadVGAFont() (map[[vgaCellH]byte]byte, error) {
	vgaFontOnce.Do(func() {
		rom, err := os.ReadFile(VGABIOS)
		if err != nil {
			vgaFontErr = fmt.Errorf("the VGA font (install qemu-system-x86, which brings seabios): %w", err)
			return
		}
		at := bytes.Index(rom, glyphA[:]) - 'A'*vgaCellH
		if at < 0 || at+256*vgaCellH > len(rom) {
			vgaFontErr = fmt.Errorf("no 8x16 font in %s", VGABIOS)
			return
		}
		vgaFont = map[[vgaCellH]byte]byte{}
		var order []byte
		for c := byte(' '); c <= '~'; c++ {
			order = append(order, c)
		}
		for c := range 256 {
			order = append(order, byte(c))
		}
		for _, c := range order {
			var g [vgaCellH]byte
			copy(g[:], rom[at+int(c)*vgaCellH:])
			if _, ok := vgaFont[g]; !ok {
				vgaFont[g] = c
			}
		}
	})
	return vgaFont, vgaFontErr
}

// Text is the screen read as VGA text: up to 25 lines of up to 80
// characters (trailing blanks and blank lines cut), '?' for a cell no
// glyph matches; "" unless the screen is 720x400 text mode.
func (v *Viewer) Text() (string, error) {
	if v.Width != vgaCols*vgaCellW || v.Height != vgaRows*vgaCellH {
		return "", nil
	}
	font, err := loadVGAFont()
	if err != nil {
		return "", err
	}
	var lines []string
	for row := range vgaRows {
		line := make([]byte, vgaCols)
		for col := range vgaCols {
			line[col] = v.cell(font, col*vgaCellW, row*vgaCellH)
		}
		lines = append(lines, strings.TrimRight(string(line), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n"), nil
}

// cell matches one character cell: its background is the colour of the
// ninth column's top pixel, every other colour is ink. A cell under the
// cursor (ink on rows 13-14 when shown, as SeaBIOS sets it) matches without
// its last two rows; a blank one under it reads '_'.
func (v *Viewer) cell(font map[[vgaCellH]byte]byte, x0, y0 int) byte {
	bg := v.pix[y0*v.Width+x0+8]
	var g [vgaCellH]byte
	for y := range vgaCellH {
		for x := range 8 {
			if v.pix[(y0+y)*v.Width+x0+x] != bg {
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

// WaitText reads updates until the screen's text contains want, and
// returns that text; it fails t if that takes longer than within.
func (v *Viewer) WaitText(t testing.TB, want string, within time.Duration) string {
	t.Helper()
	v.SetReadDeadline(time.Now().Add(within))
	var text string
	err := v.Wait(func(v *Viewer) bool {
		var err error
		if text, err = v.Text(); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(text, want)
	})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the screen never showed %q within %s; it shows (%dx%d):\n%s", want, within, v.Width, v.Height, text)
		}
		t.Fatalf("VNC: %v; the screen shows:\n%s", err, text)
	}
	return text
}

// Package rfbtest is the VNC viewer of tests that look at a console from
// outside, as a person's viewer would: Hearth's VNC port of a server, or a
// QEMU display socket. It speaks RFB 3.8 with VNC authentication (a
// password) or none, keeps the framebuffer (32-bit true colour, Raw and
// DesktopSize encodings only), sends keys, and reads a VGA text-mode screen
// back into characters with the font of SeaBIOS's VGA BIOS (vgatext.go).
//
// Only tests import it. It authenticates with its own DES code on purpose:
// a black-box test must not log in with the very code it checks. The
// console package's protocol tests keep their own, more detailed client
// (other RFB versions, pixel formats, ZRLE, clipboard).
package rfbtest

import (
	"bufio"
	"bytes"
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"math/bits"
	"net"
	"syscall"
	"testing"
	"time"
)

// ErrRefused is the server's answer to a wrong password.
var ErrRefused = errors.New("VNC authentication refused")

// KeyReturn is the X11 keysym of the Return key.
const KeyReturn = 0xff0d

const (
	secNone    = 1
	secVNCAuth = 2

	encodingRaw         = 0
	encodingDesktopSize = -223
)

// Viewer is one connection to a VNC server.
type Viewer struct {
	Name          string        // the desktop's name from ServerInit
	Width, Height int           // the desktop's size now
	Sizes         []image.Point // every DesktopSize the server sent, in order

	conn net.Conn
	r    *bufio.Reader
	pix  []uint32 // 0xRRGGBB, row by row
}

// Dial connects to a VNC server (network "tcp" for Hearth's port, "unix"
// for a QEMU display socket), logs in with password (none when it is ""),
// and asks for the whole screen.
func Dial(network, addr, password string) (*Viewer, error) {
	conn, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	v := &Viewer{conn: conn, r: bufio.NewReader(conn)}
	if err := v.handshake(password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("VNC %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return v, nil
}

// MustDial is Dial for a test: it fails t on an error and closes the
// connection when t ends.
func MustDial(t testing.TB, network, addr, password string) *Viewer {
	t.Helper()
	v, err := Dial(network, addr, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// ErrExited is DialDisplay's answer when QEMU ended before it listened.
var ErrExited = errors.New("QEMU exited before its display listened")

// DialDisplay connects to a QEMU display socket (-vnc unix:socket, no
// password) as soon as QEMU listens on it: QEMU makes the socket file
// before it listens, so until then a dial finds no socket or is refused.
// It gives up when exited is closed or within has passed.
func DialDisplay(socket string, exited <-chan struct{}, within time.Duration) (*Viewer, error) {
	deadline := time.After(within)
	for {
		v, err := Dial("unix", socket, "")
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return v, err
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("%w: %v", ErrExited, err)
		case <-deadline:
			return nil, fmt.Errorf("QEMU's display %s not listening after %s: %w", socket, within, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (v *Viewer) handshake(password string) error {
	var version [12]byte
	if _, err := io.ReadFull(v.r, version[:]); err != nil {
		return err
	}
	if string(version[:]) != "RFB 003.008\n" {
		return fmt.Errorf("server speaks %q", version)
	}
	io.WriteString(v.conn, "RFB 003.008\n")
	n, err := v.r.ReadByte()
	if err != nil {
		return err
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(v.r, types); err != nil {
		return err
	}
	want := byte(secVNCAuth)
	if password == "" {
		want = secNone
	}
	if !bytes.Contains(types, []byte{want}) {
		return fmt.Errorf("security types %v, want %d", types, want)
	}
	v.conn.Write([]byte{want})
	if want == secVNCAuth {
		challenge := make([]byte, 16)
		if _, err := io.ReadFull(v.r, challenge); err != nil {
			return err
		}
		v.conn.Write(challengeResponse(password, challenge))
	}
	var result [4]byte
	if _, err := io.ReadFull(v.r, result[:]); err != nil {
		return err
	}
	if code := binary.BigEndian.Uint32(result[:]); code != 0 {
		return fmt.Errorf("%w (%d)", ErrRefused, code)
	}
	v.conn.Write([]byte{1}) // ClientInit: shared
	var init [24]byte       // width, height, pixel format, name length
	if _, err := io.ReadFull(v.r, init[:]); err != nil {
		return err
	}
	name := make([]byte, binary.BigEndian.Uint32(init[20:]))
	if _, err := io.ReadFull(v.r, name); err != nil {
		return err
	}
	v.Name = string(name)
	v.resize(int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:])))
	// SetPixelFormat: 32 bpp, depth 24, little-endian, true colour, 8 bits each (0xRRGGBB).
	setPixelFormat := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	setEncodings := []byte{2, 0, 0, 2, 0, 0, 0, 0 /* Raw */, 0xff, 0xff, 0xff, 0x21 /* DesktopSize, -223 */}
	if _, err := v.conn.Write(append(setPixelFormat, setEncodings...)); err != nil {
		return err
	}
	return v.request(false)
}

// challengeResponse is VNC authentication's answer: the challenge DES
// encrypted with the password, each key byte bit-reversed.
func challengeResponse(password string, challenge []byte) []byte {
	var key [8]byte
	copy(key[:], password)
	for i, b := range key {
		key[i] = bits.Reverse8(b)
	}
	block, _ := des.NewCipher(key[:])
	out := make([]byte, len(challenge))
	for i := 0; i+8 <= len(challenge); i += 8 {
		block.Encrypt(out[i:i+8], challenge[i:i+8])
	}
	return out
}

// Close closes the connection.
func (v *Viewer) Close() error { return v.conn.Close() }

// SetDeadline bounds all that follows on the connection, reads and writes.
func (v *Viewer) SetDeadline(t time.Time) error { return v.conn.SetDeadline(t) }

// SetReadDeadline bounds the reads that follow (Next, Wait).
func (v *Viewer) SetReadDeadline(t time.Time) error { return v.conn.SetReadDeadline(t) }

func (v *Viewer) resize(w, h int) {
	v.Width, v.Height = w, h
	v.pix = make([]uint32, w*h)
}

// request asks for the screen (incremental: only what changes).
func (v *Viewer) request(incremental bool) error {
	msg := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if incremental {
		msg[1] = 1
	}
	binary.BigEndian.PutUint16(msg[6:], uint16(v.Width))
	binary.BigEndian.PutUint16(msg[8:], uint16(v.Height))
	_, err := v.conn.Write(msg)
	return err
}

// Next reads server messages up to and including one FramebufferUpdate,
// applies it and asks for the next one: all of a resized desktop, as
// noVNC asks, else only what changes.
func (v *Viewer) Next() error {
	for {
		kind, err := v.r.ReadByte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // FramebufferUpdate
			resized, err := v.readUpdate()
			if err != nil {
				return err
			}
			return v.request(!resized)
		case 1: // SetColourMapEntries (not for true colour, skipped)
			var hdr [5]byte
			if _, err := io.ReadFull(v.r, hdr[:]); err != nil {
				return err
			}
			if _, err := v.r.Discard(6 * int(binary.BigEndian.Uint16(hdr[3:]))); err != nil {
				return err
			}
		case 2: // Bell
		case 3: // ServerCutText
			var hdr [7]byte
			if _, err := io.ReadFull(v.r, hdr[:]); err != nil {
				return err
			}
			if _, err := v.r.Discard(int(binary.BigEndian.Uint32(hdr[3:]))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("RFB message type %d", kind)
		}
	}
}

func (v *Viewer) readUpdate() (resized bool, err error) {
	var hdr [3]byte
	if _, err := io.ReadFull(v.r, hdr[:]); err != nil {
		return false, err
	}
	for range binary.BigEndian.Uint16(hdr[1:]) {
		var r [12]byte
		if _, err := io.ReadFull(v.r, r[:]); err != nil {
			return false, err
		}
		x, y := int(binary.BigEndian.Uint16(r[0:])), int(binary.BigEndian.Uint16(r[2:]))
		w, h := int(binary.BigEndian.Uint16(r[4:])), int(binary.BigEndian.Uint16(r[6:]))
		switch enc := int32(binary.BigEndian.Uint32(r[8:])); enc {
		case encodingRaw:
			if x+w > v.Width || y+h > v.Height {
				return false, fmt.Errorf("rectangle %dx%d+%d+%d outside %dx%d", w, h, x, y, v.Width, v.Height)
			}
			row := make([]byte, 4*w)
			for j := range h {
				if _, err := io.ReadFull(v.r, row); err != nil {
					return false, err
				}
				for i := range w {
					v.pix[(y+j)*v.Width+x+i] = binary.LittleEndian.Uint32(row[4*i:]) & 0xffffff
				}
			}
		case encodingDesktopSize:
			v.resize(w, h)
			v.Sizes = append(v.Sizes, image.Pt(w, h))
			resized = true
		default:
			return false, fmt.Errorf("RFB encoding %d, asked for Raw and DesktopSize only", enc)
		}
	}
	return resized, nil
}

// Wait reads updates (Next) until done says the screen is as wanted; the
// connection's deadline bounds it.
func (v *Viewer) Wait(done func(*Viewer) bool) error {
	for !done(v) {
		if err := v.Next(); err != nil {
			return err
		}
	}
	return nil
}

// Lit reports whether any pixel of the screen is not black.
func (v *Viewer) Lit() bool {
	for _, p := range v.pix {
		if p != 0 {
			return true
		}
	}
	return false
}

// Drain reads and drops all the server sends from now on, for a viewer
// that only types: bells and updates never fill its socket. Next and Wait
// must not be called after it.
func (v *Viewer) Drain() { go io.Copy(io.Discard, v.r) }

// KeyEvent presses (down) or releases the key of X11 keysym sym.
func (v *Viewer) KeyEvent(sym uint32, down bool) error {
	msg := []byte{4, 0, 0, 0, 0, 0, 0, 0}
	if down {
		msg[1] = 1
	}
	binary.BigEndian.PutUint32(msg[4:], sym)
	_, err := v.conn.Write(msg)
	return err
}

// Tap presses and releases one key.
func (v *Viewer) Tap(sym uint32) error {
	if err := v.KeyEvent(sym, true); err != nil {
		return err
	}
	return v.KeyEvent(sym, false)
}

// TypeLine types s (printable ASCII, whose keysyms are their codes) and Return.
func (v *Viewer) TypeLine(s string) error {
	for _, r := range s {
		if err := v.Tap(uint32(r)); err != nil {
			return err
		}
	}
	return v.Tap(KeyReturn)
}

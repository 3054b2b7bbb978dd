package console

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
)

// rfbClient is a minimal VNC viewer for tests: it speaks the handshake of
// any version and decodes Raw, CopyRect, ZRLE and DesktopName.
type rfbClient struct {
	rw            io.ReadWriter
	br            *bufio.Reader
	width, height int
	name          string
	pf            pixelFormat
	fb            []uint32 // 0x00RRGGBB
	zin           bytes.Buffer
	zr            io.ReadCloser
	encodings     map[int32]int // rectangles received per encoding
	discardRaw    bool          // skip Raw pixel data undecoded (benchmarks measure the bridge, not this client)
	clipboard     [][]byte      // extended ServerCutText payloads received
	sizes         []sizeSeen    // desktop size rectangles received
}

// sizeSeen is a DesktopSize (reason and status -1) or ExtendedDesktopSize
// rectangle a test client received.
type sizeSeen struct {
	reason, status, width, height int
}

// extendedCut sends an extended ClientCutText.
func (c *rfbClient) extendedCut(flags uint32, data []byte) {
	b := binary.BigEndian.AppendUint32([]byte{6, 0, 0, 0}, uint32(-int32(4+len(data))))
	b = binary.BigEndian.AppendUint32(b, flags)
	c.rw.Write(append(b, data...))
}

// noVNCPixelFormat is what noVNC asks for: RGB in memory order, unlike the server's.
var noVNCPixelFormat = pixelFormat{
	BitsPerPixel: 32, Depth: 24, TrueColor: true,
	RedMax: 255, GreenMax: 255, BlueMax: 255,
	RedShift: 0, GreenShift: 8, BlueShift: 16,
}

var errAuthFailed = errors.New("test client: authentication failed")

// dialRFB runs the handshake with version ("003.008", "003.003" …) and
// password ("" for security type None).
func dialRFB(rw io.ReadWriter, version, password string) (*rfbClient, error) {
	c := &rfbClient{rw: rw, br: bufio.NewReaderSize(rw, 256<<10), encodings: map[int32]int{}}
	var v [12]byte
	if _, err := io.ReadFull(c.br, v[:]); err != nil {
		return nil, err
	}
	if string(v[:]) != "RFB 003.008\n" {
		return nil, fmt.Errorf("server version %q", v)
	}
	fmt.Fprintf(rw, "RFB %s\n", version)
	var secType uint32
	if version != "003.007" && version != "003.008" {
		if err := binary.Read(c.br, binary.BigEndian, &secType); err != nil {
			return nil, err
		}
	} else {
		n, err := c.br.ReadByte()
		if err != nil {
			return nil, err
		}
		if n > 0 {
			types := make([]byte, n)
			io.ReadFull(c.br, types)
			secType = uint32(types[0])
			rw.Write([]byte{types[0]})
		}
	}
	if secType == 0 {
		return nil, fmt.Errorf("%w: refused: %s", errAuthFailed, c.readString())
	}
	if secType == secVNCAuth {
		challenge := make([]byte, 16)
		if _, err := io.ReadFull(c.br, challenge); err != nil {
			return nil, err
		}
		rw.Write(vncResponse(password, challenge))
	}
	if secType == secVNCAuth || version == "003.008" {
		var result uint32
		if err := binary.Read(c.br, binary.BigEndian, &result); err != nil {
			return nil, err
		}
		if result != 0 {
			reason := ""
			if version == "003.008" {
				reason = c.readString()
			}
			return nil, fmt.Errorf("%w: %s", errAuthFailed, reason)
		}
	}
	rw.Write([]byte{1}) // shared
	var init [20]byte
	if _, err := io.ReadFull(c.br, init[:]); err != nil {
		return nil, err
	}
	c.width, c.height = int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:]))
	pf, err := parsePixelFormat(init[4:20])
	if err != nil {
		return nil, err
	}
	c.pf = pf
	c.name = c.readString()
	c.fb = make([]uint32, c.width*c.height)
	return c, nil
}

func (c *rfbClient) readString() string {
	var n uint32
	binary.Read(c.br, binary.BigEndian, &n)
	b := make([]byte, n)
	io.ReadFull(c.br, b)
	return string(b)
}

func (c *rfbClient) setPixelFormat(pf pixelFormat) {
	c.rw.Write(append([]byte{0, 0, 0, 0}, pf.marshal()...))
	c.pf = pf
}

func (c *rfbClient) setEncodings(encs ...int32) {
	b := []byte{2, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(encs)))
	for _, e := range encs {
		b = binary.BigEndian.AppendUint32(b, uint32(e))
	}
	c.rw.Write(b)
}

// setDesktopSize asks for a desktop of one screen of width×height.
func (c *rfbClient) setDesktopSize(width, height int) {
	b := []byte{251, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(width))
	b = binary.BigEndian.AppendUint16(b, uint16(height))
	b = append(b, 1, 0)
	b = binary.BigEndian.AppendUint32(b, 0) // screen id
	b = binary.BigEndian.AppendUint32(b, 0) // at 0,0
	b = binary.BigEndian.AppendUint16(b, uint16(width))
	b = binary.BigEndian.AppendUint16(b, uint16(height))
	b = binary.BigEndian.AppendUint32(b, 0) // flags
	c.rw.Write(b)
}

func (c *rfbClient) requestUpdate(incremental bool) {
	b := []byte{3, 0, 0, 0, 0, 0}
	if incremental {
		b[1] = 1
	}
	b = binary.BigEndian.AppendUint16(b, uint16(c.width))
	b = binary.BigEndian.AppendUint16(b, uint16(c.height))
	c.rw.Write(b)
}

func (c *rfbClient) key(sym uint32, down bool) {
	b := []byte{4, 0, 0, 0}
	if down {
		b[1] = 1
	}
	c.rw.Write(binary.BigEndian.AppendUint32(b, sym))
}

func (c *rfbClient) tap(sym uint32) { c.key(sym, true); c.key(sym, false) }

func (c *rfbClient) cutText(s string) {
	b := binary.BigEndian.AppendUint32([]byte{6, 0, 0, 0}, uint32(len(s)))
	c.rw.Write(append(b, s...))
}

// readUpdate reads one FramebufferUpdate into c.fb; extended clipboard
// messages before it are kept in c.clipboard.
func (c *rfbClient) readUpdate() error {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return err
		}
		if hdr[0] != 3 {
			break
		}
		var n int32
		binary.Read(c.br, binary.BigEndian, &n)
		if n >= 0 {
			return fmt.Errorf("classic ServerCutText of %d bytes: the server has no clipboard to offer", n)
		}
		msg := make([]byte, -n)
		if _, err := io.ReadFull(c.br, msg); err != nil {
			return err
		}
		c.clipboard = append(c.clipboard, msg)
	}
	if hdr[0] != 0 {
		return fmt.Errorf("server message type %d, want FramebufferUpdate", hdr[0])
	}
	for i := 0; i < int(binary.BigEndian.Uint16(hdr[2:])); i++ {
		var rh [12]byte
		if _, err := io.ReadFull(c.br, rh[:]); err != nil {
			return err
		}
		x, y := int(binary.BigEndian.Uint16(rh[0:])), int(binary.BigEndian.Uint16(rh[2:]))
		r := image.Rect(x, y, x+int(binary.BigEndian.Uint16(rh[4:])), y+int(binary.BigEndian.Uint16(rh[6:])))
		enc := int32(binary.BigEndian.Uint32(rh[8:]))
		c.encodings[enc]++
		if enc == encDesktopSize || enc == encExtendedDesktopSize {
			seen := sizeSeen{reason: -1, status: -1, width: r.Dx(), height: r.Dy()}
			if enc == encExtendedDesktopSize {
				seen.reason, seen.status = r.Min.X, r.Min.Y
				var layout [4 + 16]byte // one screen
				if _, err := io.ReadFull(c.br, layout[:]); err != nil {
					return err
				}
				if layout[0] != 1 || int(binary.BigEndian.Uint16(layout[12:])) != r.Dx() || int(binary.BigEndian.Uint16(layout[14:])) != r.Dy() {
					return fmt.Errorf("screen layout %x for a %dx%d desktop", layout, r.Dx(), r.Dy())
				}
			}
			c.sizes = append(c.sizes, seen)
			if seen.status <= 0 {
				c.width, c.height = seen.width, seen.height
				c.fb = make([]uint32, c.width*c.height)
			}
			continue
		}
		if !r.In(image.Rect(0, 0, c.width, c.height)) && enc >= 0 {
			return fmt.Errorf("rectangle %v outside the framebuffer", r)
		}
		var err error
		switch enc {
		case encRaw:
			if c.discardRaw {
				_, err = c.br.Discard(r.Dx() * r.Dy() * c.pf.bytesPerPixel())
			} else {
				err = c.readPixels(c.br, r, false)
			}
		case encCopyRect:
			var src [4]byte
			if _, err = io.ReadFull(c.br, src[:]); err == nil {
				sx, sy := int(binary.BigEndian.Uint16(src[0:])), int(binary.BigEndian.Uint16(src[2:]))
				moved := make([]uint32, 0, r.Dx()*r.Dy())
				for yy := 0; yy < r.Dy(); yy++ {
					moved = append(moved, c.fb[(sy+yy)*c.width+sx:(sy+yy)*c.width+sx+r.Dx()]...)
				}
				for yy := 0; yy < r.Dy(); yy++ {
					copy(c.fb[(r.Min.Y+yy)*c.width+r.Min.X:], moved[yy*r.Dx():(yy+1)*r.Dx()])
				}
			}
		case encZRLE:
			err = c.readZRLE(r)
		case encDesktopName:
			c.name = c.readString()
		default:
			return fmt.Errorf("unexpected encoding %d", enc)
		}
		if err != nil {
			return fmt.Errorf("rectangle %v encoding %d: %w", r, enc, err)
		}
	}
	return nil
}

// rgbOf converts a client pixel value back to 0x00RRGGBB (8 bits per colour).
func (c *rfbClient) rgbOf(v uint32) uint32 {
	ch := func(shift uint8, max uint16) uint32 { return (v >> shift & uint32(max)) * 255 / uint32(max) }
	return ch(c.pf.RedShift, c.pf.RedMax)<<16 | ch(c.pf.GreenShift, c.pf.GreenMax)<<8 | ch(c.pf.BlueShift, c.pf.BlueMax)
}

func (c *rfbClient) readPixel(r io.Reader, compact bool) (uint32, error) {
	n := c.pf.bytesPerPixel()
	ok, high := c.pf.compactPixel()
	if compact && ok {
		n = 3
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:n]); err != nil {
		return 0, err
	}
	var v uint32
	switch {
	case n == 1:
		v = uint32(b[0])
	case n == 2 && c.pf.BigEndian:
		v = uint32(binary.BigEndian.Uint16(b[:]))
	case n == 2:
		v = uint32(binary.LittleEndian.Uint16(b[:]))
	case n == 3 && c.pf.BigEndian:
		v = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	case n == 3:
		v = uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
	case c.pf.BigEndian:
		v = binary.BigEndian.Uint32(b[:])
	default:
		v = binary.LittleEndian.Uint32(b[:])
	}
	if n == 3 && high {
		v <<= 8
	}
	return c.rgbOf(v), nil
}

func (c *rfbClient) readPixels(r io.Reader, rect image.Rectangle, compact bool) error {
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		for x := rect.Min.X; x < rect.Max.X; x++ {
			p, err := c.readPixel(r, compact)
			if err != nil {
				return err
			}
			c.fb[y*c.width+x] = p
		}
	}
	return nil
}

func (c *rfbClient) readZRLE(rect image.Rectangle) error {
	var n uint32
	if err := binary.Read(c.br, binary.BigEndian, &n); err != nil {
		return err
	}
	if _, err := io.CopyN(&c.zin, c.br, int64(n)); err != nil {
		return err
	}
	if c.zr == nil {
		zr, err := zlib.NewReader(&c.zin)
		if err != nil {
			return err
		}
		c.zr = zr
	}
	for ty := rect.Min.Y; ty < rect.Max.Y; ty += 64 {
		for tx := rect.Min.X; tx < rect.Max.X; tx += 64 {
			t := image.Rect(tx, ty, min(tx+64, rect.Max.X), min(ty+64, rect.Max.Y))
			if err := c.readTile(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *rfbClient) readTile(t image.Rectangle) error {
	var sub [1]byte
	if _, err := io.ReadFull(c.zr, sub[:]); err != nil {
		return err
	}
	switch s := int(sub[0]); {
	case s == 0:
		return c.readPixels(c.zr, t, true)
	case s == 1:
		p, err := c.readPixel(c.zr, true)
		for y := t.Min.Y; y < t.Max.Y; y++ {
			for x := t.Min.X; x < t.Max.X; x++ {
				c.fb[y*c.width+x] = p
			}
		}
		return err
	case s <= 16:
		palette := make([]uint32, s)
		for i := range palette {
			p, err := c.readPixel(c.zr, true)
			if err != nil {
				return err
			}
			palette[i] = p
		}
		bits := map[bool]int{true: 1, false: 2}[s == 2]
		if s > 4 {
			bits = 4
		}
		rowBytes := (t.Dx()*bits + 7) / 8
		row := make([]byte, rowBytes)
		for y := t.Min.Y; y < t.Max.Y; y++ {
			if _, err := io.ReadFull(c.zr, row); err != nil {
				return err
			}
			for x := 0; x < t.Dx(); x++ {
				bit := x * bits
				idx := int(row[bit/8]>>(8-bits-bit%8)) & (1<<bits - 1)
				if idx >= s {
					return fmt.Errorf("palette index %d of %d", idx, s)
				}
				c.fb[y*c.width+t.Min.X+x] = palette[idx]
			}
		}
		return nil
	default:
		return fmt.Errorf("ZRLE subencoding %d not expected from this server", s)
	}
}

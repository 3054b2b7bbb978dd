package console

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"image"
	"slices"
	"unsafe"
)

// RFB encoding numbers (RFC 6143 §7.7, §7.8).
const (
	encRaw         int32 = 0
	encCopyRect    int32 = 1
	encZRLE        int32 = 16
	encDesktopSize int32 = -223
	encDesktopName int32 = -307
)

// hostLittleEndian: the framebuffer's uint32s are then laid out in memory
// exactly as RFB's little-endian 0x00RRGGBB pixels.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// encoder turns framebuffer rectangles into RFB rectangles for one client.
type encoder struct {
	pf   pixelFormat
	zrle bool
	zbuf bytes.Buffer
	zw   *zlib.Writer // one zlib stream for the whole connection, as ZRLE requires
	tile []uint32

	memoOK             bool
	memoRGB, memoValue uint32

	compact, compactHigh bool // ZRLE CPIXELs of three bytes, and which three
	eightBit             bool // 8 bits per colour: pixels convert by shifts alone
}

func appendRectHeader(b []byte, r image.Rectangle, enc int32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(r.Min.X))
	b = binary.BigEndian.AppendUint16(b, uint16(r.Min.Y))
	b = binary.BigEndian.AppendUint16(b, uint16(r.Dx()))
	b = binary.BigEndian.AppendUint16(b, uint16(r.Dy()))
	return binary.BigEndian.AppendUint32(b, uint32(enc))
}

// appendRect encodes r of the framebuffer fb (stride width) in the best
// encoding the client accepts.
func (e *encoder) appendRect(b []byte, fb []uint32, width int, r image.Rectangle) []byte {
	if e.zrle {
		return e.appendZRLE(b, fb, width, r)
	}
	b = appendRectHeader(b, r, encRaw)
	b = slices.Grow(b, r.Dx()*r.Dy()*e.pf.bytesPerPixel())
	if pf := e.pf; pf.BitsPerPixel == 32 && pf.RedMax == 255 && pf.GreenMax == 255 && pf.BlueMax == 255 {
		// The common case (noVNC, TigerVNC): 8 bits per colour, moved by shifts alone.
		off := len(b)
		b = b[:off+r.Dx()*r.Dy()*4]
		rs, gs, bs := pf.RedShift&31, pf.GreenShift&31, pf.BlueShift&31
		native := pf == serverPixelFormat && hostLittleEndian
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := fb[y*width+r.Min.X : y*width+r.Max.X]
			out := b[off : off+4*len(row)]
			off += 4 * len(row)
			switch {
			case native: // the framebuffer's own layout: a plain copy
				copy(out, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(row))), 4*len(row)))
			case pf.BigEndian:
				for i, rgb := range row {
					binary.BigEndian.PutUint32(out[4*i:], (rgb>>16&0xff)<<rs|(rgb>>8&0xff)<<gs|(rgb&0xff)<<bs)
				}
			default:
				for i, rgb := range row {
					binary.LittleEndian.PutUint32(out[4*i:], (rgb>>16&0xff)<<rs|(rgb>>8&0xff)<<gs|(rgb&0xff)<<bs)
				}
			}
		}
		return b
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for _, rgb := range fb[y*width+r.Min.X : y*width+r.Max.X] {
			b = e.pf.appendPixel(b, e.pixel(rgb))
		}
	}
	return b
}

// pixel converts to the client's pixel value: by shifts for 8 bits per
// colour, else with a one-entry memo (a terminal's pixels come in long runs
// of the same colour, and the conversion costs three divisions).
func (e *encoder) pixel(rgb uint32) uint32 {
	if e.eightBit {
		return (rgb>>16&0xff)<<(e.pf.RedShift&31) | (rgb>>8&0xff)<<(e.pf.GreenShift&31) | (rgb&0xff)<<(e.pf.BlueShift&31)
	}
	if !e.memoOK || rgb != e.memoRGB {
		e.memoRGB, e.memoValue, e.memoOK = rgb, e.pf.pixel(rgb), true
	}
	return e.memoValue
}

func (e *encoder) setPixelFormat(pf pixelFormat) {
	e.pf, e.memoOK = pf, false
	e.compact, e.compactHigh = pf.compactPixel()
	e.eightBit = pf.RedMax == 255 && pf.GreenMax == 255 && pf.BlueMax == 255
}

// appendZRLE encodes r as ZRLE: 64×64 tiles, each solid, packed-palette
// (terminal text rarely has more than a few colours per tile) or raw.
func (e *encoder) appendZRLE(b []byte, fb []uint32, width int, r image.Rectangle) []byte {
	if e.zw == nil {
		e.zw, _ = zlib.NewWriterLevel(&e.zbuf, zlib.BestSpeed)
	}
	e.zbuf.Reset()
	var raw []byte
	for ty := r.Min.Y; ty < r.Max.Y; ty += 64 {
		for tx := r.Min.X; tx < r.Max.X; tx += 64 {
			t := image.Rect(tx, ty, min(tx+64, r.Max.X), min(ty+64, r.Max.Y))
			raw = e.appendTile(raw[:0], fb, width, t)
			e.zw.Write(raw)
		}
	}
	e.zw.Flush()
	b = appendRectHeader(b, r, encZRLE)
	b = binary.BigEndian.AppendUint32(b, uint32(e.zbuf.Len()))
	return append(b, e.zbuf.Bytes()...)
}

func (e *encoder) appendTile(b []byte, fb []uint32, width int, t image.Rectangle) []byte {
	e.tile = e.tile[:0]
	var palette [16]uint32
	n := 0
	for y := t.Min.Y; y < t.Max.Y; y++ {
		for _, rgb := range fb[y*width+t.Min.X : y*width+t.Max.X] {
			v := e.pixel(rgb)
			e.tile = append(e.tile, v)
			if n > 16 {
				continue
			}
			found := false
			for _, p := range palette[:min(n, 16)] {
				if p == v {
					found = true
					break
				}
			}
			if !found {
				if n < 16 {
					palette[n] = v
				}
				n++
			}
		}
	}
	switch {
	case n == 1:
		return e.pf.appendCPixel(append(b, 1), palette[0], e.compact, e.compactHigh)
	case n <= 16:
		b = append(b, byte(n))
		for _, p := range palette[:n] {
			b = e.pf.appendCPixel(b, p, e.compact, e.compactHigh)
		}
		bits := 4
		switch {
		case n == 2:
			bits = 1
		case n <= 4:
			bits = 2
		}
		w := t.Dx()
		for y := 0; y < t.Dy(); y++ {
			var acc byte
			used := 0
			for _, v := range e.tile[y*w : (y+1)*w] {
				idx := 0
				for palette[idx] != v {
					idx++
				}
				acc = acc<<bits | byte(idx)
				used += bits
				if used == 8 {
					b = append(b, acc)
					acc, used = 0, 0
				}
			}
			if used > 0 {
				b = append(b, acc<<(8-used))
			}
		}
		return b
	default:
		b = append(b, 0)
		if e.compact && !e.compactHigh && !e.pf.BigEndian { // noVNC's format: three bytes, low first
			for _, v := range e.tile {
				b = append(b, byte(v), byte(v>>8), byte(v>>16))
			}
			return b
		}
		for _, v := range e.tile {
			b = e.pf.appendCPixel(b, v, e.compact, e.compactHigh)
		}
		return b
	}
}

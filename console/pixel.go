package console

import (
	"encoding/binary"
	"fmt"
)

// pixelFormat is RFB's PIXEL_FORMAT (RFC 6143 §7.4).
type pixelFormat struct {
	BitsPerPixel, Depth             uint8
	BigEndian, TrueColor            bool
	RedMax, GreenMax, BlueMax       uint16
	RedShift, GreenShift, BlueShift uint8
}

// serverPixelFormat is what the framebuffer holds: 0x00RRGGBB, little-endian.
var serverPixelFormat = pixelFormat{
	BitsPerPixel: 32, Depth: 24, TrueColor: true,
	RedMax: 255, GreenMax: 255, BlueMax: 255,
	RedShift: 16, GreenShift: 8, BlueShift: 0,
}

func (pf pixelFormat) marshal() []byte {
	b := make([]byte, 16)
	b[0], b[1] = pf.BitsPerPixel, pf.Depth
	if pf.BigEndian {
		b[2] = 1
	}
	if pf.TrueColor {
		b[3] = 1
	}
	binary.BigEndian.PutUint16(b[4:], pf.RedMax)
	binary.BigEndian.PutUint16(b[6:], pf.GreenMax)
	binary.BigEndian.PutUint16(b[8:], pf.BlueMax)
	b[10], b[11], b[12] = pf.RedShift, pf.GreenShift, pf.BlueShift
	return b
}

func parsePixelFormat(b []byte) (pixelFormat, error) {
	pf := pixelFormat{
		BitsPerPixel: b[0], Depth: b[1], BigEndian: b[2] != 0, TrueColor: b[3] != 0,
		RedMax: binary.BigEndian.Uint16(b[4:]), GreenMax: binary.BigEndian.Uint16(b[6:]),
		BlueMax:  binary.BigEndian.Uint16(b[8:]),
		RedShift: b[10], GreenShift: b[11], BlueShift: b[12],
	}
	switch {
	case pf.BitsPerPixel != 8 && pf.BitsPerPixel != 16 && pf.BitsPerPixel != 32:
		return pf, fmt.Errorf("%w: bits-per-pixel %d (want 8, 16 or 32)", ErrProtocol, pf.BitsPerPixel)
	case !pf.TrueColor:
		return pf, fmt.Errorf("%w: colour-map pixel formats are not supported", ErrProtocol)
	case pf.RedShift >= pf.BitsPerPixel || pf.GreenShift >= pf.BitsPerPixel || pf.BlueShift >= pf.BitsPerPixel:
		return pf, fmt.Errorf("%w: colour shift beyond %d bits per pixel", ErrProtocol, pf.BitsPerPixel)
	}
	return pf, nil
}

func (pf pixelFormat) bytesPerPixel() int { return int(pf.BitsPerPixel) / 8 }

// pixel converts 0x00RRGGBB to the client's pixel value.
func (pf pixelFormat) pixel(rgb uint32) uint32 {
	scale := func(v uint32, max uint16) uint32 { return (v*uint32(max) + 127) / 255 }
	return scale(rgb>>16&0xff, pf.RedMax)<<pf.RedShift |
		scale(rgb>>8&0xff, pf.GreenMax)<<pf.GreenShift |
		scale(rgb&0xff, pf.BlueMax)<<pf.BlueShift
}

// appendPixel appends a pixel value in the client's byte order and size.
func (pf pixelFormat) appendPixel(b []byte, v uint32) []byte {
	switch pf.BitsPerPixel {
	case 8:
		return append(b, byte(v))
	case 16:
		if pf.BigEndian {
			return binary.BigEndian.AppendUint16(b, uint16(v))
		}
		return binary.LittleEndian.AppendUint16(b, uint16(v))
	default:
		if pf.BigEndian {
			return binary.BigEndian.AppendUint32(b, v)
		}
		return binary.LittleEndian.AppendUint32(b, v)
	}
}

// compactPixel reports how ZRLE's CPIXEL drops a byte (RFC 6143 §7.7.6):
// 32-bit true colour of depth ≤ 24 whose colour bits fit the low or the
// high three bytes is sent in three bytes.
func (pf pixelFormat) compactPixel() (ok, high bool) {
	if pf.BitsPerPixel != 32 || pf.Depth > 24 {
		return false, false
	}
	all := uint32(pf.RedMax)<<pf.RedShift | uint32(pf.GreenMax)<<pf.GreenShift | uint32(pf.BlueMax)<<pf.BlueShift
	switch {
	case all&0xff000000 == 0:
		return true, false
	case all&0xff == 0:
		return true, true
	}
	return false, false
}

// appendCPixel appends a ZRLE CPIXEL; compact and high are compactPixel's
// answer, worked out once per pixel format rather than per pixel.
func (pf pixelFormat) appendCPixel(b []byte, v uint32, compact, high bool) []byte {
	if !compact {
		return pf.appendPixel(b, v)
	}
	if high {
		v >>= 8
	}
	if pf.BigEndian {
		return append(b, byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, byte(v), byte(v>>8), byte(v>>16))
}

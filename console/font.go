package console

import (
	"image"
	"image/draw"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Cell geometry of Go Mono at 13 px: every glyph advances 8 px, lines are 16 px.
const (
	cellWidth  = 8
	cellHeight = 16
	fontSize   = 13
)

// glyphMask is a rendered glyph: one coverage byte (0–255) per pixel of a cell.
type glyphMask [cellWidth * cellHeight]uint8

type glyphKey struct {
	r    rune
	bold bool
}

// glyphs caches rendered glyphs for all consoles: a terminal shows few distinct
// characters, so the cache stays small and each console needs no font state.
var glyphs = struct {
	sync.Mutex
	once          sync.Once
	regular, bold font.Face
	masks         map[glyphKey]*glyphMask
}{masks: map[glyphKey]*glyphMask{}}

func loadFaces() {
	open := func(ttf []byte) font.Face {
		f, err := opentype.Parse(ttf)
		if err != nil {
			panic("console: embedded Go Mono font: " + err.Error())
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: fontSize, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			panic("console: embedded Go Mono font: " + err.Error())
		}
		return face
	}
	glyphs.regular = open(gomono.TTF)
	glyphs.bold = open(gomonobold.TTF)
}

// glyph returns the coverage mask of r; characters the font lacks show as
// the replacement character, and spaces as an empty mask.
func glyph(r rune, bold bool) *glyphMask {
	glyphs.once.Do(loadFaces)
	glyphs.Lock()
	defer glyphs.Unlock()
	key := glyphKey{r, bold}
	if m, ok := glyphs.masks[key]; ok {
		return m
	}
	face := glyphs.regular
	if bold {
		face = glyphs.bold
	}
	m := new(glyphMask)
	if block := blockElement(r); block != nil {
		*m = *block
	} else if r > ' ' {
		if _, ok := face.GlyphAdvance(r); !ok {
			r = '\uFFFD'
			if _, ok := face.GlyphAdvance(r); !ok {
				r = '?'
			}
		}
		dst := image.NewAlpha(image.Rect(0, 0, cellWidth, cellHeight))
		dot := fixed.P(0, face.Metrics().Ascent.Ceil())
		if dr, mask, mp, _, ok := face.Glyph(dot, r); ok {
			draw.DrawMask(dst, dr, image.Opaque, image.Point{}, mask, mp, draw.Over)
		}
		copy(m[:], dst.Pix)
	}
	if len(glyphs.masks) < 4096 {
		glyphs.masks[key] = m
	}
	return m
}

// blockElement draws the full and shaded blocks exactly to the cell, so
// that adjacent cells join without gaps as they do on a real terminal.
func blockElement(r rune) *glyphMask {
	var level uint8
	switch r {
	case '█':
		level = 255
	case '▓':
		level = 192
	case '▒':
		level = 128
	case '░':
		level = 64
	default:
		return nil
	}
	m := new(glyphMask)
	for i := range m {
		m[i] = level
	}
	return m
}

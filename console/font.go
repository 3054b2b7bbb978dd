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
	} else if box := boxDrawing(r); box != nil {
		*m = *box
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

// Arms of a box-drawing character, and line weights.
const (
	armUp = 1 << iota
	armDown
	armLeft
	armRight

	lineLight  = 1
	lineHeavy  = 2
	lineDouble = 3
)

type boxLines struct{ arms, weight uint8 }

// boxChars are the box-drawing characters TUIs (and DEC line drawing) use.
// They are drawn to the cell edges, so that lines join across cells,
// which the font's glyphs do not quite do.
var boxChars = map[rune]boxLines{
	'─': {armLeft | armRight, lineLight}, '│': {armUp | armDown, lineLight},
	'┌': {armDown | armRight, lineLight}, '┐': {armDown | armLeft, lineLight},
	'└': {armUp | armRight, lineLight}, '┘': {armUp | armLeft, lineLight},
	'├': {armUp | armDown | armRight, lineLight}, '┤': {armUp | armDown | armLeft, lineLight},
	'┬': {armDown | armLeft | armRight, lineLight}, '┴': {armUp | armLeft | armRight, lineLight},
	'┼': {armUp | armDown | armLeft | armRight, lineLight},
	'╭': {armDown | armRight, lineLight}, '╮': {armDown | armLeft, lineLight},
	'╰': {armUp | armRight, lineLight}, '╯': {armUp | armLeft, lineLight},
	'━': {armLeft | armRight, lineHeavy}, '┃': {armUp | armDown, lineHeavy},
	'┏': {armDown | armRight, lineHeavy}, '┓': {armDown | armLeft, lineHeavy},
	'┗': {armUp | armRight, lineHeavy}, '┛': {armUp | armLeft, lineHeavy},
	'┣': {armUp | armDown | armRight, lineHeavy}, '┫': {armUp | armDown | armLeft, lineHeavy},
	'┳': {armDown | armLeft | armRight, lineHeavy}, '┻': {armUp | armLeft | armRight, lineHeavy},
	'╋': {armUp | armDown | armLeft | armRight, lineHeavy},
	'═': {armLeft | armRight, lineDouble}, '║': {armUp | armDown, lineDouble},
	'╔': {armDown | armRight, lineDouble}, '╗': {armDown | armLeft, lineDouble},
	'╚': {armUp | armRight, lineDouble}, '╝': {armUp | armLeft, lineDouble},
	'╠': {armUp | armDown | armRight, lineDouble}, '╣': {armUp | armDown | armLeft, lineDouble},
	'╦': {armDown | armLeft | armRight, lineDouble}, '╩': {armUp | armLeft | armRight, lineDouble},
	'╬': {armUp | armDown | armLeft | armRight, lineDouble},
}

func boxDrawing(r rune) *glyphMask {
	b, ok := boxChars[r]
	if !ok {
		return nil
	}
	m := new(glyphMask)
	cx, cy := cellWidth/2-1, cellHeight/2-1
	// Offsets of the parallel strokes from the centre line.
	strokes := map[uint8][]int{lineLight: {0}, lineHeavy: {0, 1}, lineDouble: {-1, 1}}[b.weight]
	set := func(x, y int) {
		if x >= 0 && x < cellWidth && y >= 0 && y < cellHeight {
			m[y*cellWidth+x] = 255
		}
	}
	// Each arm runs from the far side of the centre strokes to the edge,
	// so corners and junctions close.
	reach := strokes[0]
	for _, o := range strokes {
		for y := 0; y < cellHeight; y++ {
			if (b.arms&armUp != 0 && y <= cy+o) || (b.arms&armDown != 0 && y >= cy+reach) {
				set(cx+o, y)
			}
		}
		for x := 0; x < cellWidth; x++ {
			if (b.arms&armLeft != 0 && x <= cx+o) || (b.arms&armRight != 0 && x >= cx+reach) {
				set(x, cy+o)
			}
		}
	}
	return m
}

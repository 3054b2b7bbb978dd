package console

import "github.com/hinshun/vt10x"

// Colours of the default foreground and background.
const (
	defaultForeground = 0xd0d0d0
	defaultBackground = 0x000000
)

// Hearth's status line: light grey on dark grey (xterm 256-colour indexes),
// set apart from the guest's screen.
const (
	statusForeground vt10x.Color = 252
	statusBackground vt10x.Color = 237
)

// xterm's 16 standard colours.
var ansiColors = [16]uint32{
	0x000000, 0xcd0000, 0x00cd00, 0xcdcd00, 0x0000ee, 0xcd00cd, 0x00cdcd, 0xe5e5e5,
	0x7f7f7f, 0xff0000, 0x00ff00, 0xffff00, 0x5c5cff, 0xff00ff, 0x00ffff, 0xffffff,
}

// colorOf maps a vt10x colour (0–255 indexed, 24-bit RGB above, or a
// default) to 0x00RRGGBB.
func colorOf(c vt10x.Color, foreground bool) uint32 {
	switch {
	case c == vt10x.DefaultFG || (c == vt10x.DefaultCursor && foreground):
		return defaultForeground
	case c == vt10x.DefaultBG || c == vt10x.DefaultCursor:
		return defaultBackground
	case c < 16:
		return ansiColors[c]
	case c < 232:
		steps := [6]uint32{0, 95, 135, 175, 215, 255}
		i := uint32(c) - 16
		return steps[i/36]<<16 | steps[i/6%6]<<8 | steps[i%6]
	case c < 256:
		g := 8 + 10*(uint32(c)-232)
		return g<<16 | g<<8 | g
	default:
		return uint32(c) & 0xffffff
	}
}

package console

import (
	"encoding/binary"
	"image"

	"github.com/hinshun/vt10x"
)

// Resizer is a Stream whose terminal size can be set: the guest's pty
// (TIOCSWINSZ through the runtime; the guest's foreground process gets
// SIGWINCH). A Stream without it keeps the size it started with, and so
// does the screen.
type Resizer interface {
	Resize(cols, rows int) error
}

// ExtendedDesktopSize (the community RFB specification; DesktopSize is
// RFC 6143 §7.8.1) and what its rectangle says.
const (
	encExtendedDesktopSize int32 = -308

	resizeByServer = 0 // the x of the rectangle: why the size changed
	resizeByViewer = 1 // this viewer asked
	resizeByOther  = 2 // another viewer asked

	resizeDone       = 0 // the y: what became of this viewer's request
	resizeProhibited = 1
	resizeInvalid    = 3
)

// Bounds on the desktop a viewer may ask for: at least a usable terminal,
// at most a 16 MiB framebuffer. A larger window scales the desktop instead.
const (
	minColumns       = 20
	minRows          = 5
	maxDesktopWidth  = 2560
	maxDesktopHeight = 1600
)

// sizeNews is a desktop size change (or a refused request) a viewer has
// yet to be told about, in its next update.
type sizeNews struct {
	pending        bool
	reason, status uint16
}

// followsResize tells whether a viewer can follow a change of desktop size.
func (v *viewer) followsResize() bool { return v.extDesktopSize || v.desktopSize }

// setDesktopSize applies a viewer's SetDesktopSize: the screen takes the
// size asked for in pixels, its terminal as many cells as fit (the margin
// stays blank, so a viewer gets exactly the size it asked for and does not
// ask again), and the guest's terminal follows. Every viewer is told.
func (c *serverConsole) setDesktopSize(v *viewer, width, height int) {
	s := c.screen
	s.mu.Lock()
	status := uint16(resizeDone)
	switch {
	case width < minColumns*cellWidth || height < (minRows+1)*cellHeight || width > maxDesktopWidth || height > maxDesktopHeight:
		status = resizeInvalid
	default:
		for o := range s.viewers {
			if o != v && !o.followsResize() {
				status = resizeProhibited // it would be left drawing out of bounds
			}
		}
	}
	changed := status == resizeDone && s.resizeLocked(width, height, v)
	v.size = sizeNews{pending: true, reason: resizeByViewer, status: status}
	cols, rows := s.cols, s.termRows
	s.mu.Unlock()
	v.wake()
	if changed {
		c.updateStatus() // the status line's text, cut to the old width, gets the new one
		c.resizeGuest(cols, rows)
	}
}

// viewerLeft removes v from the screen; the guest's terminal follows the
// screen back to its default size when v was the last viewer.
func (c *serverConsole) viewerLeft(v *viewer) {
	if resized, cols, rows := c.screen.removeViewer(v); resized {
		c.resizeGuest(cols, rows)
	}
}

func (c *serverConsole) resizeGuest(cols, rows int) {
	r, ok := c.stream.(Resizer)
	if !ok {
		return
	}
	if err := r.Resize(cols, rows); err != nil {
		c.m.log.Warn("the guest's terminal was not resized; its lines keep their old width", "server", c.server,
			"cols", cols, "rows", rows, "err", err)
		return
	}
	c.m.log.Debug("console resized", "server", c.server, "cols", cols, "rows", rows)
}

// resizeLocked gives the screen a framebuffer of width×height pixels and
// the terminal the cells that fit, less the status line; false when the
// size is the same. Every viewer but by (the one that asked) is told.
func (s *screen) resizeLocked(width, height int, by *viewer) bool {
	if width == s.width && height == s.height {
		return false
	}
	s.allocLocked(width/cellWidth, height/cellHeight-1, width, height)
	for v := range s.viewers {
		v.damage.rows = make([]span, s.rows)
		v.damage.markAll(s.cols)
		if v != by {
			reason := uint16(resizeByServer)
			if by != nil {
				reason = resizeByOther
			}
			v.size = sizeNews{pending: true, reason: reason}
		}
	}
	s.refreshLocked()
	return true
}

// allocLocked sizes the terminal, the framebuffer (blank) and the grids.
func (s *screen) allocLocked(cols, termRows, width, height int) {
	if s.vt != nil && (cols != s.cols || termRows != s.termRows) {
		s.vt.Resize(cols, termRows)
	}
	s.cols, s.termRows, s.rows = cols, termRows, termRows+1
	s.width, s.height = width, height
	s.fb = make([]uint32, width*height)
	for i := range s.fb {
		s.fb[i] = defaultBackground
	}
	s.shadow = make([]vt10x.Glyph, cols*s.rows)
	for i := range s.shadow {
		s.shadow[i].Mode = invalidMark
	}
	s.next = nil
	status := make([]rune, cols)
	for i := range status {
		status[i] = ' '
	}
	copy(status, s.status)
	s.status = status
}

// size returns the framebuffer's size.
func (s *screen) size() (width, height int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.width, s.height
}

// appendSizeNews appends the rectangle that tells v of a size change, if
// it can be told: ExtendedDesktopSize (with why, and what became of its own
// request) or plain DesktopSize (changes only). It returns the rectangles
// added.
func (s *screen) appendSizeNews(b []byte, v *viewer) ([]byte, int) {
	news := v.size
	v.size = sizeNews{}
	switch {
	case !news.pending:
		return b, 0
	case v.extDesktopSize:
		b = appendRectHeader(b, image.Rect(int(news.reason), int(news.status), int(news.reason)+s.width, int(news.status)+s.height),
			encExtendedDesktopSize)
		b = append(b, 1, 0, 0, 0)               // one screen, padding
		b = binary.BigEndian.AppendUint32(b, 0) // its id
		b = binary.BigEndian.AppendUint32(b, 0) // at 0,0
		b = binary.BigEndian.AppendUint16(b, uint16(s.width))
		b = binary.BigEndian.AppendUint16(b, uint16(s.height))
		b = binary.BigEndian.AppendUint32(b, 0) // flags
		return b, 1
	case v.desktopSize && news.status == resizeDone:
		return appendRectHeader(b, image.Rect(0, 0, s.width, s.height), encDesktopSize), 1
	}
	return b, 0
}

// appendMargins appends the framebuffer beyond the terminal's cells (blank)
// when v has not seen it since the size changed or it asked for all.
func (s *screen) appendMargins(b []byte, v *viewer) ([]byte, int) {
	if !v.damage.margins {
		return b, 0
	}
	v.damage.margins = false
	n := 0
	right := image.Rect(s.cols*cellWidth, 0, s.width, s.height)
	bottom := image.Rect(0, s.rows*cellHeight, s.cols*cellWidth, s.height)
	for _, r := range []image.Rectangle{right, bottom} {
		if !r.Empty() {
			b = v.enc.appendRect(b, s.fb, s.width, r)
			n++
		}
	}
	return b, n
}

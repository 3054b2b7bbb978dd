package console

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/hinshun/vt10x"
)

// Glyph attribute bits of vt10x (its constants are unexported).
const (
	vtBold = 1 << 2
	// cursorMark flags the cell under the cursor in the shadow grid, so
	// that moving the cursor redraws both cells and nothing else.
	cursorMark = 1 << 14
	// invalidMark never occurs in a real glyph: a shadow cell carrying it
	// is redrawn whatever the terminal holds.
	invalidMark = -1 << 15
)

// Default terminal geometry: 80×24 for the guest and one status line below.
const (
	DefaultColumns = 80
	DefaultRows    = 24
)

// span is a dirty column range [lo, hi) of one cell row; lo >= hi is clean.
type span struct{ lo, hi int }

// damage is what a viewer has not yet been sent: a pending vertical copy of
// the terminal area (its content moved up by copyRows rows) and the cells
// changed since, one span per cell row. Status line changes mark the last row.
type damage struct {
	copyRows int
	rows     []span
	name     bool // the desktop name changed
	margins  bool // the framebuffer beyond the cells (after a resize to a size cells do not fill)
}

func (d *damage) empty() bool {
	if d.copyRows != 0 || d.name || d.margins {
		return false
	}
	for _, s := range d.rows {
		if s.lo < s.hi {
			return false
		}
	}
	return true
}

func (d *damage) mark(row, lo, hi int) {
	s := &d.rows[row]
	if s.lo >= s.hi {
		*s = span{lo, hi}
		return
	}
	s.lo, s.hi = min(s.lo, lo), max(s.hi, hi)
}

func (d *damage) markAll(cols int) {
	d.copyRows = 0
	d.margins = true
	for i := range d.rows {
		d.rows[i] = span{0, cols}
	}
}

// scroll records that the first termRows rows moved up by n rows. A pending
// copy composes with it; cells already dirty move along with their content.
func (d *damage) scroll(n, termRows, cols int) {
	if d.copyRows+n >= termRows {
		d.markAll(cols)
		return
	}
	d.copyRows += n
	copy(d.rows[:termRows-n], d.rows[n:termRows])
	for i := termRows - n; i < termRows; i++ {
		d.rows[i] = span{0, cols}
	}
}

// screen is a terminal emulator drawn into a framebuffer. It tells its
// viewers which regions changed, so each can send only those.
type screen struct {
	mu       sync.Mutex
	vt       vt10x.Terminal
	cols     int
	termRows int // rows of the guest's terminal
	rows     int // termRows plus the status line
	width    int // framebuffer pixels: the cells, and a blank margin when a viewer asked for a size they do not fill
	height   int
	// The size the screen starts with and returns to when no viewer is left.
	defaultWidth, defaultHeight int
	fb                          []uint32 // 0x00RRGGBB per pixel
	shadow                      []vt10x.Glyph
	next                        []vt10x.Glyph // the grid being compared with shadow, kept to spare garbage
	status                      []rune
	name                        string
	utf8Carry                   []byte
	clamp                       paramClamp
	replies                     []byte
	viewers                     map[*viewer]struct{}
}

func newScreen(cols, termRows int, name string) *screen {
	s := &screen{
		defaultWidth:  cols * cellWidth,
		defaultHeight: (termRows + 1) * cellHeight,
		name:          name,
		viewers:       map[*viewer]struct{}{},
	}
	s.allocLocked(cols, termRows, s.defaultWidth, s.defaultHeight)
	s.vt = vt10x.New(vt10x.WithSize(cols, termRows), vt10x.WithWriter(replyWriter{s}))
	s.refreshLocked()
	return s
}

// replyWriter collects the terminal's answers to queries (cursor position,
// device status); they are sent to the guest after the screen is unlocked.
type replyWriter struct{ s *screen }

func (w replyWriter) Write(p []byte) (int, error) {
	w.s.replies = append(w.s.replies, p...)
	return len(p), nil
}

// feed parses guest output and redraws what changed. It returns the
// terminal's replies to queries in the output, for the guest's input.
// A panic inside the emulator costs the screen's content, not the host.
func (s *screen) feed(p []byte) (replies []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("terminal emulator failed on %d bytes of output (screen cleared): %v", len(p), r)
			s.vt = vt10x.New(vt10x.WithSize(s.cols, s.termRows), vt10x.WithWriter(replyWriter{s}))
			s.utf8Carry, s.clamp, s.replies, replies = nil, paramClamp{}, nil, nil
			s.refreshLocked()
		}
	}()
	s.writeLocked(p)
	s.refreshLocked()
	replies, s.replies = s.replies, nil
	return replies, nil
}

// reset starts the terminal afresh, as after a resubscription whose backlog
// repeats output already seen.
func (s *screen) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.utf8Carry, s.clamp = nil, paramClamp{}
	s.vt.Write([]byte("\x1bc"))
	s.refreshLocked()
	s.replies = nil
}

// writeLocked hands vt10x only whole UTF-8 sequences: it drops a
// character split across two writes.
func (s *screen) writeLocked(p []byte) {
	if len(s.utf8Carry) > 0 {
		p = append(s.utf8Carry, p...)
		s.utf8Carry = nil
	}
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	if cut < len(p) {
		s.utf8Carry = append([]byte(nil), p[cut:]...)
	}
	s.vt.Write(s.clamp.filter(p[:cut]))
}

// refreshLocked brings the framebuffer up to date with the terminal and
// records the damage for every viewer.
func (s *screen) refreshLocked() {
	cur := s.grid()
	if n := s.scrolledRows(cur); n > 0 {
		s.scrollLocked(n)
	}
	for row := 0; row < s.rows; row++ {
		lo, hi := -1, -1
		for col := 0; col < s.cols; col++ {
			i := row*s.cols + col
			if cur[i] == s.shadow[i] {
				continue
			}
			s.shadow[i] = cur[i]
			s.drawCell(col, row, cur[i])
			if lo < 0 {
				lo = col
			}
			hi = col + 1
		}
		if lo >= 0 {
			for v := range s.viewers {
				v.damage.mark(row, lo, hi)
			}
		}
	}
	for v := range s.viewers {
		v.wake()
	}
}

// grid reads the terminal's cells, the cursor and the status line.
func (s *screen) grid() []vt10x.Glyph {
	if len(s.next) != len(s.shadow) {
		s.next = make([]vt10x.Glyph, len(s.shadow))
	}
	cur := s.next
	s.vt.Lock()
	for row := 0; row < s.termRows; row++ {
		for col := 0; col < s.cols; col++ {
			cur[row*s.cols+col] = s.vt.Cell(col, row)
		}
	}
	if s.vt.CursorVisible() {
		c := s.vt.Cursor()
		if c.X >= 0 && c.X < s.cols && c.Y >= 0 && c.Y < s.termRows {
			cur[c.Y*s.cols+c.X].Mode |= cursorMark
		}
	}
	s.vt.Unlock()
	for col, r := range s.status {
		cur[s.termRows*s.cols+col] = vt10x.Glyph{Char: r, FG: statusForeground, BG: statusBackground}
	}
	return cur
}

// scrolledRows finds by how many rows the terminal's content moved up, by
// comparing row hashes of the new grid with the drawn one: a move is worth
// a copy when more rows match shifted than in place. A hash collision costs
// only efficiency: the cell diff after the move redraws whatever differs.
func (s *screen) scrolledRows(cur []vt10x.Glyph) int {
	rowHash := func(g []vt10x.Glyph, row int) uint64 {
		h := uint64(14695981039346656037) // FNV-1a over the cells' fields
		for _, c := range g[row*s.cols : (row+1)*s.cols] {
			h = (h ^ (uint64(uint32(c.Char)) | uint64(uint16(c.Mode))<<32)) * 1099511628211
			h = (h ^ (uint64(c.FG) | uint64(c.BG)<<32)) * 1099511628211
		}
		return h
	}
	n := s.termRows
	oldH, newH := make([]uint64, n), make([]uint64, n)
	for r := 0; r < n; r++ {
		oldH[r], newH[r] = rowHash(s.shadow, r), rowHash(cur, r)
	}
	matches := func(shift int) (count int) {
		for r := 0; r+shift < n; r++ {
			if newH[r] == oldH[r+shift] {
				count++
			}
		}
		return count
	}
	best, bestCount := 0, matches(0)
	for shift := 1; shift < n; shift++ {
		if c := matches(shift); c > bestCount && c >= 2 {
			best, bestCount = shift, c
		}
	}
	return best
}

// scrollLocked moves the terminal area of the framebuffer and the shadow
// grid up by n rows; the rows it uncovers are redrawn by the diff.
func (s *screen) scrollLocked(n int) {
	rowPix := s.width * cellHeight
	copy(s.fb[:(s.termRows-n)*rowPix], s.fb[n*rowPix:s.termRows*rowPix])
	copy(s.shadow[:(s.termRows-n)*s.cols], s.shadow[n*s.cols:s.termRows*s.cols])
	for i := (s.termRows - n) * s.cols; i < s.termRows*s.cols; i++ {
		s.shadow[i].Mode = invalidMark
	}
	for v := range s.viewers {
		v.damage.scroll(n, s.termRows, s.cols)
	}
}

func (s *screen) drawCell(col, row int, g vt10x.Glyph) {
	fg, bg := s.colors(g)
	mask := glyph(g.Char, g.Mode&vtBold != 0)
	base := row*cellHeight*s.width + col*cellWidth
	for y := 0; y < cellHeight; y++ {
		line := s.fb[base+y*s.width : base+y*s.width+cellWidth]
		for x := range line {
			line[x] = blend(fg, bg, mask[y*cellWidth+x])
		}
	}
}

func (s *screen) colors(g vt10x.Glyph) (fg, bg uint32) {
	fg, bg = colorOf(g.FG, true), colorOf(g.BG, false)
	if g.Mode&cursorMark != 0 {
		fg, bg = bg, fg
	}
	return fg, bg
}

func blend(fg, bg uint32, a uint8) uint32 {
	switch a {
	case 0:
		return bg
	case 255:
		return fg
	}
	mix := func(shift uint) uint32 {
		f, b := (fg>>shift)&0xff, (bg>>shift)&0xff
		return ((f*uint32(a) + b*(255-uint32(a))) / 255) << shift
	}
	return mix(16) | mix(8) | mix(0)
}

// setStatus replaces the status line text and, when
// the desktop name changes, tells the viewers.
func (s *screen) setStatus(text, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.status {
		s.status[i] = ' '
	}
	i := 0
	for _, r := range text {
		if i >= len(s.status) {
			break
		}
		s.status[i] = r
		i++
	}
	if name != s.name {
		s.name = name
		for v := range s.viewers {
			v.damage.name = true
		}
	}
	s.refreshLocked()
}

// addViewer registers v; its first update is the whole screen, after the
// news of a size change since its handshake announced one.
func (s *screen) addViewer(v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.damage.rows = make([]span, s.rows)
	v.damage.markAll(s.cols)
	if v.width != 0 && (v.width != s.width || v.height != s.height) {
		v.size = sizeNews{pending: true, reason: resizeByServer}
	}
	s.viewers[v] = struct{}{}
}

// removeViewer forgets v. With the last viewer gone the screen returns to
// its default size, which a native viewer connecting next expects; it
// then returns true and the terminal's new size.
func (s *screen) removeViewer(v *viewer) (resized bool, cols, rows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.viewers, v)
	resized = len(s.viewers) == 0 && s.resizeLocked(s.defaultWidth, s.defaultHeight, nil)
	return resized, s.cols, s.termRows
}

// text returns the terminal's characters, one line per row, for tests and logs.
func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vt.String()
}

// appCursor tells whether the guest switched the cursor keys to application mode.
func (s *screen) appCursor() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vt.Mode()&vt10x.ModeAppCursor != 0
}

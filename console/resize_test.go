package console

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// readSize reads updates until a desktop size rectangle comes.
func (c *rfbClient) readSize(t *testing.T) sizeSeen {
	t.Helper()
	n := len(c.sizes)
	for len(c.sizes) == n {
		c.requestUpdate(true)
		if err := c.readUpdate(); err != nil {
			t.Fatalf("waiting for a desktop size: %v", err)
		}
	}
	return c.sizes[n]
}

// waitResizes waits until the guest's terminal was set to want (in order).
func waitResizes(t *testing.T, f *fakeStream, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(f.resizes(), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("guest terminal sizes %q, want %q", f.resizes(), want)
		}
	}
}

func TestViewerSizesTheTerminal(t *testing.T) {
	m := testRegistry(t)
	stream, ep := attach(t, m, "s1", "secret")
	stream.waitSubscribed(t)

	// A phone's noVNC: it learns it may resize from the first
	// ExtendedDesktopSize, then asks for its viewport (390×700 CSS px).
	phone, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	phone.setEncodings(encRaw, encExtendedDesktopSize, encDesktopSize)
	if got := phone.readSize(t); got != (sizeSeen{resizeByServer, resizeDone, 640, 400}) {
		t.Fatalf("first size news %+v, want the current 640×400", got)
	}
	phone.setDesktopSize(390, 700)
	if got := phone.readSize(t); got != (sizeSeen{resizeByViewer, resizeDone, 390, 700}) {
		t.Fatalf("after asking for 390×700: %+v", got)
	}
	// 48 columns of 8 px fit, and 43 rows of 16 px less the status line.
	waitResizes(t, stream, "48x42")
	stream.emit([]byte("\x1b[2J\x1b[H" + strings.Repeat("x", 50)))
	c := m.console("s1")
	waitScreen(t, c, strings.Repeat("x", 48)+"\nxx")
	// The whole desktop arrives, margins included, within the new bounds.
	phone.requestUpdate(false)
	if err := phone.readUpdate(); err != nil {
		t.Fatal(err)
	}
	if got := phone.fb[699*390+389]; got != defaultBackground {
		t.Errorf("bottom right margin pixel %06x, want the background", got)
	}

	// A viewer that follows only DesktopSize is told of the next change.
	plain, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	plain.setEncodings(encRaw, encDesktopSize)
	if plain.width != 390 || plain.height != 700 {
		t.Fatalf("second viewer's handshake: %d×%d, want the current 390×700", plain.width, plain.height)
	}
	plain.requestUpdate(false) // its answer says the encodings were taken
	if err := plain.readUpdate(); err != nil {
		t.Fatal(err)
	}
	phone.setDesktopSize(800, 480)
	if got := phone.readSize(t); got != (sizeSeen{resizeByViewer, resizeDone, 800, 480}) {
		t.Fatalf("after asking for 800×480: %+v", got)
	}
	if got := plain.readSize(t); got != (sizeSeen{-1, -1, 800, 480}) {
		t.Fatalf("the other viewer saw %+v", got)
	}
	waitResizes(t, stream, "48x42", "100x29")
	// The status line, cut to 48 columns before, has its whole text again.
	waitStatus(t, c, func(s string) bool { return strings.HasSuffix(s, "(vnc)") && len([]rune(s)) > 48 })

	// Out of bounds: refused, nothing changes.
	phone.setDesktopSize(100, 50)
	if got := phone.readSize(t); got != (sizeSeen{resizeByViewer, resizeInvalid, 800, 480}) {
		t.Fatalf("a 100×50 desktop: %+v", got)
	}

	// A viewer that cannot follow a resize (a classic native viewer)
	// keeps the size fixed while it watches.
	classic, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	classic.setEncodings(encRaw)
	classic.requestUpdate(false)
	if err := classic.readUpdate(); err != nil {
		t.Fatal(err)
	}
	phone.setDesktopSize(390, 700)
	if got := phone.readSize(t); got != (sizeSeen{resizeByViewer, resizeProhibited, 800, 480}) {
		t.Fatalf("with a viewer that cannot follow: %+v", got)
	}

	// Everyone gone: back to 80×24 for the next native viewer.
	for _, v := range []*rfbClient{phone, plain, classic} {
		v.rw.(interface{ Close() error }).Close()
	}
	waitResizes(t, stream, "48x42", "100x29", "80x24")
	next, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if next.width != 640 || next.height != 400 {
		t.Fatalf("next viewer's desktop %d×%d, want 640×400", next.width, next.height)
	}
}

// waitStatus waits until the console's status line, trimmed, satisfies ok.
func waitStatus(t *testing.T, c *serverConsole, ok func(string) bool) {
	t.Helper()
	status := func() string {
		c.screen.mu.Lock()
		defer c.screen.mu.Unlock()
		return strings.TrimSpace(string(c.screen.status))
	}
	for deadline := time.Now().Add(10 * time.Second); !ok(status()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status line %q", status())
		}
	}
}

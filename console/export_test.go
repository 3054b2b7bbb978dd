package console

import (
	"io"
	"testing"
)

// Hooks for guest_test.go, an external test package: it needs package vmm,
// which imports this one.

// TestViewer is the tests' RFB client.
type TestViewer struct{ c *rfbClient }

// DialTestViewer runs an RFB 3.8 handshake with password over conn.
func DialTestViewer(conn io.ReadWriter, password string) (*TestViewer, error) {
	c, err := dialRFB(conn, "003.008", password)
	if err != nil {
		return nil, err
	}
	c.setEncodings(encZRLE, encCopyRect)
	return &TestViewer{c}, nil
}

// SetDesktopSize asks for a desktop of width×height pixels, as noVNC does
// for its window, and waits for the answer.
func (v *TestViewer) SetDesktopSize(t *testing.T, width, height int) {
	t.Helper()
	v.c.setEncodings(encZRLE, encCopyRect, encExtendedDesktopSize)
	v.c.readSize(t) // the current size: now it may ask
	v.c.setDesktopSize(width, height)
	if got := v.c.readSize(t); got != (sizeSeen{resizeByViewer, resizeDone, width, height}) {
		t.Fatalf("asked for %d×%d: %+v", width, height, got)
	}
}

// Type sends s as key presses; '\n' is Return.
func (v *TestViewer) Type(s string) {
	for _, r := range s {
		if r == '\n' {
			v.c.tap(ksReturn)
		} else {
			v.c.tap(uint32(r))
		}
	}
}

// FullUpdate asks for and reads the whole framebuffer.
func (v *TestViewer) FullUpdate() error {
	v.c.requestUpdate(false)
	return v.c.readUpdate()
}

// CheckFramebuffer compares the viewer's picture with server's screen.
func (v *TestViewer) CheckFramebuffer(t *testing.T, m *Registry, server string) {
	t.Helper()
	compareFramebuffer(t, v.c, m.console(server))
}

// WaitScreen waits until server's terminal shows want.
func WaitScreen(t *testing.T, m *Registry, server, want string) {
	t.Helper()
	waitScreen(t, m.console(server), want)
}

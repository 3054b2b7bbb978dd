package console

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/internal/wsstream"
)

// displayFormat is the fake display's pixel format: 16-bit, unlike the
// terminal's, so that a test sees whose ServerInit a viewer got.
var displayFormat = pixelFormat{
	BitsPerPixel: 16, Depth: 16, TrueColor: true,
	RedMax: 31, GreenMax: 63, BlueMax: 31, RedShift: 11, GreenShift: 5,
}

// fakeDisplay is an RFB server as QEMU's -vnc unix:PATH is one: version
// 3.8, security None, a 640×480 desktop named "QEMU". After the handshake
// it echoes every byte a viewer sends, so that a test sees the relay carry
// bytes both ways untouched.
type fakeDisplay struct {
	t        *testing.T
	l        net.Listener
	secTypes []byte // offered; default None
	dials    atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
	shared   []byte // the ClientInit of each connection
	wg       sync.WaitGroup
}

func newFakeDisplay(t *testing.T) *fakeDisplay {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "vnc.sock"))
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDisplay{t: t, l: l, secTypes: []byte{secNone}}
	d.wg.Add(1)
	go d.accept()
	t.Cleanup(d.stop)
	return d
}

func (d *fakeDisplay) dial(ctx context.Context) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", d.l.Addr().String())
}

func (d *fakeDisplay) accept() {
	defer d.wg.Done()
	for {
		conn, err := d.l.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		d.conns = append(d.conns, conn)
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer conn.Close()
			d.serve(conn)
		}()
	}
}

func (d *fakeDisplay) serve(conn net.Conn) {
	r := bufio.NewReader(conn)
	io.WriteString(conn, "RFB 003.008\n")
	var version [12]byte
	if _, err := io.ReadFull(r, version[:]); err != nil || string(version[:]) != "RFB 003.008\n" {
		d.t.Errorf("display: client version %q, %v", version, err)
		return
	}
	conn.Write(append([]byte{byte(len(d.secTypes))}, d.secTypes...))
	chosen, err := r.ReadByte()
	if err != nil || chosen != secNone {
		return // the relay refused what was offered
	}
	conn.Write([]byte{0, 0, 0, 0})
	shared, err := r.ReadByte()
	if err != nil {
		return
	}
	d.mu.Lock()
	d.shared = append(d.shared, shared)
	d.mu.Unlock()
	conn.Write(appendServerInit(nil, initFixed(640, 480, displayFormat), "QEMU"))
	io.Copy(conn, r)
}

// hangUp closes every connection the display has, as a QEMU that exits.
func (d *fakeDisplay) hangUp() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
}

func (d *fakeDisplay) stop() {
	d.l.Close()
	d.hangUp()
	d.wg.Wait()
}

func (d *fakeDisplay) sharedFlags() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.shared...)
}

func attachRelay(t *testing.T, m *Registry, server, password string) (*fakeDisplay, Endpoint) {
	t.Helper()
	d := newFakeDisplay(t)
	ep, err := m.AttachRelay(server, "vm-"+server, d.dial, password)
	if err != nil {
		t.Fatal(err)
	}
	return d, ep
}

// echo sends msg as the viewer and reads it back from the display.
func echo(t *testing.T, c *rfbClient, msg []byte) {
	t.Helper()
	if _, err := c.rw.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.br, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("display echoed %x, sent %x", got, msg)
	}
}

func TestRelayHandshake(t *testing.T) {
	m := testRegistry(t)
	d, ep := attachRelay(t, m, "vm1", "secret")
	for _, v := range []string{"003.008", "003.003"} {
		c, err := dialRFB(dialTCP(t, ep), v, "secret")
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if c.width != 640 || c.height != 480 || c.pf != displayFormat {
			t.Errorf("%s: ServerInit %d×%d %+v, want the display's 640×480 %+v", v, c.width, c.height, c.pf, displayFormat)
		}
		if c.name != "vm-vm1" {
			t.Errorf("%s: desktop name %q, want the server's name", v, c.name)
		}
		// A key event, a pointer event and a SetDesktopSize: whatever it is, the display gets it as sent.
		echo(t, c, []byte{4, 1, 0, 0, 0, 0, 0xff, 0x0d})
		echo(t, c, []byte{5, 1, 0, 10, 0, 20})
		echo(t, c, []byte{251, 0, 4, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 0, 0, 0, 0})
	}
	if got := d.sharedFlags(); !bytes.Equal(got, []byte{1, 1}) {
		t.Errorf("ClientInit to the display %v, want shared (1) for each viewer", got)
	}
	m.Rename("vm1", "renamed")
	c, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if c.name != "renamed" {
		t.Errorf("desktop name after Rename %q", c.name)
	}
	if err := m.SetPassword("vm1", "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "secret"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("old password after SetPassword: %v", err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "other"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// pipelining writes extra right after the viewer's ClientInit, before the
// ServerInit arrives, as a viewer may.
type pipelining struct {
	io.ReadWriter
	extra []byte
}

func (p *pipelining) Write(b []byte) (int, error) {
	if len(b) == 1 && b[0] == 1 && p.extra != nil { // ClientInit (VNC auth chose type 2)
		b, p.extra = append([]byte{1}, p.extra...), nil
		n, err := p.ReadWriter.Write(b)
		return min(n, 1), err
	}
	return p.ReadWriter.Write(b)
}

func TestRelayKeepsMessagesSentWithClientInit(t *testing.T) {
	m := testRegistry(t)
	_, ep := attachRelay(t, m, "vm1", "secret")
	early := []byte{3, 0, 0, 0, 0, 0, 2, 128, 1, 224} // FramebufferUpdateRequest
	c, err := dialRFB(&pipelining{ReadWriter: dialTCP(t, ep), extra: early}, "003.008", "secret")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(early))
	if _, err := io.ReadFull(c.br, got); err != nil || !bytes.Equal(got, early) {
		t.Fatalf("display got %x (%v), want the request sent with ClientInit %x", got, err, early)
	}
}

func TestRelayWrongPassword(t *testing.T) {
	m := testRegistry(t, WithAuthLimit(2, time.Minute))
	d, ep := attachRelay(t, m, "vm1", "secret")
	for range 2 {
		_, err := dialRFB(dialTCP(t, ep), "003.008", "wrong")
		if !errors.Is(err, errAuthFailed) || !strings.Contains(err.Error(), "password check failed") {
			t.Fatalf("wrong password: %v", err)
		}
	}
	// The failure limiter is the terminal console's: the right password is refused now.
	_, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if !errors.Is(err, errAuthFailed) || !strings.Contains(err.Error(), "too many authentication failures") {
		t.Fatalf("right password after 2 failures: %v, want refused", err)
	}
	if n := d.dials.Load(); n != 0 {
		t.Errorf("display dialled %d times for viewers that never got in", n)
	}
	if _, err := m.AttachRelay("vm2", "x", d.dial, "123456789"); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("9-byte password: %v", err)
	}
	if _, err := m.AttachRelay("vm2", "x", d.dial, ""); !errors.Is(err, ErrNoConsole) {
		t.Fatalf("no password: %v", err)
	}
}

func TestRelayPendingLimit(t *testing.T) {
	m := testRegistry(t, WithMaxPending(4)) // one handshake per source address
	_, ep := attachRelay(t, m, "vm1", "secret")
	first := dialTCP(t, ep)
	var v [12]byte
	if _, err := io.ReadFull(first, v[:]); err != nil { // its handshake is in progress
		t.Fatal(err)
	}
	second := dialTCP(t, ep)
	if _, err := io.ReadFull(second, v[:]); err == nil {
		t.Fatalf("second handshake from one address got %q, want the connection closed", v)
	}
}

// TestRelayToken: over the websocket, a console token stands in for the
// password (security None to the viewer), as on a terminal's console.
func TestRelayToken(t *testing.T) {
	m := testRegistry(t)
	srv := consoleServer(t, m, false, nil)
	attachRelay(t, m, "vm1", "secret")
	h := http.Header{"Sec-WebSocket-Protocol": {"binary, hearth-token." + m.Token("vm1", tokenUser)}}
	ws, _, err := wsstream.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/servers/vm1/vnc", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c, err := dialRFB(ws, "003.008", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.width != 640 || c.name != "vm-vm1" {
		t.Errorf("ServerInit %d×%d %q", c.width, c.height, c.name)
	}
	echo(t, c, []byte{4, 1, 0, 0, 0, 0, 0, 'a'})
}

func TestRelaySeveralViewers(t *testing.T) {
	m := testRegistry(t)
	d, ep := attachRelay(t, m, "vm1", "secret")
	var viewers []*rfbClient
	for range 3 {
		c, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
		if err != nil {
			t.Fatal(err)
		}
		viewers = append(viewers, c)
	}
	for i, c := range viewers {
		echo(t, c, []byte{4, 1, 0, 0, 0, 0, 0, byte('a' + i)})
	}
	if n := d.dials.Load(); n != 3 {
		t.Errorf("%d connections to the display, want one per viewer (3)", n)
	}
}

// TestRelayDisplayGone: when the display hangs up (QEMU exits) every
// viewer is closed, the viewer's handler ends without an error, and
// nothing of the relay is left running.
func TestRelayDisplayGone(t *testing.T) {
	m := testRegistry(t)
	d, _ := attachRelay(t, m, "vm1", "secret")
	time.Sleep(10 * time.Millisecond)
	before := runtime.NumGoroutine()
	ends := make(chan error, 2)
	var viewers []*rfbClient
	for range 2 {
		viewerSide, consoleSide := net.Pipe()
		t.Cleanup(func() { viewerSide.Close() })
		go func() { ends <- m.Serve(consoleSide, "vm1", Peer{Addr: "192.0.2.1", Via: "test"}) }()
		c, err := dialRFB(viewerSide, "003.008", "secret")
		if err != nil {
			t.Fatal(err)
		}
		echo(t, c, []byte{4, 1, 0, 0, 0, 0, 0, 'a'})
		viewers = append(viewers, c)
	}
	d.hangUp()
	for _, c := range viewers {
		if n, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("viewer read %d, %v after the display hung up; want EOF", n, err)
		}
	}
	for range viewers {
		if err := <-ends; err != nil {
			t.Errorf("Serve ended with %v, want nil: the display hanging up is how a VM's console ends", err)
		}
	}
	waitGoroutines(t, before)
}

func TestRelayDisplayUnreachable(t *testing.T) {
	m := testRegistry(t)
	gone := func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "unix", filepath.Join(t.TempDir(), "no.sock"))
	}
	if _, err := m.AttachRelay("vm1", "x", gone, "secret"); err != nil {
		t.Fatal(err)
	}
	viewerSide, consoleSide := net.Pipe()
	defer viewerSide.Close()
	ended := make(chan error, 1)
	go func() { ended <- m.Serve(consoleSide, "vm1", Peer{Addr: "192.0.2.1", Via: "test"}) }()
	if _, err := dialRFB(viewerSide, "003.008", "secret"); err == nil {
		t.Fatal("handshake succeeded with no display")
	}
	if err := <-ended; !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("Serve: %v, want ErrUpstream with the dial's error", err)
	}
}

// TestRelayDisplayWantsPassword: a display that asks for authentication
// is refused with words, not relayed.
func TestRelayDisplayWantsPassword(t *testing.T) {
	m := testRegistry(t)
	d := newFakeDisplay(t)
	d.secTypes = []byte{secVNCAuth}
	if _, err := m.AttachRelay("vm1", "x", d.dial, "secret"); err != nil {
		t.Fatal(err)
	}
	viewerSide, consoleSide := net.Pipe()
	defer viewerSide.Close()
	ended := make(chan error, 1)
	go func() { ended <- m.Serve(consoleSide, "vm1", Peer{Addr: "192.0.2.1", Via: "test"}) }()
	dialRFB(viewerSide, "003.008", "secret")
	if err := <-ended; !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "relays only None") {
		t.Fatalf("Serve: %v", err)
	}
}

// TestRelayDetachLeavesNothing: Detach cuts relayed viewers and their
// display connections, and no goroutine is left.
func TestRelayDetachLeavesNothing(t *testing.T) {
	m := testRegistry(t)
	srv := consoleServer(t, m, true, nil)
	d := newFakeDisplay(t)
	time.Sleep(10 * time.Millisecond)
	before := runtime.NumGoroutine()

	ep, err := m.AttachRelay("vm1", "x", d.dial, "pw")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := dialWS(t, srv.URL, "/servers/vm1/vnc", "")
	if err != nil {
		t.Fatal(err)
	}
	web, err := dialRFB(ws, "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, web, []byte{4, 1, 0, 0, 0, 0, 0, 'a'})
	echo(t, tcp, []byte{4, 1, 0, 0, 0, 0, 0, 'b'})
	m.Detach("vm1")
	if _, err := tcp.br.ReadByte(); err != io.EOF {
		t.Errorf("TCP viewer after Detach: %v, want EOF", err)
	}
	if _, err := web.br.ReadByte(); err == nil {
		t.Error("websocket viewer still open after Detach")
	}
	ws.Close()
	if m.HasConsole("vm1") {
		t.Error("console still there after Detach")
	}
	waitGoroutines(t, before)
}

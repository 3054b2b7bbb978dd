package console

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/internal/logtest"
)

// testRegistry returns a registry on loopback with kernel-chosen ports.
func testRegistry(t *testing.T, opts ...Option) *Registry {
	t.Helper()
	m := NewRegistry(append([]Option{WithListen("127.0.0.1"), WithBasePort(0), WithLogger(logtest.Logger(t))}, opts...)...)
	t.Cleanup(func() { m.Close() })
	return m
}

func attach(t *testing.T, m *Registry, server, password string) (*fakeStream, Endpoint) {
	t.Helper()
	s := newFakeStream()
	ep, err := m.Attach(server, "guest-"+server, s, password)
	if err != nil {
		t.Fatal(err)
	}
	return s, ep
}

func dialTCP(t *testing.T, ep Endpoint) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

func TestHandshakeVersions(t *testing.T) {
	m := testRegistry(t)
	_, ep := attach(t, m, "s1", "secret")
	for _, v := range []string{"003.008", "003.007", "003.003", "003.005"} {
		t.Run(v, func(t *testing.T) {
			c, err := dialRFB(dialTCP(t, ep), v, "secret")
			if err != nil {
				t.Fatal(err)
			}
			if c.width != DefaultColumns*cellWidth || c.height != (DefaultRows+1)*cellHeight {
				t.Errorf("framebuffer %d×%d, want %d×%d", c.width, c.height, DefaultColumns*cellWidth, (DefaultRows+1)*cellHeight)
			}
			if c.name != "guest-s1" {
				t.Errorf("desktop name %q", c.name)
			}
			c.requestUpdate(false)
			if err := c.readUpdate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	m := testRegistry(t)
	_, ep := attach(t, m, "s1", "secret")
	_, err := dialRFB(dialTCP(t, ep), "003.008", "wrong")
	if !errors.Is(err, errAuthFailed) || !strings.Contains(err.Error(), "password check failed") {
		t.Fatalf("3.8 with a wrong password: %v", err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.003", "secre"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("3.3 with a wrong password: %v", err)
	}
	// Only the first 8 bytes are a DES key: the API refuses longer passwords, so must we.
	if _, err := m.Attach("s2", "x", newFakeStream(), "123456789"); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("9-byte password: %v", err)
	}
	if _, err := m.Attach("s2", "x", newFakeStream(), ""); !errors.Is(err, ErrNoConsole) {
		t.Fatalf("no password: %v", err)
	}
}

func TestAuthRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := testRegistry(t, WithClock(clock), WithAuthLimit(3, time.Minute))
	_, ep := attach(t, m, "s1", "secret")
	for i := 0; i < 3; i++ {
		if _, err := dialRFB(dialTCP(t, ep), "003.008", "guess"+strconv.Itoa(i)); !errors.Is(err, errAuthFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	_, err := dialRFB(dialTCP(t, ep), "003.008", "secret")
	if !errors.Is(err, errAuthFailed) || !strings.Contains(err.Error(), "too many authentication failures") {
		t.Fatalf("right password after 3 failures: %v, want refused", err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.003", "secret"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("3.3 client after 3 failures: %v, want refused", err)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "secret"); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

// guessAtOnce opens n connections from source, takes each through the
// handshake to its challenge (or refusal), then answers every challenge
// given so far wrongly at the same moment (and any given later at once).
// It returns how many guesses were evaluated (answered "password check
// failed") and how many were refused unevaluated.
func guessAtOnce(t *testing.T, ep Endpoint, source string, n int) (evaluated, refused int) {
	t.Helper()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answer := make(chan struct{})
	progress := make(chan struct{}, 2*n) // a connection got its challenge, or ended
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { progress <- struct{}{} }()
			conn, err := dialer.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 16)
			_, err = io.ReadFull(conn, buf[:12])
			if err == nil {
				_, err = conn.Write([]byte("RFB 003.008\n"))
			}
			if err == nil {
				_, err = io.ReadFull(conn, buf[:1])
			}
			if err != nil || buf[0] == 0 { // zero security types: refused before any challenge
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			io.ReadFull(conn, buf[:buf[0]])
			conn.Write([]byte{secVNCAuth})
			if _, err := io.ReadFull(conn, buf); err != nil {
				t.Errorf("reading the challenge: %v", err)
				return
			}
			progress <- struct{}{}
			<-answer
			conn.Write(make([]byte, 16))
			if _, err := io.ReadFull(conn, buf[:4]); err == nil && binary.BigEndian.Uint32(buf) == 1 {
				mu.Lock()
				evaluated++
				mu.Unlock()
			}
		}()
	}
	// Answer once nothing has moved for a moment: every connection then
	// has its challenge, its refusal, or waits behind the guesses in flight.
	for quiet := false; !quiet; {
		select {
		case <-progress:
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	close(answer)
	wg.Wait()
	return evaluated, refused
}

// However many connections guess in parallel, a source gets no more
// guesses evaluated than the limit: each counts from before its challenge.
func TestParallelGuessesAreLimited(t *testing.T) {
	m := testRegistry(t, WithAuthLimit(5, time.Minute))
	_, ep := attach(t, m, "s1", "secret")
	evaluated, refused := guessAtOnce(t, ep, "127.0.0.1", 50)
	if evaluated != 5 || refused != 45 {
		t.Fatalf("50 parallel wrong guesses: %d evaluated, %d refused; want 5 and 45", evaluated, refused)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "secret"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("right password after the burst: %v, want refused", err)
	}
}

// Guesses from many addresses at one server are bounded too (4× the
// per-address limit), and the server's other consoles are not affected.
func TestGuessesPerServerAreLimited(t *testing.T) {
	m := testRegistry(t, WithAuthLimit(2, time.Minute))
	_, ep := attach(t, m, "s1", "secret")
	_, other := attach(t, m, "s2", "secret")
	total := 0
	for i := 2; i <= 7; i++ {
		evaluated, _ := guessAtOnce(t, ep, "127.0.0."+strconv.Itoa(i), 2)
		total += evaluated
	}
	if total != 8 {
		t.Fatalf("6 addresses × 2 wrong guesses: %d evaluated, want 8 (the per-server limit)", total)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "secret"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("s1 from a fresh source after the per-server limit: %v, want refused", err)
	}
	if _, err := dialRFB(dialTCP(t, other), "003.008", "secret"); err != nil {
		t.Fatalf("s2 from a fresh source: %v", err)
	}
}

// Handshakes in progress are bounded per source address (a quarter of the
// total) and on all consoles together.
func TestPendingHandshakesAreBounded(t *testing.T) {
	m := testRegistry(t, WithMaxPending(8))
	_, ep := attach(t, m, "s1", "secret")
	silent := func(source string) net.Conn { // a client that never answers holds a slot
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		conn, err := d.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn
	}
	turnedAway := func(conn net.Conn) bool {
		n, err := conn.Read(make([]byte, 12))
		return n == 0 && err == io.EOF
	}
	for range 2 {
		if turnedAway(silent("127.0.0.1")) {
			t.Fatal("one of the first two handshakes of an address was turned away")
		}
	}
	if !turnedAway(silent("127.0.0.1")) {
		t.Fatal("a third handshake in progress from one address was not turned away")
	}
	for _, source := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"} {
		if turnedAway(silent(source)) {
			t.Fatalf("a handshake from %s was turned away before the total was reached", source)
		}
	}
	if !turnedAway(silent("127.0.0.5")) {
		t.Fatal("a ninth handshake in progress was not turned away")
	}
}

func TestPasswordChange(t *testing.T) {
	m := testRegistry(t)
	s, ep := attach(t, m, "s1", "old")
	open, err := dialRFB(dialTCP(t, ep), "003.008", "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPassword("s1", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "old"); !errors.Is(err, errAuthFailed) {
		t.Fatalf("old password after the change: %v", err)
	}
	if _, err := dialRFB(dialTCP(t, ep), "003.008", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	open.tap('x') // the connection opened before the change stays
	s.waitInput(t, "x")
	if err := m.SetPassword("s1", "toolong12"); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("9 bytes: %v", err)
	}
	if err := m.SetPassword("nope", "x"); !errors.Is(err, ErrNoConsole) {
		t.Fatalf("unknown server: %v", err)
	}
}

func TestDetachCutsViewersAndClosesPort(t *testing.T) {
	m := testRegistry(t)
	_, ep := attach(t, m, "s1", "pw")
	c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	m.Detach("s1")
	c.requestUpdate(false)
	for err == nil {
		err = c.readUpdate()
	}
	if _, ok := m.Endpoint("s1"); ok {
		t.Error("endpoint still known after Detach")
	}
	if conn, err := net.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port))); err == nil {
		conn.Close()
		t.Error("port still open after Detach")
	}
}

// TestFramebufferMatchesScreen decodes updates like a viewer and compares
// them pixel for pixel with the rendered terminal, in noVNC's pixel format,
// through a full update, incremental ones and a scroll.
func TestFramebufferMatchesScreen(t *testing.T) {
	for _, tc := range []struct {
		name string
		encs []int32
		pf   pixelFormat
	}{
		{"raw", nil, noVNCPixelFormat},
		{"raw-native", nil, serverPixelFormat},
		{"raw-16bit", nil, pixelFormat{BitsPerPixel: 16, Depth: 16, TrueColor: true, RedMax: 31, GreenMax: 63, BlueMax: 31, RedShift: 11, GreenShift: 5}},
		{"zrle+copyrect", []int32{encZRLE, encCopyRect}, noVNCPixelFormat},
		{"zrle-bigendian", []int32{encZRLE, encCopyRect}, pixelFormat{BitsPerPixel: 32, Depth: 24, BigEndian: true, TrueColor: true, RedMax: 255, GreenMax: 255, BlueMax: 255, RedShift: 24, GreenShift: 16, BlueShift: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testRegistry(t)
			s, ep := attach(t, m, "s1", "pw")
			con := m.console("s1")
			s.emit([]byte("hello \x1b[1;31mred\x1b[0m \x1b[44mblue\x1b[0m é ünïcode ─│┌\r\n\x1b(0lqqk\x1b(B\r\n"))
			waitScreen(t, con, "ünïcode")
			c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
			if err != nil {
				t.Fatal(err)
			}
			c.setPixelFormat(tc.pf)
			if tc.encs != nil {
				c.setEncodings(append(tc.encs, encDesktopName)...)
			}
			c.requestUpdate(false)
			if err := c.readUpdate(); err != nil {
				t.Fatal(err)
			}
			compareFramebuffer(t, c, con)

			var out strings.Builder
			for i := 0; i < 30; i++ {
				out.WriteString("line " + strconv.Itoa(i) + "\r\n")
			}
			s.emit([]byte(out.String()))
			waitScreen(t, con, "line 29")
			c.requestUpdate(true)
			if err := c.readUpdate(); err != nil {
				t.Fatal(err)
			}
			compareFramebuffer(t, c, con)
			s.emit([]byte("line 30\r\nline 31\r\n"))
			waitScreen(t, con, "line 31")
			c.requestUpdate(true)
			if err := c.readUpdate(); err != nil {
				t.Fatal(err)
			}
			compareFramebuffer(t, c, con)
			// Two scrolls and a change in between, then one update: the
			// copies compose and the changed cells move with them.
			s.emit([]byte("line 32\r\n"))
			waitScreen(t, con, "line 32")
			s.emit([]byte("\x1b[5;1H\x1b[7mchanged\x1b[0m\x1b[24;1H"))
			waitScreen(t, con, "changed")
			s.emit([]byte("\r\nline 33\r\nline 34\r\nline 35"))
			waitScreen(t, con, "line 35")
			c.requestUpdate(true)
			if err := c.readUpdate(); err != nil {
				t.Fatal(err)
			}
			compareFramebuffer(t, c, con)
			if tc.encs != nil && c.encodings[encCopyRect] < 2 {
				t.Errorf("no CopyRect after scrolling; rectangles by encoding: %v", c.encodings)
			}
			if tc.encs != nil && c.encodings[encRaw] != 0 {
				t.Errorf("raw rectangles sent to a ZRLE client: %v", c.encodings)
			}
		})
	}
}

// compareFramebuffer waits until the screen has no damage left for any
// viewer and compares the client's picture with it.
func compareFramebuffer(t *testing.T, c *rfbClient, con *serverConsole) {
	t.Helper()
	con.screen.mu.Lock()
	defer con.screen.mu.Unlock()
	bad := 0
	for i, p := range con.screen.fb {
		if want := c.rgbOf(c.pf.pixel(p)); c.fb[i] != want { // as precise as the client's pixel format allows
			if bad < 5 {
				t.Errorf("pixel (%d,%d): client %06x, server %06x (%06x in the client's format)", i%c.width, i/c.width, c.fb[i], p, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d pixels differ", bad)
	}
	fg := 0
	for _, p := range con.screen.fb {
		if p != defaultBackground {
			fg++
		}
	}
	if fg < 1000 {
		t.Fatalf("only %d pixels drawn: the screen is not rendered", fg)
	}
}

func TestKeyEventsReachGuest(t *testing.T) {
	m := testRegistry(t)
	s, ep := attach(t, m, "s1", "pw")
	c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range "echo $((6*7))" {
		c.tap(uint32(r))
	}
	c.tap(ksReturn)
	c.key(ksControlL, true)
	c.tap('c')
	c.key(ksControlL, false)
	c.tap(ksUp)
	c.tap(ksF1)
	c.tap(ksF12)
	c.tap(ksDelete)
	c.cutText("ls\nexit\n")
	s.waitInput(t, "echo $((6*7))\r\x03\x1b[A\x1bOP\x1b[24~\x1b[3~ls\rexit\r")
}

func TestKeyboard(t *testing.T) {
	for _, tc := range []struct {
		name string
		mods []uint32
		sym  uint32
		app  bool
		want string
	}{
		{"letter", nil, 'a', false, "a"},
		{"latin1", nil, 0xe9, false, "é"},
		{"unicode", nil, 0x01000000 + '€', false, "€"},
		{"return", nil, ksReturn, false, "\r"},
		{"backspace", nil, ksBackSpace, false, "\x7f"},
		{"tab", nil, ksTab, false, "\t"},
		{"shift-tab", []uint32{ksShiftL}, ksTab, false, "\x1b[Z"},
		{"escape", nil, ksEscape, false, "\x1b"},
		{"up", nil, ksUp, false, "\x1b[A"},
		{"up app", nil, ksUp, true, "\x1bOA"},
		{"ctrl-left", []uint32{ksControlL}, ksLeft, false, "\x1b[1;5D"},
		{"home", nil, ksHome, false, "\x1b[H"},
		{"end", nil, ksEnd, false, "\x1b[F"},
		{"pgup", nil, ksPageUp, false, "\x1b[5~"},
		{"pgdn", nil, ksPageDown, false, "\x1b[6~"},
		{"insert", nil, ksInsert, false, "\x1b[2~"},
		{"delete", nil, ksDelete, false, "\x1b[3~"},
		{"ctrl-alt-del", []uint32{ksControlL, ksAltL}, ksDelete, false, "\x1b[3;7~"},
		{"f1", nil, ksF1, false, "\x1bOP"},
		{"f5", nil, ksF1 + 4, false, "\x1b[15~"},
		{"f10", nil, ksF1 + 9, false, "\x1b[21~"},
		{"ctrl-c", []uint32{ksControlR}, 'c', false, "\x03"},
		{"ctrl-C", []uint32{ksControlL, ksShiftL}, 'C', false, "\x03"},
		{"ctrl-[", []uint32{ksControlL}, '[', false, "\x1b"},
		{"ctrl-space", []uint32{ksControlL}, ' ', false, "\x00"},
		{"alt-x", []uint32{ksAltL}, 'x', false, "\x1bx"},
		{"kp-5", nil, 0xffb5, false, "5"},
		{"kp-enter", nil, ksKPEnter, false, "\r"},
		{"kp-end", nil, ksKPHome + 7, false, "\x1b[F"},
		{"shift alone", nil, ksShiftL, false, ""},
		{"unknown", nil, 0xfe03, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keyboard{appCursor: tc.app}
			for _, m := range tc.mods {
				k.event(true, m)
			}
			if got := string(k.event(true, tc.sym)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got := k.event(false, tc.sym); got != nil {
				t.Errorf("release sent %q", got)
			}
		})
	}
}

// TestTerminalQueries: shells ask for the cursor position after a prompt;
// an unanswered query makes them wait.
func TestTerminalQueries(t *testing.T) {
	m := testRegistry(t)
	s, _ := attach(t, m, "s1", "pw")
	s.waitSubscribed(t)
	s.emit([]byte("ab\r\ncd\x1b[6n"))
	s.waitInput(t, "\x1b[2;3R")
	s.emit([]byte("\x1b[5n"))
	s.waitInput(t, "\x1b[0n")
}

func TestViewersSeeEachOther(t *testing.T) {
	m := testRegistry(t)
	_, ep := attach(t, m, "s1", "pw")
	con := m.console("s1")
	first, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	first.setEncodings(encZRLE, encDesktopName)
	first.requestUpdate(false)
	if err := first.readUpdate(); err != nil {
		t.Fatal(err)
	}
	second, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if second.name != "guest-s1" && second.name != "guest-s1 (2 viewers)" {
		t.Errorf("second viewer's desktop name %q", second.name)
	}
	for first.name != "guest-s1 (2 viewers)" {
		first.requestUpdate(true)
		if err := first.readUpdate(); err != nil {
			t.Fatal(err)
		}
	}
	con.screen.mu.Lock()
	status := string(con.screen.status)
	con.screen.mu.Unlock()
	if !strings.Contains(status, "2 viewers: 127.0.0.1 (vnc), 127.0.0.1 (vnc)") {
		t.Errorf("status line %q", status)
	}
}

// TestResubscribe: a console dropped by the stream for falling behind
// subscribes again and redraws from the backlog.
func TestResubscribe(t *testing.T) {
	m := testRegistry(t)
	s, _ := attach(t, m, "s1", "pw")
	con := m.console("s1")
	s.emit([]byte("before\r\n"))
	waitScreen(t, con, "before")
	s.mu.Lock()
	for ch := range s.subs {
		delete(s.subs, ch)
		close(ch)
	}
	s.mu.Unlock()
	s.emit([]byte("after\r\n"))
	waitScreen(t, con, "after")
	if n := strings.Count(con.screen.text(), "before"); n != 1 {
		t.Errorf("\"before\" shown %d times after the resubscription:\n%s", n, con.screen.text())
	}
}

func TestSplitUTF8(t *testing.T) {
	sc := newScreen(20, 3, "x")
	for _, b := range []byte("ünï─") {
		sc.feed([]byte{b})
	}
	if got := sc.text(); !strings.HasPrefix(got, "ünï─") {
		t.Errorf("screen %q", got)
	}
}

func TestVNCResponse(t *testing.T) {
	// A challenge/response pair as computed by TigerVNC's vncauth for "password".
	challenge := []byte("0123456789abcdef")
	a, b := vncResponse("password", challenge), vncResponse("passwore", challenge)
	if string(a) == string(b) || len(a) != 16 {
		t.Fatal("responses for different passwords are equal")
	}
	if !checkResponse("password", challenge, a) || checkResponse("password", challenge, b) {
		t.Fatal("checkResponse")
	}
}

func TestPortsFromBaseUpward(t *testing.T) {
	// A random base far from 5900, so parallel test runs don't meet; its
	// first port is taken here, so the console must move on to the next.
	var base int
	var taken net.Listener
	for try := 0; taken == nil; try++ {
		base = 20000 + rand.IntN(20000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base)))
		if err == nil {
			taken = l
		} else if try == 20 {
			t.Fatal(err)
		}
	}
	defer taken.Close()
	m := NewRegistry(WithListen("127.0.0.1"), WithBasePort(base), WithLogger(logtest.Logger(t)))
	defer m.Close()
	_, first := attach(t, m, "a", "pw")
	_, second := attach(t, m, "b", "pw")
	if first.Port != base+1 || second.Port != base+2 || first.IP != "127.0.0.1" {
		t.Fatalf("endpoints %+v %+v, want ports %d and %d (%d is taken)", first, second, base+1, base+2, base)
	}
	m.Detach("a")
	_, again := attach(t, m, "c", "pw")
	if again.Port != base+1 {
		t.Fatalf("after detaching a: port %d, want %d again", again.Port, base+1)
	}
	if ep, ok := m.Endpoint("c"); !ok || ep != again {
		t.Fatalf("Endpoint(c) = %+v %v", ep, ok)
	}
}

func TestWebsocketOnly(t *testing.T) {
	m := NewRegistry(WithLogger(logtest.Logger(t)))
	defer m.Close()
	ep, err := m.Attach("s1", "x", newFakeStream(), "pw")
	if err != nil || ep.Port != 0 {
		t.Fatalf("Attach without --vnc-listen: %+v %v, want no port", ep, err)
	}
	m.Rename("s1", "renamed")
	checkStatus(t, m.console("s1"), "renamed")
	if err := m.SetPassword("s1", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Endpoint("s1"); ok {
		t.Fatal("an empty password left the console open")
	}
	m.Close()
	if _, err := m.Attach("s2", "x", newFakeStream(), "pw"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach after Close: %v", err)
	}
}

func checkStatus(t *testing.T, c *serverConsole, want string) {
	t.Helper()
	c.screen.mu.Lock()
	defer c.screen.mu.Unlock()
	if got := string(c.screen.status); !strings.Contains(got, want) {
		t.Fatalf("status line %q, want %q", got, want)
	}
}

// stuckStream is a guest that never reads its terminal input.
type stuckStream struct {
	*fakeStream
	unblock chan struct{}
}

func (s stuckStream) Write(p []byte) (int, error) {
	<-s.unblock
	return 0, errors.New("guest gone")
}

// TestDetachWithStuckGuest: a paused guest does not read its input; typing
// into it must not hang the viewer, the console or Detach.
func TestDetachWithStuckGuest(t *testing.T) {
	m := testRegistry(t)
	s := stuckStream{newFakeStream(), make(chan struct{})}
	defer close(s.unblock)
	ep, err := m.Attach("s1", "x", s, "pw")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2*inputQueue; i++ {
		c.tap('x')
	}
	s.emit([]byte("\x1b[6n")) // a query whose answer cannot be delivered either
	c.requestUpdate(false)
	if err := c.readUpdate(); err != nil {
		t.Fatalf("viewer stalled behind a guest that does not read: %v", err)
	}
	done := make(chan struct{})
	go func() { m.Detach("s1"); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Detach hangs on a guest that does not read its input")
	}
}

// complaints fails the test on every line written to it.
type complaints struct{ t *testing.T }

func (c complaints) Write(p []byte) (int, error) {
	c.t.Errorf("unexpected complaint: %s", p)
	return len(p), nil
}

// TestExtendedClipboardPaste: noVNC pastes UTF-8 through the extended
// clipboard (caps, notify, request, provide), the classic message being Latin-1.
func TestExtendedClipboardPaste(t *testing.T) {
	// Any log line is a complaint, e.g. a caps message taken for a provide.
	m := testRegistry(t, WithLogger(slog.New(slog.NewTextHandler(complaints{t}, nil))))
	s, ep := attach(t, m, "s1", "pw")
	c, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	c.setEncodings(encZRLE, encExtendedClipboard)
	c.requestUpdate(false)
	if err := c.readUpdate(); err != nil {
		t.Fatal(err)
	}
	if len(c.clipboard) != 1 || binary.BigEndian.Uint32(c.clipboard[0])&(clipCaps|clipNotify|clipRequest|clipProvide|clipText) != clipCaps|clipNotify|clipRequest|clipProvide|clipText {
		t.Fatalf("capabilities %x, want caps with notify, request, provide and text", c.clipboard)
	}
	// The client's own caps, as noVNC sends them (all actions): nothing to answer.
	c.extendedCut(clipCaps|clipRequest|clipPeek|clipNotify|clipProvide|clipText, []byte{0, 0, 0, 0})
	c.extendedCut(clipNotify|clipText, nil)
	c.tap('x') // an echo-free guest: make an update to carry the reply along
	s.emit([]byte("x"))
	c.requestUpdate(true)
	if err := c.readUpdate(); err != nil {
		t.Fatal(err)
	}
	if len(c.clipboard) != 2 || binary.BigEndian.Uint32(c.clipboard[1]) != clipRequest|clipText {
		t.Fatalf("after notify: %x, want a request for text", c.clipboard)
	}
	text := "ünï €✓\r\nsecond\r\n\x00"
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	binary.Write(zw, binary.BigEndian, uint32(len(text)))
	zw.Write([]byte(text))
	zw.Close()
	c.extendedCut(clipProvide|clipText, z.Bytes())
	s.waitInput(t, "ünï €✓\rsecond\r")
	if strings.Contains(s.typedInput(), "\x00") {
		t.Errorf("NUL typed into the guest: %q", s.typedInput())
	}
}

// TestDetachLeavesNothing: after Detach no goroutine of the console, its
// port or its viewers (TCP and websocket) is left.
func TestDetachLeavesNothing(t *testing.T) {
	m := testRegistry(t)
	srv := consoleServer(t, m, true, nil)
	time.Sleep(10 * time.Millisecond)
	before := runtime.NumGoroutine()

	s, ep := attach(t, m, "s1", "pw")
	tcp, err := dialRFB(dialTCP(t, ep), "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	tcp.requestUpdate(false)
	ws, _, err := dialWS(t, srv.URL, "/servers/s1/vnc", "")
	if err != nil {
		t.Fatal(err)
	}
	web, err := dialRFB(ws, "003.008", "pw")
	if err != nil {
		t.Fatal(err)
	}
	web.tap('a')
	s.waitInput(t, "a")
	m.Detach("s1")
	ws.Close()
	for _, c := range []*rfbClient{tcp, web} {
		for c.readUpdate() == nil {
		}
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits until no more goroutines run than before, and
// fails with their stacks if that does not happen.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParamClamp(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain 123456 text", "plain 123456 text"},
		{"\x1b[100000000000000Z", "\x1b[1000Z"},
		{"\x1b[12;123456789H", "\x1b[12;1234H"},
		{"\x1b[?25l\x1b[38;5;200m", "\x1b[?25l\x1b[38;5;200m"},
		{"\x1b[99999", "\x1b[9999"},
	} {
		var c paramClamp
		if got := string(c.filter([]byte(tc.in))); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	// A sequence split across writes.
	var c paramClamp
	got := string(c.filter([]byte("\x1b[12"))) + string(c.filter([]byte("345678Z")))
	if got != "\x1b[1234Z" {
		t.Errorf("split: %q", got)
	}
	// The guest output the fuzzer found: vt10x looped for ever on it.
	sc := newScreen(DefaultColumns, DefaultRows, "x")
	sc.feed([]byte("\x1b[00\x1b[100000000000000Z[.....38;5;200mx\x1b[48;2;1;2;3"))
	sc.feed([]byte("\x1b[99999999999I\x1b[99999999999@\r\ndone"))
	if !strings.Contains(sc.text(), "done") {
		t.Errorf("screen %q", sc.text())
	}
}

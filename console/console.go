package console

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hearth/internal/ratelimit"
)

// serverConsole is one server's desktop shown to any number of viewers,
// over its own TCP port and over websockets: its terminal drawn by Hearth
// (stream, screen), or a display that speaks RFB itself, relayed (dial).
type serverConsole struct {
	m       *Registry
	server  string
	stream  Stream // nil for a relay, and so is screen
	screen  *screen
	dial    Dialer          // nil for a terminal
	life    context.Context // ends when the console closes: cuts upstream dials
	cancel  context.CancelFunc
	done    chan struct{} // closed when the stream reader ends
	input   chan []byte   // keys, paste and query answers on their way to the guest
	dropped atomic.Int64

	mu       sync.Mutex
	name     string
	password string
	conns    map[io.Closer]string // open connections and their viewer labels ("" during the handshake)
	closed   bool
	listener net.Listener
	endpoint Endpoint
	wg       sync.WaitGroup // connection handlers and the listener loop
}

func newConsole(m *Registry, server, name string, s Stream, password string) *serverConsole {
	ctx, cancel := context.WithCancel(context.Background())
	c := &serverConsole{
		m: m, server: server, stream: s, name: name, password: password, life: ctx,
		screen: newScreen(m.cols, m.rows, desktopName(name, nil)),
		cancel: cancel, done: make(chan struct{}), input: make(chan []byte, inputQueue),
		conns: map[io.Closer]string{},
	}
	c.screen.setStatus(statusLine(name, nil), desktopName(name, nil))
	go c.run(ctx)
	go c.writeInput(ctx)
	return c
}

// run feeds the guest's output into the screen for as long as the console
// exists, whether anyone watches or not, resubscribing when the stream
// drops it for falling behind.
func (c *serverConsole) run(ctx context.Context) {
	defer close(c.done)
	for first := true; ctx.Err() == nil; first = false {
		backlog, updates, cancel := c.stream.Subscribe()
		if !first {
			c.screen.reset() // the backlog repeats output already drawn
		}
		// Queries in the backlog were asked before we listened; answering
		// them now would type stray replies into the guest.
		if _, err := c.screen.feed(backlog); err != nil {
			c.m.log.Warn("guest output the terminal emulator refused", "server", c.server, "err", err)
		}
		received := c.pump(ctx, updates)
		cancel()
		if !received {
			select { // a stream that ends at once: don't spin
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *serverConsole) pump(ctx context.Context, updates <-chan []byte) (received bool) {
	for {
		select {
		case <-ctx.Done():
			return received
		case p, ok := <-updates:
			if !ok {
				return received
			}
			received = true
			// Coalesce what is already queued: one redraw for a burst of output.
			for more := true; more && len(p) < 64<<10; {
				select {
				case q, ok := <-updates:
					if !ok {
						more = false
						break
					}
					p = append(p, q...)
				default:
					more = false
				}
			}
			replies, err := c.screen.feed(p)
			if err != nil {
				c.m.log.Warn("guest output the terminal emulator refused", "server", c.server, "err", err)
			}
			if len(replies) > 0 {
				c.typeIn(replies)
			}
		}
	}
}

// Endpoint is where a console's native VNC port listens: the values of the
// server's vnc:ip and vnc:port. Port 0 means the console is reachable by
// websocket only.
type Endpoint struct {
	IP   string
	Port int
}

func (c *serverConsole) setPassword(p string) {
	c.mu.Lock()
	c.password = p
	c.mu.Unlock()
}

func (c *serverConsole) currentPassword() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.password
}

// close cuts every connection, closes the port and stops reading the stream.
func (c *serverConsole) close() {
	c.mu.Lock()
	c.closed = true
	if c.listener != nil {
		c.listener.Close()
	}
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	<-c.done
}

func (c *serverConsole) accept(l net.Listener) {
	defer c.wg.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.serve(conn, host, "vnc", false); err != nil {
				c.m.log.Warn("console viewer ended with an error", "server", c.server, "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

type deadliner interface{ SetDeadline(time.Time) error }

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// writeTimeout cuts a viewer that takes no data for this long (a stalled
// network), so it does not hold its connection forever.
const writeTimeout = time.Minute

// stallGuard writes to a viewer within writeTimeout, when its connection
// has write deadlines.
type stallGuard struct{ w io.Writer }

func (g stallGuard) Write(p []byte) (int, error) {
	if wd, ok := g.w.(writeDeadliner); ok {
		wd.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	return g.w.Write(p)
}

// setLabel records who a connection that passed its handshake is.
func (c *serverConsole) setLabel(conn io.Closer, label string) {
	c.mu.Lock()
	c.conns[conn] = label
	c.mu.Unlock()
}

// serve speaks RFB with one viewer until either side closes.
func (c *serverConsole) serve(conn io.ReadWriteCloser, addr, via string, noAuth bool) error {
	defer conn.Close()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNoConsole
	}
	c.conns[conn] = ""
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
		c.updateStatus()
	}()

	if err := c.m.beginHandshake(addr); err != nil {
		return err
	}
	if d, ok := conn.(deadliner); ok {
		d.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	br := bufio.NewReader(conn)
	c.mu.Lock()
	name := desktopName(c.name, nil)
	c.mu.Unlock()
	var width, height int
	if c.screen != nil {
		width, height = c.screen.size()
	}
	var up *upstream // a relay's connection to its display
	serverInit := func() (init []byte, err error) {
		if c.dial != nil {
			up, init, err = c.dialUpstream(name)
			return init, err
		}
		return appendServerInit(nil, initFixed(width, height, serverPixelFormat), name), nil
	}
	_, err := handshake(conn, br, handshakeConfig{
		password: c.currentPassword, noAuth: noAuth, now: c.m.now, addr: addr,
		limits:     []ratelimit.Limit{{Failures: c.m.byAddr, Key: addr}, {Failures: c.m.byServer, Key: c.server}},
		serverInit: serverInit,
	})
	c.m.endHandshake(addr)
	if err != nil {
		if up != nil {
			up.Close()
		}
		return fmt.Errorf("handshake: %w", err)
	}
	if d, ok := conn.(deadliner); ok {
		d.SetDeadline(time.Time{})
	}
	if up != nil {
		c.setLabel(conn, addr+" ("+via+")")
		return up.relay(conn, br)
	}

	v := newViewer(addr + " (" + via + ")")
	v.width, v.height = width, height
	c.setLabel(conn, v.label)
	c.screen.addViewer(v)
	defer c.viewerLeft(v)
	c.updateStatus()

	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-v.wakeCh:
			case <-stop:
				return
			}
			c.screen.mu.Lock()
			other := v.messages
			v.messages = nil
			msg := c.screen.updateLocked(v)
			c.screen.mu.Unlock()
			for _, m := range [][]byte{other, msg} {
				if len(m) == 0 {
					continue
				}
				if _, err := (stallGuard{conn}).Write(m); err != nil {
					conn.Close() // ends the reader too
					return
				}
			}
		}
	}()
	err = readMessages(br, &session{c: c, v: v})
	close(stop)
	<-writerDone
	return quiet(err)
}

func isClosedError(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "use of closed network connection") ||
		strings.Contains(err.Error(), "websocket: close"))
}

// updateStatus shows the connected viewers on the status line and in the
// desktop name, so that each viewer knows who else watches. A relayed
// display is the guest's own: Hearth draws nothing on it.
func (c *serverConsole) updateStatus() {
	if c.screen == nil {
		return
	}
	c.mu.Lock()
	var labels []string
	for _, l := range c.conns {
		if l != "" {
			labels = append(labels, l)
		}
	}
	name := c.name
	c.mu.Unlock()
	slices.Sort(labels)
	c.screen.setStatus(statusLine(name, labels), desktopName(name, labels))
}

func (c *serverConsole) rename(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
	c.updateStatus()
}

func statusLine(name string, viewers []string) string {
	switch len(viewers) {
	case 0:
		return " " + name + " · no viewers"
	case 1:
		return " " + name + " · 1 viewer: " + viewers[0]
	}
	return fmt.Sprintf(" %s · %d viewers: %s", name, len(viewers), strings.Join(viewers, ", "))
}

func desktopName(name string, viewers []string) string {
	if len(viewers) <= 1 {
		return name
	}
	return fmt.Sprintf("%s (%d viewers)", name, len(viewers))
}

// session applies one viewer's messages.
type session struct {
	c  *serverConsole
	v  *viewer
	kb keyboard
}

func (s *session) setPixelFormat(pf pixelFormat) {
	sc := s.c.screen
	sc.mu.Lock()
	s.v.enc.setPixelFormat(pf)
	s.v.damage.markAll(sc.cols)
	sc.mu.Unlock()
}

func (s *session) setEncodings(encs []int32) {
	sc := s.c.screen
	sc.mu.Lock()
	defer sc.mu.Unlock()
	s.v.enc.zrle, s.v.copyRect, s.v.desktopName, s.v.desktopSize = false, false, false, false
	for _, e := range encs {
		switch e {
		case encExtendedClipboard:
			if !s.v.extClip {
				s.v.extClip = true
				// Our capabilities: text up to maxCutText, and the actions
				// by which a viewer pastes (notify, then request/provide).
				s.v.messages = appendExtendedServerCutText(s.v.messages,
					clipCaps|clipRequest|clipNotify|clipProvide|clipText, maxCutText)
				s.v.wake()
			}
		case encZRLE:
			s.v.enc.zrle = true
		case encCopyRect:
			s.v.copyRect = true
		case encDesktopName:
			s.v.desktopName = true
		case encDesktopSize:
			s.v.desktopSize = true
		case encExtendedDesktopSize:
			if !s.v.extDesktopSize {
				// The current size, so that the viewer knows it may ask for another.
				s.v.extDesktopSize = true
				s.v.size = sizeNews{pending: true, reason: resizeByServer}
				s.v.wake()
			}
		}
	}
}

func (s *session) updateRequest(incremental bool, _ image.Rectangle) {
	sc := s.c.screen
	sc.mu.Lock()
	s.v.requested = true
	if !incremental {
		s.v.damage.markAll(sc.cols)
	}
	sc.mu.Unlock()
	s.v.wake()
}

func (s *session) keyEvent(down bool, sym uint32) {
	s.kb.appCursor = s.c.screen.appCursor()
	if b := s.kb.event(down, sym); len(b) > 0 {
		s.write(b)
	}
}

func (s *session) cutText(text []byte) {
	s.write(pasteBytes(text))
}

// extendedCutText handles the extended clipboard: a viewer announces text
// (notify), we ask for it (request), it arrives zlib-compressed as UTF-8
// (provide) and is typed in.
func (s *session) extendedCutText(payload []byte) {
	flags := binary.BigEndian.Uint32(payload)
	actions, text := flags&0xff000000, flags&clipText != 0
	var reply []byte
	switch {
	case actions&clipCaps != 0:
		return // the client's capabilities (listing provide etc. among them): nothing to do
	case actions&clipProvide != 0 && text:
		typed, err := providedText(payload[4:])
		if err != nil {
			s.c.m.log.Warn("console paste refused", "server", s.c.server, "viewer", s.v.label, "err", err)
			return
		}
		s.write(typed)
		return
	case actions&clipNotify != 0 && text:
		reply = appendExtendedServerCutText(nil, clipRequest|clipText)
	case actions&clipPeek != 0:
		reply = appendExtendedServerCutText(nil, clipNotify) // we hold no clipboard
	default:
		return // caps, or formats we don't take
	}
	sc := s.c.screen
	sc.mu.Lock()
	s.v.messages = append(s.v.messages, reply...)
	sc.mu.Unlock()
	s.v.wake()
}

// providedText inflates a provide message's text: a size, then UTF-8 with
// CRLF line ends and a closing NUL. It becomes typed input.
func providedText(compressed []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("%w: clipboard data: %v", ErrProtocol, err)
	}
	defer zr.Close()
	var size [4]byte
	if _, err := io.ReadFull(zr, size[:]); err != nil {
		return nil, fmt.Errorf("%w: clipboard data: %v", ErrProtocol, err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxCutText {
		return nil, fmt.Errorf("%w: clipboard text of %d bytes", ErrProtocol, n)
	}
	text := make([]byte, n)
	if _, err := io.ReadFull(zr, text); err != nil {
		return nil, fmt.Errorf("%w: clipboard data: %v", ErrProtocol, err)
	}
	text = bytes.TrimRight(text, "\x00")
	text = bytes.ReplaceAll(text, []byte("\r\n"), []byte("\r"))
	return bytes.ReplaceAll(text, []byte("\n"), []byte("\r")), nil
}

func (s *session) setDesktopSize(width, height int) { s.c.setDesktopSize(s.v, width, height) }

func (s *session) write(b []byte) { s.c.typeIn(b) }

// inputQueue is how many writes may wait for a guest that does not read
// its terminal (paused, or busy); more are dropped with a log line.
const inputQueue = 1024

// typeIn queues b for the guest's terminal input. A single writer keeps the
// order; no viewer and no stream reader ever blocks on a guest that does
// not read, and closing the console never waits for one.
func (c *serverConsole) typeIn(b []byte) {
	select {
	case c.input <- b:
	default:
		if n := c.dropped.Add(1); n == 1 || n%1000 == 0 { // one line per burst, not per key
			c.m.log.Warn("guest is not reading its terminal; console input dropped", "server", c.server, "dropped", n)
		}
	}
}

func (c *serverConsole) writeInput(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-c.input:
			if _, err := c.stream.Write(b); err != nil {
				c.m.log.Warn("typing into the guest failed", "server", c.server, "err", err)
			}
		}
	}
}

package console

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// Dialer reaches the display behind a relay console: an RFB server that
// asks for no authentication and that only Hearth can reach, such as
// QEMU's `-vnc unix:PATH` socket. It is called once per viewer, after the
// viewer has authenticated; ctx ends when the handshake's time is up or the
// console is detached.
type Dialer func(ctx context.Context) (net.Conn, error)

// maxUpstreamString bounds the desktop name and refusal reason read from
// a display.
const maxUpstreamString = 64 << 10

func newRelayConsole(m *Registry, server, name string, dial Dialer, password string) *serverConsole {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	close(done) // no terminal to read
	return &serverConsole{
		m: m, server: server, dial: dial, name: name, password: password,
		life: ctx, cancel: cancel, done: done, conns: map[io.Closer]string{},
	}
}

// upstream is one viewer's connection to a relayed display, past its
// handshake.
type upstream struct {
	conn net.Conn
	r    *bufio.Reader // what the display sent after its ServerInit may wait here
}

func (u *upstream) Close() error { return u.conn.Close() }

// dialUpstream connects to the display and takes it through the client
// side of the handshake (RFB 3.8, security None, shared), and returns the
// ServerInit for the viewer: the display's, with name as desktop name.
func (c *serverConsole) dialUpstream(name string) (*upstream, []byte, error) {
	ctx, cancel := context.WithTimeout(c.life, handshakeTimeout)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: server %s: %w", ErrUpstream, c.server, err)
	}
	// The handshake ends with the context too: a display that never answers
	// must not hold the viewer, nor Detach.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	u := &upstream{conn: conn, r: bufio.NewReader(conn)}
	fixed, err := clientHandshake(conn, u.r)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: server %s: %w", ErrUpstream, c.server, err)
	}
	return u, appendServerInit(nil, fixed, name), nil
}

// clientHandshake speaks the viewer's side of the handshake with a
// display and returns the fixed part of its ServerInit; its desktop name
// is dropped.
func clientHandshake(w io.Writer, r *bufio.Reader) ([serverInitLen]byte, error) {
	var fixed [serverInitLen]byte
	var vbuf [12]byte
	if _, err := io.ReadFull(r, vbuf[:]); err != nil {
		return fixed, fmt.Errorf("reading its protocol version: %w", err)
	}
	version, err := parseVersion(vbuf[:])
	if err != nil {
		return fixed, err
	}
	if version < 8 {
		return fixed, fmt.Errorf("%w: it speaks %q, Hearth needs RFB 3.8", ErrProtocol, vbuf[:11])
	}
	if _, err := io.WriteString(w, "RFB 003.008\n"); err != nil {
		return fixed, err
	}
	n, err := r.ReadByte()
	if err != nil {
		return fixed, fmt.Errorf("reading its security types: %w", err)
	}
	if n == 0 {
		reason, err := readString(r)
		return fixed, errors.Join(fmt.Errorf("%w: it refused the connection: %q", ErrProtocol, reason), err)
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(r, types); err != nil {
		return fixed, fmt.Errorf("reading its security types: %w", err)
	}
	if !slices.Contains(types, secNone) {
		return fixed, fmt.Errorf("%w: it asks for security types %v, Hearth relays only None (1)", ErrProtocol, types)
	}
	if _, err := w.Write([]byte{secNone}); err != nil {
		return fixed, err
	}
	var result [4]byte
	if _, err := io.ReadFull(r, result[:]); err != nil {
		return fixed, fmt.Errorf("reading its security result: %w", err)
	}
	if binary.BigEndian.Uint32(result[:]) != 0 {
		reason, err := readString(r)
		return fixed, errors.Join(fmt.Errorf("%w: it refused security type None: %q", ErrProtocol, reason), err)
	}
	if _, err := w.Write([]byte{1}); err != nil { // ClientInit: shared, as each viewer has its own connection
		return fixed, err
	}
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return fixed, fmt.Errorf("reading its ServerInit: %w", err)
	}
	if _, err := readString(r); err != nil {
		return fixed, fmt.Errorf("reading its desktop name: %w", err)
	}
	return fixed, nil
}

// readString reads a length and that many bytes, at most maxUpstreamString.
func readString(r *bufio.Reader) (string, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxUpstreamString {
		return "", fmt.Errorf("%w: a string of %d bytes", ErrProtocol, size)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return string(b), err
}

// relay copies bytes both ways between a viewer that passed its handshake
// and the display until either side closes, then closes both. The
// messages are not looked at: input, pointer, updates and desktop size
// changes are the display's business.
func (u *upstream) relay(viewer io.ReadWriteCloser, fromViewer *bufio.Reader) error {
	toDisplay := make(chan error, 1)
	go func() {
		// fromViewer may hold messages sent right after ClientInit.
		_, err := io.Copy(u.conn, fromViewer)
		u.conn.Close() // the display drops this viewer; ends the copy below
		toDisplay <- err
	}()
	_, err := io.Copy(stallGuard{viewer}, u.r)
	viewer.Close() // the display is gone or the viewer stalled; ends the copy above
	return errors.Join(quiet(err), quiet(<-toDisplay))
}

// quiet drops the errors of a connection closed by either side, which is
// how every relay ends.
func quiet(err error) error {
	if err == io.EOF || isClosedError(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

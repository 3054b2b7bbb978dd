package console

import (
	"fmt"
	"io"
)

// MaxClientMessage is the largest message a viewer sends (a clipboard paste
// at its limit, with its header): transports that frame messages, like a
// websocket, can refuse anything larger.
const MaxClientMessage = maxCutText + 64

// Peer describes a viewer connection handed to Serve.
type Peer struct {
	// Addr is the viewer's address: failed passwords are counted per
	// address, and it is shown in the status line.
	Addr string
	// Via names the transport next to the address ("web").
	Via string
	// TokenChecked says the caller checked a console token for this server
	// (CheckToken): the token stands in for the VNC password, so the
	// viewer is offered security type None.
	TokenChecked bool
}

// HasConsole tells whether server has a console now (it runs and has a
// VNC password).
func (m *Registry) HasConsole(server string) bool { return m.console(server) != nil }

// CheckToken accepts, once, a console token minted by Token for server and
// user that has not expired; otherwise the error wraps ErrBadToken.
func (m *Registry) CheckToken(server, user, token string) error {
	return m.tokens.check(server, user, token)
}

// Serve speaks RFB with one viewer of server's console over conn until
// either side closes, and closes conn. It is how a transport other than
// the native VNC port (the web layer's websocket) reaches a console. conn's
// SetDeadline and SetWriteDeadline are used when it has them. A server
// without a console gives ErrNoConsole.
func (m *Registry) Serve(conn io.ReadWriteCloser, server string, peer Peer) error {
	c := m.console(server)
	if c == nil {
		conn.Close()
		return fmt.Errorf("%w: server %s", ErrNoConsole, server)
	}
	return c.serve(conn, peer.Addr, peer.Via, peer.TokenChecked)
}

package console

import "errors"

var (
	// ErrProtocol: a client broke the RFB protocol.
	ErrProtocol = errors.New("console: RFB protocol error")
	// ErrAuth: a VNC password was wrong, or the source address is refused for a while.
	ErrAuth = errors.New("console: authentication failed")
	// ErrPasswordTooLong: VNC passwords have at most 8 bytes.
	ErrPasswordTooLong = errors.New("console: VNC password too long")
	// ErrNoConsole: the server has no console (no VNC password, or not running).
	ErrNoConsole = errors.New("console: server has no console")
	// ErrBadToken: a console token is malformed, expired or for another server.
	ErrBadToken = errors.New("console: bad console token")
	// ErrBusy: too many handshakes are in progress; the connection was turned away.
	ErrBusy = errors.New("console: too many pending handshakes")
	// ErrUpstream: a relay console's display (QEMU's VNC server) could not
	// be reached, or broke RFB in its handshake.
	ErrUpstream = errors.New("console: display unreachable")
	// ErrClosed: the registry was closed.
	ErrClosed = errors.New("console: registry closed")
)

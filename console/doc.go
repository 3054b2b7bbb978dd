// Package console turns a guest's terminal stream into a VNC desktop: a
// VT100/xterm emulator renders the terminal into a framebuffer, an RFB 3.8
// server with VNC authentication serves it on a TCP port and over any other
// connection a transport hands in (Registry.Serve: the web layer's websocket
// for noVNC in the browser, with a console token standing in for the password).
// It speaks no HTTP itself.
package console

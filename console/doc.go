// Package console turns a guest's terminal stream into a VNC desktop: a
// VT100/xterm emulator renders the terminal into a framebuffer, an RFB 3.8
// server with VNC authentication serves it on a TCP port, and a websocket
// bridge carries the same RFB stream to noVNC in the browser.
package console

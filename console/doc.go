// Package console serves each running server's desktop to VNC viewers: on
// a TCP port per server, and over any other connection a transport hands
// in (Registry.Serve: the web layer's websocket for noVNC in the browser,
// with a console token standing in for the password). It speaks no HTTP
// itself.
//
// A console is one of two kinds, behind the same endpoints and the same
// RFB 3.8 handshake (VNC authentication with the server's password of at
// most 8 bytes, or a token; the per-address and per-server failure limits;
// the bound on handshakes in progress):
//
//   - a terminal (Registry.Attach, a Stream): a container's console. A
//     VT100/xterm emulator renders the guest's terminal into a framebuffer
//     that Hearth encodes for each viewer; keys and pastes are typed into
//     the guest, and a viewer's window size becomes the terminal's.
//   - a relay (Registry.AttachRelay, a Dialer): a display that speaks RFB
//     itself, a VM's QEMU started with `-vnc unix:PATH` (no authentication
//     of its own: only Hearth reaches the socket). Once a viewer has
//     authenticated, Hearth dials the display, takes it through RFB 3.8
//     with security None and a shared ClientInit, hands the viewer the
//     display's ServerInit with the server's name as desktop name, and
//     then copies bytes both ways untouched until either side closes:
//     input, pointer, encodings, updates and resolution changes
//     (DesktopSize, ExtendedDesktopSize) are between the viewer and QEMU.
//     Each viewer has its own connection to the display (QEMU 7.2 takes 32
//     at once unless started with -vnc …,connections=N: the next viewer is
//     closed after its handshake, and the log says ErrUpstream); the
//     display hanging up (QEMU exits) closes its viewers.
//
// Detach, SetPassword, Rename, Endpoint and Serve treat both kinds alike.
package console

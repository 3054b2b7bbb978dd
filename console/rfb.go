package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"strconv"
	"time"

	"hearth/internal/ratelimit"
)

// RFB security types (RFC 6143 §7.1.2).
const (
	secNone    = 1
	secVNCAuth = 2
)

// Limits on what a client may send.
const (
	maxCutText   = 1 << 20
	maxEncodings = 1024
	// handshakeTimeout bounds the whole handshake, so a silent peer cannot
	// hold a connection (and a slot of the rate limiter) forever.
	handshakeTimeout = 30 * time.Second
)

// Extended clipboard (pseudo-encoding 0xC0A1E5CE): flags of its messages.
// Hearth takes UTF-8 text from the viewer (Latin-1 is all the classic
// ClientCutText carries) and has none to offer.
const (
	encExtendedClipboard int32 = -1063131698

	clipText    = 1
	clipCaps    = 1 << 24
	clipRequest = 1 << 25
	clipPeek    = 1 << 26
	clipNotify  = 1 << 27
	clipProvide = 1 << 28
)

// appendExtendedServerCutText appends an extended ServerCutText message.
func appendExtendedServerCutText(b []byte, flags uint32, data ...uint32) []byte {
	b = append(b, 3, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(-int32(4+4*len(data))))
	b = binary.BigEndian.AppendUint32(b, flags)
	for _, d := range data {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return b
}

// viewer is one connected RFB client as the screen sees it. All fields are
// guarded by the screen's mutex.
type viewer struct {
	damage      damage
	enc         encoder
	copyRect    bool
	desktopName bool
	requested   bool   // the client asked for an update not yet sent
	out         []byte // the last update, reused: only the viewer's writer builds and sends updates
	messages    []byte // other server messages waiting for the writer (extended clipboard)
	extClip     bool   // the client speaks the extended clipboard
	// The client follows desktop size changes (and may ask for one:
	// extended) and what it has yet to be told.
	extDesktopSize, desktopSize bool
	size                        sizeNews
	width, height               int // the size its handshake announced
	label                       string
	wakeCh                      chan struct{}
}

func newViewer(label string) *viewer {
	v := &viewer{label: label, wakeCh: make(chan struct{}, 1)}
	v.enc.setPixelFormat(serverPixelFormat)
	return v
}

func (v *viewer) wake() {
	select {
	case v.wakeCh <- struct{}{}:
	default:
	}
}

// handshakeConfig says how one connection authenticates.
type handshakeConfig struct {
	password func() string // read when the client connects: a new password counts at once
	noAuth   bool          // the connection already proved itself (a console token)
	// limits refuse a password guess before its challenge: per source
	// address and per server (see Registry).
	limits []ratelimit.Limit
	addr   string           // source address, for the log and the refusal
	now    func() time.Time // the limits' clock, to say until when a source is refused
	// serverInit gives the ServerInit message once the client is in
	// (after its ClientInit): a relay reaches its upstream only then.
	serverInit func() ([]byte, error)
}

// rfbVersion is the minor version agreed with the client: 3, 7 or 8.
type rfbVersion int

// handshake runs RFB's protocol-version, security and initialisation
// phases (RFC 6143 §7.1–7.3) and returns the version agreed.
func handshake(w io.Writer, r *bufio.Reader, cfg handshakeConfig) (rfbVersion, error) {
	if _, err := io.WriteString(w, "RFB 003.008\n"); err != nil {
		return 0, err
	}
	var vbuf [12]byte
	if _, err := io.ReadFull(r, vbuf[:]); err != nil {
		return 0, err
	}
	version, err := parseVersion(vbuf[:])
	if err != nil {
		return 0, err
	}
	fail := func(reason string, cause error) (rfbVersion, error) {
		// Refusal before a security type is chosen: zero types (3.3: type 0), then the reason.
		if version >= 7 {
			w.Write([]byte{0})
		} else {
			w.Write([]byte{0, 0, 0, 0})
		}
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(reason))))
		io.WriteString(w, reason)
		return version, cause
	}
	secType := byte(secVNCAuth)
	if cfg.noAuth {
		secType = secNone
	}
	// A guess counts from here, before its challenge is sent: parallel
	// connections from one source get no more challenges than the limit
	// lets it fail.
	var attempts ratelimit.Attempts
	if secType == secVNCAuth {
		var wait time.Duration
		var ok bool
		// A guess waits while the source's other guesses in flight fill
		// its limit, for as long as the handshake may take.
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		attempts, wait, ok = ratelimit.BeginAll(ctx, cfg.limits...)
		cancel()
		if !ok {
			reason := "too many authentication attempts in progress; try again later"
			if wait > 0 {
				reason = "too many authentication failures; try again after " + cfg.now().Add(wait).UTC().Format(time.TimeOnly) + " UTC"
			}
			return fail(reason, fmt.Errorf("%w: %s refused after repeated failures", ErrAuth, cfg.addr))
		}
		defer attempts.End() // no-op after Fail
	}
	if version >= 7 {
		if _, err := w.Write([]byte{1, secType}); err != nil {
			return version, err
		}
		chosen, err := r.ReadByte()
		if err != nil {
			return version, err
		}
		if chosen != secType {
			return version, fmt.Errorf("%w: client chose security type %d, offered %d", ErrProtocol, chosen, secType)
		}
	} else if _, err := w.Write([]byte{0, 0, 0, secType}); err != nil {
		return version, err
	}
	if secType == secVNCAuth {
		challenge := make([]byte, 16)
		rand.Read(challenge)
		if _, err := w.Write(challenge); err != nil {
			return version, err
		}
		response := make([]byte, 16)
		if _, err := io.ReadFull(r, response); err != nil {
			return version, err
		}
		if !checkResponse(cfg.password(), challenge, response) {
			attempts.Fail()
			w.Write([]byte{0, 0, 0, 1})
			if version >= 8 {
				const reason = "password check failed!"
				w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(reason))))
				io.WriteString(w, reason)
			}
			return version, fmt.Errorf("%w: wrong VNC password from %s", ErrAuth, cfg.addr)
		}
	}
	if secType == secVNCAuth || version >= 8 {
		if _, err := w.Write([]byte{0, 0, 0, 0}); err != nil {
			return version, err
		}
	}
	if _, err := r.ReadByte(); err != nil { // ClientInit: shared or not, we always share
		return version, err
	}
	init, err := cfg.serverInit()
	if err != nil {
		return version, err
	}
	_, err = w.Write(init)
	return version, err
}

// serverInitLen is the fixed part of ServerInit (RFC 6143 §7.3.2): width,
// height and pixel format; the desktop name's length and the name follow.
const serverInitLen = 2 + 2 + 16

// appendServerInit appends a ServerInit: the fixed part, then name.
func appendServerInit(b []byte, fixed [serverInitLen]byte, name string) []byte {
	b = append(b, fixed[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	return append(b, name...)
}

// initFixed is the fixed part of ServerInit for a width×height desktop
// in pixel format pf.
func initFixed(width, height int, pf pixelFormat) [serverInitLen]byte {
	var fixed [serverInitLen]byte
	binary.BigEndian.PutUint16(fixed[0:], uint16(width))
	binary.BigEndian.PutUint16(fixed[2:], uint16(height))
	copy(fixed[4:], pf.marshal())
	return fixed
}

// parseVersion reads "RFB xxx.yyy\n". Unknown 3.x minors count as 3.3 (RFC 6143 §7.1.1).
func parseVersion(b []byte) (rfbVersion, error) {
	if len(b) != 12 || string(b[:4]) != "RFB " || b[7] != '.' || b[11] != '\n' {
		return 0, fmt.Errorf("%w: bad protocol version %q", ErrProtocol, b)
	}
	major, err1 := strconv.Atoi(string(b[4:7]))
	minor, err2 := strconv.Atoi(string(b[8:11]))
	if err1 != nil || err2 != nil || major != 3 {
		return 0, fmt.Errorf("%w: unsupported protocol version %q", ErrProtocol, b[:11])
	}
	switch {
	case minor >= 8:
		return 8, nil
	case minor == 7:
		return 7, nil
	}
	return 3, nil
}

// messageHandler applies the client-to-server messages readMessages parses.
type messageHandler interface {
	setPixelFormat(pf pixelFormat)
	setEncodings(encs []int32)
	updateRequest(incremental bool, r image.Rectangle)
	keyEvent(down bool, sym uint32)
	cutText(text []byte)
	extendedCutText(payload []byte)
	setDesktopSize(width, height int)
}

// readMessages reads client-to-server messages until an error, handing
// each to h.
func readMessages(r *bufio.Reader, h messageHandler) error {
	var buf [20]byte
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // SetPixelFormat
			if _, err := io.ReadFull(r, buf[:19]); err != nil {
				return err
			}
			pf, err := parsePixelFormat(buf[3:19])
			if err != nil {
				return err
			}
			h.setPixelFormat(pf)
		case 2: // SetEncodings
			if _, err := io.ReadFull(r, buf[:3]); err != nil {
				return err
			}
			n := int(binary.BigEndian.Uint16(buf[1:3]))
			if n > maxEncodings {
				return fmt.Errorf("%w: %d encodings", ErrProtocol, n)
			}
			encs := make([]int32, n)
			for i := range encs {
				if _, err := io.ReadFull(r, buf[:4]); err != nil {
					return err
				}
				encs[i] = int32(binary.BigEndian.Uint32(buf[:4]))
			}
			h.setEncodings(encs)
		case 3: // FramebufferUpdateRequest
			if _, err := io.ReadFull(r, buf[:9]); err != nil {
				return err
			}
			x, y := int(binary.BigEndian.Uint16(buf[1:])), int(binary.BigEndian.Uint16(buf[3:]))
			w, hgt := int(binary.BigEndian.Uint16(buf[5:])), int(binary.BigEndian.Uint16(buf[7:]))
			h.updateRequest(buf[0] != 0, image.Rect(x, y, x+w, y+hgt))
		case 4: // KeyEvent
			if _, err := io.ReadFull(r, buf[:7]); err != nil {
				return err
			}
			h.keyEvent(buf[0] != 0, binary.BigEndian.Uint32(buf[3:7]))
		case 5: // PointerEvent: a text console has no pointer
			if _, err := io.ReadFull(r, buf[:5]); err != nil {
				return err
			}
		case 6: // ClientCutText
			if _, err := io.ReadFull(r, buf[:7]); err != nil {
				return err
			}
			n := int32(binary.BigEndian.Uint32(buf[3:7]))
			extended := n < 0 // the extended clipboard format
			if extended {
				n = -n
			}
			if n < 0 || n > maxCutText || (extended && n < 4) {
				return fmt.Errorf("%w: clipboard message of %d bytes", ErrProtocol, n)
			}
			text := make([]byte, n)
			if _, err := io.ReadFull(r, text); err != nil {
				return err
			}
			if extended {
				h.extendedCutText(text)
			} else {
				h.cutText(text)
			}
		case 251: // SetDesktopSize: the screens' layout follows; we have one screen
			if _, err := io.ReadFull(r, buf[:7]); err != nil {
				return err
			}
			w, hgt := int(binary.BigEndian.Uint16(buf[1:])), int(binary.BigEndian.Uint16(buf[3:]))
			screens := int(buf[5])
			if _, err := r.Discard(screens * 16); err != nil {
				return err
			}
			if screens == 0 {
				w, hgt = 0, 0 // no screen: an invalid layout
			}
			h.setDesktopSize(w, hgt)
		default:
			return fmt.Errorf("%w: unknown client message type %d", ErrProtocol, kind)
		}
	}
}

// updateLocked builds a FramebufferUpdate with v's damage, or nil when the
// client has not asked or nothing changed. The screen's mutex is held. The
// result is valid until the next call for v.
func (s *screen) updateLocked(v *viewer) []byte {
	if v.damage.margins && s.width == s.cols*cellWidth && s.height == s.rows*cellHeight {
		v.damage.margins = false // the cells fill the framebuffer
	}
	if !v.requested || (v.damage.empty() && !v.size.pending) {
		return nil
	}
	b := append(v.out[:0], 0, 0, 0, 0)
	b, n := s.appendSizeNews(b, v)
	d := &v.damage
	if d.name {
		if v.desktopName {
			b = appendRectHeader(b, image.Rectangle{}, encDesktopName)
			b = binary.BigEndian.AppendUint32(b, uint32(len(s.name)))
			b = append(b, s.name...)
			n++
		}
		d.name = false
	}
	if rows := d.copyRows; rows > 0 {
		if v.copyRect {
			b = appendRectHeader(b, image.Rect(0, 0, s.width, (s.termRows-rows)*cellHeight), encCopyRect)
			b = binary.BigEndian.AppendUint16(b, 0)
			b = binary.BigEndian.AppendUint16(b, uint16(rows*cellHeight))
			n++
		} else {
			for i := 0; i < s.termRows-rows; i++ {
				d.rows[i] = span{0, s.cols}
			}
		}
		d.copyRows = 0
	}
	for row := 0; row < s.rows; {
		sp := d.rows[row]
		if sp.lo >= sp.hi {
			row++
			continue
		}
		end := row + 1
		for end < s.rows && d.rows[end] == sp {
			end++
		}
		r := image.Rect(sp.lo*cellWidth, row*cellHeight, sp.hi*cellWidth, end*cellHeight)
		b = v.enc.appendRect(b, s.fb, s.width, r)
		n++
		for i := row; i < end; i++ {
			d.rows[i] = span{}
		}
		row = end
	}
	b, m := s.appendMargins(b, v)
	n += m
	v.requested = false
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	v.out = b
	return b
}

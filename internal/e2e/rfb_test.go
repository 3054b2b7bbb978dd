package e2e

import (
	"bufio"
	"bytes"
	"crypto/des"
	endian "encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"net"
	"testing"
	"time"
)

// vncKeyboard is the smallest RFB 3.8 client that logs in with VNC
// authentication and types: the tests read what the guest answers from
// GET /servers/S/console, not from the framebuffer, so nothing of the
// framebuffer is decoded (updates are never requested).
type vncKeyboard struct{ conn net.Conn }

const (
	keyReturn  = 0xff0d // X11 keysym XK_Return
	rfbNoAuth  = 1
	rfbVNCAuth = 2
)

// dialVNC connects to addr and authenticates with password.
func dialVNC(t testing.TB, addr, password string) *vncKeyboard {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	if _, _, err := rfbHandshake(br, conn, password); err != nil {
		t.Fatalf("VNC %s: %v", addr, err)
	}
	conn.SetDeadline(time.Time{})
	// The server may still send bells or cut text; keep its socket drained.
	go io.Copy(io.Discard, br)
	return &vncKeyboard{conn: conn}
}

// rfbHandshake speaks RFB 3.8 up to ServerInit and returns the
// framebuffer's size. With a password it asks for VNC authentication (as
// Hearth's consoles want); without one, for no security (a QEMU display
// socket reached directly, as the benchmarks' hand-run QEMU offers).
func rfbHandshake(br *bufio.Reader, w io.Writer, password string) (width, height int, err error) {
	var version [12]byte
	if _, err := io.ReadFull(br, version[:]); err != nil {
		return 0, 0, err
	}
	if string(version[:]) != "RFB 003.008\n" {
		return 0, 0, fmt.Errorf("server speaks %q", version)
	}
	io.WriteString(w, "RFB 003.008\n")
	n, err := br.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(br, types); err != nil {
		return 0, 0, err
	}
	want := byte(rfbVNCAuth)
	if password == "" {
		want = rfbNoAuth
	}
	if !bytes.Contains(types, []byte{want}) {
		return 0, 0, fmt.Errorf("security types %v, want %d", types, want)
	}
	w.Write([]byte{want})
	if want == rfbVNCAuth {
		challenge := make([]byte, 16)
		if _, err := io.ReadFull(br, challenge); err != nil {
			return 0, 0, err
		}
		w.Write(desChallengeResponse(password, challenge))
	}
	var result uint32
	if err := endian.Read(br, endian.BigEndian, &result); err != nil {
		return 0, 0, err
	}
	if result != 0 {
		return 0, 0, fmt.Errorf("VNC authentication refused (%d)", result)
	}
	w.Write([]byte{1}) // ClientInit: shared
	var init [24]byte  // width, height, pixel format, name length
	if _, err := io.ReadFull(br, init[:]); err != nil {
		return 0, 0, err
	}
	_, err = io.CopyN(io.Discard, br, int64(endian.BigEndian.Uint32(init[20:])))
	return int(endian.BigEndian.Uint16(init[0:])), int(endian.BigEndian.Uint16(init[2:])), err
}

// desChallengeResponse is VNC authentication's answer: the challenge DES
// encrypted with the password, each key byte bit-reversed. It is written
// again here on purpose (console's is unexported): a black-box test must
// not authenticate with the very code it checks.
func desChallengeResponse(password string, challenge []byte) []byte {
	var key [8]byte
	copy(key[:], password)
	for i, b := range key {
		key[i] = bits.Reverse8(b)
	}
	block, _ := des.NewCipher(key[:])
	out := make([]byte, len(challenge))
	for i := 0; i+8 <= len(challenge); i += 8 {
		block.Encrypt(out[i:i+8], challenge[i:i+8])
	}
	return out
}

// key presses and releases one keysym.
func (k *vncKeyboard) key(t testing.TB, sym uint32) {
	t.Helper()
	for _, down := range []byte{1, 0} {
		msg := []byte{4, down, 0, 0, 0, 0, 0, 0}
		endian.BigEndian.PutUint32(msg[4:], sym)
		if _, err := k.conn.Write(msg); err != nil {
			t.Fatalf("VNC key event: %v", err)
		}
	}
}

// typeLine types s (printable ASCII, whose keysyms are their codes) and Enter.
func (k *vncKeyboard) typeLine(t testing.TB, s string) {
	t.Helper()
	for _, r := range s {
		k.key(t, uint32(r))
	}
	k.key(t, keyReturn)
}

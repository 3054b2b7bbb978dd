package console

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzHandshake feeds arbitrary client bytes to the server's handshake and
// message loop: it must fail cleanly with an error of the kinds a client can
// cause, never panic or over-allocate; a well-formed token handshake must
// succeed and end with a correct ServerInit; a VNC password answer made up
// by the fuzzer must never pass.
func FuzzHandshake(f *testing.F) {
	challengeFree := func(version string, rest ...byte) []byte {
		return append([]byte("RFB "+version+"\n"), rest...)
	}
	f.Add(challengeFree("003.008", 2))
	f.Add(challengeFree("003.008", 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1))
	f.Add(challengeFree("003.003"))
	f.Add(challengeFree("003.003", 1))
	f.Add(challengeFree("003.008", 1, 1, 0, 0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2, 128, 1, 144))
	f.Add(challengeFree("003.007", 1, 1, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfb, 'a', 'b', 'c', 'd', 'e'))
	f.Add([]byte("RFB 004.001\n"))
	// Token connection, then an extended clipboard notify and a provide.
	f.Add(challengeFree("003.008", 1, 1, 2, 0, 0, 1, 0xc0, 0xa1, 0xe5, 0xce, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x08, 0, 0, 1,
		6, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0x10, 0, 0, 1, 0x78, 0x9c, 0x63, 0x60, 0x60, 0x60, 0x64, 0x4c, 0x04, 0, 0, 0x0d, 0, 0x08))
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := newScreen(20, 4, "fuzz")
		m := NewRegistry()
		c := &serverConsole{m: m, server: "fuzz", stream: newFakeStream(), screen: sc, conns: map[io.Closer]string{}}
		br := bufio.NewReader(bytes.NewReader(in))
		// A client that picks security type 2 (3.7, 3.8) gets the VNC
		// password step; any other input runs as a token connection
		// (security None), which reaches the message loop.
		passwordStep := len(in) > 12 && in[12] == secVNCAuth
		var out bytes.Buffer
		version, err := handshake(&out, br, handshakeConfig{
			password: func() string { return "pw" }, noAuth: !passwordStep,
			serverInit: func() ([]byte, error) {
				return appendServerInit(nil, initFixed(sc.width, sc.height, serverPixelFormat), "fuzz"), nil
			},
		})
		if want, ok := wellFormedTokenHandshake(in); ok && !passwordStep && err != nil {
			t.Fatalf("well-formed %d.%d token handshake %q failed: %v", 3, want, in, err)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrAuth) {
				t.Fatalf("handshake error %v (%T) is none of EOF, ErrProtocol, ErrAuth", err, err)
			}
			return
		}
		if passwordStep {
			t.Fatalf("a made-up VNC password answer passed: %q", in)
		}
		if want, ok := wellFormedTokenHandshake(in); !ok || version != want {
			t.Fatalf("handshake of %q agreed version %d (well-formed %v, %d)", in, version, ok, want)
		}
		checkServerInit(t, out.Bytes(), sc.width, sc.height, "fuzz")
		v := newViewer("fuzz")
		sc.addViewer(v)
		readMessages(br, &session{c: c, v: v})
		sc.mu.Lock()
		sc.updateLocked(v)
		sc.mu.Unlock()
	})
}

// wellFormedTokenHandshake tells whether in starts with a complete token
// handshake (version, security None where the client chooses, ClientInit)
// and the minor version the server must agree.
func wellFormedTokenHandshake(in []byte) (rfbVersion, bool) {
	if len(in) < 12 {
		return 0, false
	}
	version, err := parseVersion(in[:12])
	if err != nil {
		return 0, false
	}
	if version == 3 {
		return version, len(in) >= 13
	}
	return version, len(in) >= 14 && in[12] == secNone
}

// checkServerInit checks that what the server sent starts with its version
// and ends with a ServerInit for the screen: size, pixel format, name.
func checkServerInit(t *testing.T, out []byte, width, height int, name string) {
	t.Helper()
	if !bytes.HasPrefix(out, []byte("RFB 003.008\n")) {
		t.Fatalf("server began with %q", out[:min(len(out), 12)])
	}
	init := binary.BigEndian.AppendUint16(nil, uint16(width))
	init = binary.BigEndian.AppendUint16(init, uint16(height))
	init = append(init, serverPixelFormat.marshal()...)
	init = binary.BigEndian.AppendUint32(init, uint32(len(name)))
	init = append(init, name...)
	if !bytes.HasSuffix(out, init) {
		t.Fatalf("server's last bytes %x, want ServerInit %x", out[max(0, len(out)-len(init)):], init)
	}
}

// FuzzScreen feeds arbitrary guest output to the emulator and renderer.
func FuzzScreen(f *testing.F) {
	f.Add([]byte("hello\r\n\x1b[1;31mred\x1b[0m\x1b[6n"))
	f.Add([]byte("\x1b[2J\x1b[10;10H\x1b(0lqk\x1b(B\x1b[38;5;200mx\x1b[48;2;1;2;3my"))
	f.Add([]byte("\x1b[3;1r\x1b[999B\n\n\n\x1b[?25l\x1b[?1049h\x1b[?1h\x1b="))
	f.Add([]byte("ünï\xe2\x94"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := newScreen(20, 5, "fuzz")
		v := newViewer("fuzz")
		sc.addViewer(v)
		v.enc.zrle, v.copyRect = true, true
		for len(in) > 0 {
			n := min(len(in), 7)
			sc.feed(in[:n])
			in = in[n:]
			sc.mu.Lock()
			v.requested = true
			sc.updateLocked(v)
			sc.mu.Unlock()
		}
	})
}

// FuzzClientHandshake feeds arbitrary display bytes to the relay's side of
// the handshake with QEMU: it must fail cleanly with ErrProtocol or EOF,
// never panic or over-allocate, and take only what it asked for: a display
// that answers as QEMU does gives its fixed ServerInit back.
func FuzzClientHandshake(f *testing.F) {
	qemuLike := func(name string) []byte {
		b := append([]byte("RFB 003.008\n"), 1, secNone, 0, 0, 0, 0)
		return appendServerInit(b, initFixed(720, 400, serverPixelFormat), name)
	}
	f.Add(qemuLike("QEMU"))
	f.Add(append([]byte("RFB 003.008\n"), 2, secVNCAuth, secNone, 0, 0, 0, 1, 0, 0, 0, 4, 'n', 'o', 'p', 'e'))
	f.Add(append([]byte("RFB 003.008\n"), 0, 0, 0, 0, 3, 'b', 'y', 'e'))
	f.Add([]byte("RFB 003.003\n\x00\x00\x00\x01"))
	f.Add(append([]byte("RFB 003.008\n"), 1, secNone, 0, 0, 0, 0, 0, 2, 0, 2, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		fixed, err := clientHandshake(&out, bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v (%T) is none of EOF, ErrProtocol", err, err)
			}
			return
		}
		if !bytes.Contains(in, fixed[:]) {
			t.Fatalf("ServerInit's fixed part %x is not in the display's bytes", fixed)
		}
		if want := "RFB 003.008\n\x01\x01"; out.String() != want {
			t.Fatalf("relay sent %q, want %q", out.String(), want)
		}
	})
}

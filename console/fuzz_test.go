package console

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzHandshake feeds arbitrary client bytes to the server's handshake and
// message loop: it must fail cleanly, never panic or over-allocate.
func FuzzHandshake(f *testing.F) {
	challengeFree := func(version string, rest ...byte) []byte {
		return append([]byte("RFB "+version+"\n"), rest...)
	}
	f.Add(challengeFree("003.008", 2))
	f.Add(challengeFree("003.003"))
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
		// A token connection (security None) reaches the message loop
		// without solving the DES challenge.
		if _, err := handshake(io.Discard, br, handshakeConfig{
			password: func() string { return "pw" }, noAuth: len(in) > 0 && in[0]&1 == 0,
			name: "fuzz", width: sc.width, height: sc.height,
		}); err != nil {
			return
		}
		v := newViewer("fuzz")
		sc.addViewer(v)
		readMessages(br, &session{c: c, v: v})
		sc.mu.Lock()
		sc.updateLocked(v)
		sc.mu.Unlock()
	})
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

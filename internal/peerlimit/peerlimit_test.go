package peerlimit

import (
	"io"
	"net"
	"testing"
	"time"

	"hearth/internal/logtest"
)

func TestCapsConnectionsPerAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(inner, 2, logtest.Logger(t))
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(source string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first, _ := dial("127.0.0.1"), dial("127.0.0.1")
	served := []net.Conn{<-accepted, <-accepted}
	third := dial("127.0.0.1")
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a third connection from one address: %v, want closed", err)
	}
	dial("127.0.0.2") // another address is not affected
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection from another address was not accepted")
	}
	first.Close()
	served[0].Close() // the server side closing frees the slot
	dial("127.0.0.1")
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted once one of the address's closed")
	}
}

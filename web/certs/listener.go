package certs

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// firstByteTimeout bounds how long a new connection may stay silent before
// it is dropped; the sniffing happens off the accept loop, so a silent
// client never delays others.
const firstByteTimeout = 10 * time.Second

// tlsHandshakeRecord is the first byte of every TLS connection (a handshake
// record); an HTTP request starts with a method's letter instead.
const tlsHandshakeRecord = 0x16

// NewListener wraps inner so that connections starting with a TLS handshake
// are served as TLS with cfg (Accept returns them as *tls.Conn, so
// http.Server fills Request.TLS), and plain HTTP sent to the same port is
// answered by the listener itself: a 308 Permanent Redirect to the same
// host, port and path over https, or 400 when the request is not HTTP or
// names no usable Host. Such connections never reach Accept. Closing the
// listener closes inner.
func NewListener(inner net.Listener, cfg *tls.Config) net.Listener {
	l := &listener{
		Listener: inner,
		cfg:      cfg,
		conns:    make(chan net.Conn),
		errs:     make(chan error),
		closed:   make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

type listener struct {
	net.Listener
	cfg *tls.Config

	conns     chan net.Conn
	errs      chan error
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
	})
	return err
}

// acceptLoop hands every accepted connection to its own sniffing goroutine
// and passes accept errors on to Accept's caller; it ends at the first error
// that is not temporary (http.Server retries temporary ones).
func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.closed:
				return
			}
			if temp, ok := err.(interface{ Temporary() bool }); ok && temp.Temporary() {
				continue
			}
			return
		}
		go l.sniff(c)
	}
}

func (l *listener) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(firstByteTimeout))
	r := bufio.NewReader(c)
	first, err := r.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	peeked := &peekedConn{Conn: c, r: r}
	if first[0] != tlsHandshakeRecord {
		refusePlain(peeked)
		return
	}
	select {
	case l.conns <- tls.Server(peeked, l.cfg):
	case <-l.closed:
		c.Close()
	}
}

// peekedConn is a connection whose first bytes were read ahead into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// refusePlain answers a plain-HTTP request on the TLS port and closes.
func refusePlain(c *peekedConn) {
	defer closeGracefully(c)
	c.SetDeadline(time.Now().Add(firstByteTimeout))
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, 64<<10)))
	if err != nil {
		writePlainResponse(c, http.StatusBadRequest, "",
			"This port speaks HTTPS only, and what arrived was neither TLS nor HTTP.\n")
		return
	}
	if req.Host == "" || strings.ContainsAny(req.Host, "/\\@?# ") {
		writePlainResponse(c, http.StatusBadRequest, "",
			"This port speaks HTTPS only: connect with https:// instead of http://.\n")
		return
	}
	target := (&url.URL{Scheme: "https", Host: req.Host, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}).String()
	writePlainResponse(c, http.StatusPermanentRedirect, target,
		"This port speaks HTTPS only: use "+target+"\n")
}

func writePlainResponse(w io.Writer, status int, location, body string) {
	header := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n",
		status, http.StatusText(status), len(body))
	if location != "" {
		header += "Location: " + location + "\r\n"
	}
	io.WriteString(w, header+"\r\n"+body)
}

// closeGracefully ends the sending side first and drains a little of what
// the client still sends (a request body), so the kernel does not reset the
// connection before the client has read the answer.
func closeGracefully(c *peekedConn) {
	if tcp, ok := c.Conn.(*net.TCPConn); ok {
		tcp.CloseWrite()
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c, 256<<10))
	}
	c.Close()
}

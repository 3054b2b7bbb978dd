// Package wsstream carries a byte stream over a websocket's binary messages,
// as noVNC speaks RFB: every Write is one message, reads run across message
// boundaries. The web layer's console endpoint uses it, and the console
// package's tests use it to play that endpoint.
package wsstream

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a websocket seen as a byte stream with deadlines.
type Conn struct {
	ws *websocket.Conn
	r  io.Reader
}

// New wraps ws.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws} }

func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) Close() error { return c.ws.Close() }

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// KeepAlive pings every interval until stop closes or a ping fails, so
// proxies that close quiet connections leave an idle console open (a
// terminal can be silent for hours). Each ping may take up to timeout.
func (c *Conn) KeepAlive(interval, timeout time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// WriteControl may run concurrently with the session's writes.
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
				return
			}
		}
	}
}

// Dial opens a websocket to url (ws:// or wss://) as noVNC does, offering
// the "binary" subprotocol, or those a Sec-WebSocket-Protocol in header
// lists; header carries cookies, Basic auth or Origin.
func Dial(url string, header http.Header) (*Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{"binary"}, HandshakeTimeout: 5 * time.Second}
	if offered := header.Get("Sec-WebSocket-Protocol"); offered != "" { // the dialer sets the header itself
		header = header.Clone()
		header.Del("Sec-WebSocket-Protocol")
		d.Subprotocols = nil
		for _, p := range strings.Split(offered, ",") {
			d.Subprotocols = append(d.Subprotocols, strings.TrimSpace(p))
		}
	}
	ws, resp, err := d.Dial(url, header)
	if err != nil {
		return nil, resp, err
	}
	return New(ws), resp, nil
}

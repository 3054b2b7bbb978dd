package console

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  16 << 10,
	WriteBufferSize: 64 << 10,
	Subprotocols:    []string{"binary"},
	CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade, with a clear answer
}

// ServeWebsocket bridges GET /servers/SERVER/vnc to server's console: RFB
// in binary websocket frames, as noVNC speaks it.
//
// The caller (the web layer) passes owner = true when the request carries the
// owner's session or Basic auth; the viewer then still proves the VNC
// password. Without owner, the URL must carry a console token (?token=,
// minted by Token) for this server; a valid token also stands in for the
// password. Answers: 401 without either, 403 for a foreign Origin, 409 when
// the server has no console.
func (m *Registry) ServeWebsocket(w http.ResponseWriter, r *http.Request, server string, owner bool) {
	tokenOK := false
	if token := r.URL.Query().Get("token"); token != "" {
		if err := m.tokens.check(server, token); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tokenOK = true
	}
	if !owner && !tokenOK {
		http.Error(w, "console: a session, Basic auth or a console token is required", http.StatusUnauthorized)
		return
	}
	if err := checkOrigin(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	c := m.console(server)
	if c == nil {
		http.Error(w, "server "+server+" has no console: set a VNC password (password) and start the server", http.StatusConflict)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(maxCutText + 64)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	stop := make(chan struct{})
	defer close(stop)
	go keepAlive(ws, stop)
	if err := c.serve(&wsConn{ws: ws}, host, "web", tokenOK); err != nil {
		m.logf("console %s: web client %s: %v", server, r.RemoteAddr, err)
	}
}

// pingInterval keeps an idle console's websocket alive through proxies
// that close quiet connections (a terminal can be silent for hours).
const pingInterval = 30 * time.Second

func keepAlive(ws *websocket.Conn, stop <-chan struct{}) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// WriteControl may run concurrently with the session's writes.
			if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
		}
	}
}

// checkOrigin accepts a request without Origin (not a browser) or one whose
// Origin names the host it was sent to: another site's page must not
// open a console with the user's cookies.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return errors.New("console: malformed Origin " + origin)
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return errors.New("console: Origin " + origin + " does not match host " + r.Host)
	}
	return nil
}

// wsConn carries a byte stream over websocket binary messages: every Write
// is one message; reads run across message boundaries.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
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

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

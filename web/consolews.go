package web

import (
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"hearth/console"
	"hearth/internal/wsstream"
	"hearth/web/api"
	"hearth/web/eh"
)

// Console is what the console websocket needs from the consoles of running
// servers (console.Registry has it): the token check, whether a server has
// a console, and an RFB session over the upgraded connection.
type Console interface {
	CheckToken(server, token string) error
	HasConsole(server string) bool
	Serve(conn io.ReadWriteCloser, server string, peer console.Peer) error
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  16 << 10,
	WriteBufferSize: 64 << 10,
	Subprotocols:    []string{"binary"},
	CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade, with a clear answer
}

// pingInterval keeps an idle console's websocket alive through proxies
// that close quiet connections; pingTimeout bounds one ping's write.
const (
	pingInterval = 30 * time.Second
	pingTimeout  = time.Minute
)

// console serves [PREFIX]/servers/SERVER/vnc: RFB in binary websocket
// frames, as noVNC speaks it.
//
// A request from someone who may use the server (its owner's or an admin's
// Basic auth or dashboard session) gets the console and still proves the
// VNC password. Anyone else needs a console token (?token=, minted by
// console.Registry.Token) for this server; a valid token also stands in for
// the password. Answers: 401 without either (or with a bad token), 403 for
// a foreign Origin, 409 when the server has no console.
func (h *handler) console(w http.ResponseWriter, r *http.Request, server string) {
	if h.cfg.Console == nil {
		eh.WriteError(w, eh.Missingf("no console service on this host"))
		return
	}
	owner, err := h.consoleOwner(r, server)
	if err != nil {
		eh.WriteError(w, err)
		return
	}
	server = strings.ToLower(server)
	tokenOK := false
	if token := r.URL.Query().Get("token"); token != "" {
		if err := h.cfg.Console.CheckToken(server, token); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tokenOK = true
	}
	if !owner && !tokenOK {
		http.Error(w, "console: a session, Basic auth or a console token is required", http.StatusUnauthorized)
		return
	}
	if err := crossSite(r); err != nil {
		http.Error(w, "console: "+err.Error(), http.StatusForbidden)
		return
	}
	if !h.cfg.Console.HasConsole(server) {
		http.Error(w, "server "+server+" has no console: set a VNC password (password) and start the server", http.StatusConflict)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(console.MaxClientMessage)
	conn := wsstream.New(ws)
	stop := make(chan struct{})
	defer close(stop)
	go conn.KeepAlive(pingInterval, pingTimeout, stop)
	remote := clientHost(r.RemoteAddr)
	if err := h.cfg.Console.Serve(conn, server, console.Peer{Addr: remote, Via: "web", TokenChecked: tokenOK}); err != nil {
		h.log.Warn("console viewer ended with an error", "server", server, "remote", remote, "err", err)
	}
}

// consoleOwner tells whether the request comes from someone who may use
// server's console (Basic auth or a dashboard session of its owner or an
// admin). Wrong Basic credentials are an error; no credentials are not.
func (h *handler) consoleOwner(r *http.Request, server string) (bool, error) {
	var caller api.Caller
	var known bool
	if _, _, ok := r.BasicAuth(); ok {
		c, err := h.authenticate(r)
		if err != nil {
			return false, err
		}
		caller, known = c, true
	} else if h.cfg.Session != nil {
		if id, ok := h.cfg.Session(r); ok {
			c, err := h.cfg.API.User(r.Context(), id)
			caller, known = c, err == nil
		}
	}
	if !known {
		return false, nil
	}
	_, err := h.cfg.API.ServerInfo(r.Context(), caller, server)
	return err == nil, nil
}

// clientHost is the host part of a request's remote address.
func clientHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

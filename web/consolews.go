package web

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"hearth/console"
	"hearth/internal/peerlimit"
	"hearth/internal/wsstream"
	"hearth/web/api"
	"hearth/web/eh"
)

// Console is what the console websocket needs from the consoles of running
// servers (console.Registry has it): the token check, whether a server has
// a console, and an RFB session over the upgraded connection.
type Console interface {
	CheckToken(server, user, token string) error
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
// Only someone who may use the server (its owner's or an admin's Basic
// auth or dashboard session) gets the console, and proves the VNC password
// unless they bring a console token: minted by the dashboard for them and
// this server (console.Registry.Token), good once and for seconds, sent as
// the websocket subprotocol "hearth-token.TOKEN" (what a browser can send)
// or the X-Hearth-Console-Token header — never in the URL, where logs and
// browser history would keep it. Answers: 401 without a caller or with a
// bad token, 400 for a token in the URL, 403 for a request from another
// site, 409 when the server has no console.
func (h *handler) console(w http.ResponseWriter, r *http.Request, server string) {
	if h.cfg.Console == nil {
		eh.WriteError(w, eh.Missingf("no console service on this host"))
		return
	}
	if r.URL.Query().Has("token") {
		http.Error(w, "console: a console token goes in the Sec-WebSocket-Protocol (hearth-token.TOKEN) or X-Hearth-Console-Token header, never in the URL", http.StatusBadRequest)
		return
	}
	caller, owner, err := h.consoleOwner(r, server)
	if err != nil {
		eh.WriteError(w, err)
		return
	}
	if !owner {
		http.Error(w, "console: a session or Basic auth of the server's owner is required", http.StatusUnauthorized)
		return
	}
	server = strings.ToLower(server)
	tokenOK := false
	if token := consoleToken(r); token != "" {
		if err := h.cfg.Console.CheckToken(server, caller.ID, token); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tokenOK = true
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
	remote := peerlimit.Host(r.RemoteAddr)
	if err := h.cfg.Console.Serve(conn, server, console.Peer{Addr: remote, Via: "web", TokenChecked: tokenOK}); err != nil {
		h.log.Warn("console viewer ended with an error", "server", server, "remote", remote, "err", err)
	}
}

// consoleOwner tells who the request comes from and whether they may use
// server's console (Basic auth or a dashboard session of its owner or an
// admin). Wrong Basic credentials are an error; no credentials are not.
func (h *handler) consoleOwner(r *http.Request, server string) (api.Caller, bool, error) {
	var caller api.Caller
	var known bool
	if _, _, ok := r.BasicAuth(); ok {
		c, err := h.authenticate(r)
		if err != nil {
			return api.Caller{}, false, err
		}
		caller, known = c, true
	} else if h.cfg.Session != nil {
		if id, ok := h.cfg.Session(r); ok {
			c, err := h.cfg.API.User(r.Context(), id)
			caller, known = c, err == nil
		}
	}
	if !known {
		return api.Caller{}, false, nil
	}
	_, err := h.cfg.API.ServerInfo(r.Context(), caller, server)
	return caller, err == nil, nil
}

// tokenProtocol prefixes the console token among the websocket
// subprotocols a browser offers (it can set no other header).
const tokenProtocol = "hearth-token."

// consoleToken is the console token a request carries, or "".
func consoleToken(r *http.Request) string {
	if t := r.Header.Get("X-Hearth-Console-Token"); t != "" {
		return t
	}
	for _, p := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(p, tokenProtocol); ok {
			return t
		}
	}
	return ""
}

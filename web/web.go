package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"hearth/internal/httpdeadline"
	"hearth/internal/peerlimit"
	"hearth/internal/ratelimit"
	"hearth/web/api"
	"hearth/web/eh"
)

// Config says what the one port serves.
type Config struct {
	// API is the operations layer behind /servers, /drives and /resources.
	API *api.Service
	// Runtime names the guest runtime in use, for /health (e.g.
	// "io.containerd.runc.v2", or "none" when no runtime is wired).
	Runtime func() string
	// Accelerator says how VM guests run, for /health: "kvm", "tcg"
	// (software emulation) or "" (they cannot; the key is left out).
	Accelerator func() string
	// Prefix is an optional path prefix the API lives under (e.g. "/api"),
	// as some providers had (https://host/api/servers/list).
	Prefix string
	// Dashboard answers every path that is not the API, the console or
	// /health (login, pages, static assets). Nil: those paths are 404.
	Dashboard http.Handler
	// Console serves /servers/SERVER/vnc. Nil: the websocket is 404.
	Console Console
	// Session tells who a request's dashboard session belongs to, for the
	// console websocket (nil: Basic auth only).
	Session func(r *http.Request) (user string, ok bool)
	// Logins limits failed Basic authentications; the dashboard's login
	// form shares it (nil: a limiter of the API's own).
	Logins *ratelimit.Logins
	// Deadlines bound how long a request's body may take to arrive and its
	// answer to leave (zero: httpdeadline.Default).
	Deadlines httpdeadline.Limits
	// Logger receives what goes wrong outside a request's answer (a
	// console viewer's session ending in error). Nil: slog.Default().
	Logger *slog.Logger
}

// New returns the handler of the one port:
//
//   - GET /health: unauthenticated liveness (status ok, runtime NAME);
//   - [PREFIX]/servers/SERVER/vnc: the console websocket (Config.Console);
//   - [PREFIX]/servers/..., /drives/..., /resources/..., /users/...: the API, behind
//     HTTP Basic auth (user UUID or name, and secret key);
//   - everything else: the dashboard.
//
// Doubled slashes in API paths are tolerated (clients join a stem ending in
// a slash with /servers/...).
func New(cfg Config) http.Handler {
	h := &handler{cfg: cfg, api: cfg.API.Handler(), log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.logins = cfg.Logins; h.logins == nil {
		h.logins = ratelimit.NewLogins(ratelimit.LoginMaxFailures, time.Now)
	}
	if h.deadlines = cfg.Deadlines; h.deadlines == (httpdeadline.Limits{}) {
		h.deadlines = httpdeadline.Default
	}
	h.prefix = "/" + strings.Trim(cfg.Prefix, "/")
	if h.prefix == "/" {
		h.prefix = ""
	}
	return h
}

type handler struct {
	cfg       Config
	logins    *ratelimit.Logins
	deadlines httpdeadline.Limits
	log       *slog.Logger
	api       http.Handler
	prefix    string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.deadlines.Bound(w)
	path := r.URL.Path
	if path == "/health" || path == h.prefix+"/health" {
		h.health(w, r)
		return
	}
	// Route on the escaped path: an encoded slash inside an ID is part of
	// the ID, never a separator.
	rest := r.URL.EscapedPath()
	if h.prefix != "" {
		var ok bool
		if rest, ok = strings.CutPrefix("/"+strings.TrimLeft(rest, "/"), h.prefix); !ok || rest != "" && rest[0] != '/' {
			h.other(w, r)
			return
		}
	}
	segs := api.Segments(rest)
	if len(segs) == 0 {
		h.other(w, r)
		return
	}
	switch segs[0] {
	case "servers", "drives", "resources", "users":
	default:
		h.other(w, r)
		return
	}
	if len(segs) == 3 && segs[0] == "servers" && segs[2] == "vnc" {
		h.console(w, r, segs[1])
		return
	}
	if fromBrowser(r) {
		w = noChallenge{w}
	}
	if err := crossSite(r); err != nil {
		eh.WriteError(w, eh.Forbiddenf("%v", err))
		return
	}
	caller, err := h.authenticate(r)
	if err != nil {
		eh.WriteError(w, err)
		return
	}
	// The API sees the path without the prefix and doubled slashes.
	escaped := make([]string, len(segs))
	for i, seg := range segs {
		escaped[i] = url.PathEscape(seg)
	}
	u := *r.URL
	u.RawPath = "/" + strings.Join(escaped, "/")
	u.Path = "/" + strings.Join(segs, "/")
	r2 := r.WithContext(api.WithCaller(r.Context(), caller))
	r2.URL = &u
	h.api.ServeHTTP(w, r2)
}

// authenticate checks HTTP Basic credentials: user UUID or name, secret
// key; failures are limited per address and name, and per name.
func (h *handler) authenticate(r *http.Request) (api.Caller, error) {
	login, secret, ok := r.BasicAuth()
	if !ok {
		return api.Caller{}, eh.Authf("HTTP Basic authentication required (user UUID or name, and secret key)")
	}
	attempts, wait, ok := h.logins.Begin(r.Context(), peerlimit.Host(r.RemoteAddr), login)
	if !ok {
		return api.Caller{}, eh.TooManyf(wait, "too many failed authentications as %s; try again in %s", login, max(wait, time.Second).Round(time.Second))
	}
	defer attempts.End() // no-op after Fail
	caller, err := h.cfg.API.Authenticate(r.Context(), login, secret)
	if errors.Is(err, eh.ErrAuth) {
		attempts.Fail()
	}
	return caller, err
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	runtime := "none"
	if h.cfg.Runtime != nil {
		runtime = h.cfg.Runtime()
	}
	props := eh.Props{"status": "ok", "runtime": runtime}
	if h.cfg.Accelerator != nil {
		if accel := h.cfg.Accelerator(); accel != "" {
			props["accelerator"] = accel
		}
	}
	eh.WriteProps(w, r, props)
}

func (h *handler) other(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Dashboard == nil {
		eh.WriteError(w, eh.Missingf("no such page %s", r.URL.Path))
		return
	}
	h.cfg.Dashboard.ServeHTTP(w, r)
}

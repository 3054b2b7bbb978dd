// Package dash is Hearth's web dashboard: server-rendered templ pages for
// everything the ElasticHosts API does (servers, drives, resources, users),
// behind a login with the API's credentials. Every action goes through the
// same operations layer as the API (Backend), so both share validation and
// messages. Pages work without JavaScript; a small script adds live status
// (short polling of server-rendered fragments), in-place actions and chunked
// drive uploads.
package dash

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"hearth/assets"
	"hearth/internal/httpdeadline"
	"hearth/internal/ratelimit"
	"hearth/web/eh"
)

// Config is what the dashboard needs from the rest of Hearth.
type Config struct {
	Backend Backend
	// Runtime is the containerd runtime guests run with (io.containerd.kata.v2
	// or io.containerd.runc.v2; anything else means none).
	Runtime string
	// Accelerator is how VM guests run (vmm.Manager's Accelerator): "kvm",
	// "tcg" (software emulation: the forms and server pages say so next to
	// the type) or "" (VMs cannot run, or unknown).
	Accelerator string
	// DataDir is where drive images live; the header shows its free space.
	DataDir string
	// NoNetwork says why guests can have no NIC (the guest network could not
	// be set up); "" when they can. The forms then offer no network only.
	NoNetwork string
	// Secure marks cookies Secure: set it when serving HTTPS.
	Secure bool
	// ConsoleToken mints a console token for a user on a server
	// (console.Registry.Token); nil: the console page uses the password.
	ConsoleToken func(server, user string) string
	// Sessions keeps the logged-in browsers (required: storage.Store).
	Sessions SessionStore
	// History keeps the servers' counter history the server page graphs
	// (required: storage.Store).
	History HistoryStore
	// IdleTimeout ends sessions unused this long (default 30 minutes).
	IdleTimeout time.Duration
	// Logger reports what went wrong behind a page (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logins limits failed logins (default: a limiter of its own).
	Logins *ratelimit.Logins
}

// Dashboard serves the dashboard: mount it as the handler for every path
// that is not the API's (it answers /, /login, /logout, /ui/... and
// /static/...).
type Dashboard struct {
	cfg      Config
	backend  Backend
	sessions *sessions
	logins   *ratelimit.Logins
	host     *hostProbe
	samples  *sampler
	starts   *pendingStarts
	imports  *imports
	mux      *http.ServeMux
	static   http.Handler
	log      *slog.Logger
	now      func() time.Time
	stop     context.CancelFunc
}

// New builds the dashboard and starts its counter sampler; Close stops it.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Backend == nil {
		return nil, errors.New("dash: no backend")
	}
	if cfg.Sessions == nil {
		return nil, errors.New("dash: no session store")
	}
	if cfg.History == nil {
		return nil, errors.New("dash: no history store")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logins == nil {
		cfg.Logins = ratelimit.NewLogins(ratelimit.LoginMaxFailures, cfg.Now)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/"
	}
	static, err := fs.Sub(assets.Static, "static")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dashboard{
		cfg:      cfg,
		backend:  cfg.Backend,
		sessions: newSessions(cfg.Sessions, cfg.IdleTimeout, cfg.Now, cfg.Logger),
		logins:   cfg.Logins,
		host:     &hostProbe{runtime: cfg.Runtime, kvmPath: "/dev/kvm", dataDir: cfg.DataDir, procDir: "/proc"},
		samples:  newSampler(cfg.History, cfg.Now, cfg.Logger),
		mux:      http.NewServeMux(),
		static:   http.StripPrefix("/static/", http.FileServerFS(static)),
		log:      cfg.Logger,
		now:      cfg.Now,
		stop:     cancel,
	}
	d.starts = newPendingStarts(ctx, d.backend, d.log)
	d.imports = newImports(ctx, d.backend, d.log, d.now)
	d.routes()
	go d.samples.run(ctx, d.backend)
	return d, nil
}

// Close stops the background work (counter sampling, starts waiting for
// imaging, imports, which are abandoned and leave nothing behind).
func (d *Dashboard) Close() error {
	d.stop()
	d.starts.wait()
	d.imports.wait()
	return nil
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

// SessionCaller returns the user UUID of the request's dashboard session, for
// handlers outside the dashboard (the console websocket) that accept it.
func (d *Dashboard) SessionCaller(r *http.Request) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	sess, ok := d.sessions.lookup(r.Context(), c.Value)
	if !ok {
		return "", false
	}
	return sess.user, true
}

func (d *Dashboard) routes() {
	m := d.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/servers", http.StatusSeeOther)
	})
	m.Handle("GET /static/", d.static)
	m.HandleFunc("GET /login", d.loginPage)
	m.HandleFunc("POST /login", d.login)
	m.HandleFunc("POST /logout", d.page(d.logout))
	m.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/servers", http.StatusSeeOther)
	})

	m.HandleFunc("GET /ui/servers", d.page(d.serversPage))
	m.HandleFunc("GET /ui/servers/rows", d.page(d.serverRows))
	m.HandleFunc("GET /ui/servers/new", d.page(d.newServerPage))
	m.HandleFunc("POST /ui/servers/new", d.page(d.createServer))
	m.HandleFunc("GET /ui/servers/{id}", d.page(d.serverPage))
	m.HandleFunc("GET /ui/servers/{id}/live", d.page(d.serverLive))
	m.HandleFunc("GET /ui/servers/{id}/console.json", d.page(d.serverConsoleJSON))
	m.HandleFunc("POST /ui/servers/{id}/set", d.page(d.setServer))
	m.HandleFunc("GET /ui/servers/{id}/destroy", d.page(d.confirming("Destroy server", d.askDestroy)))
	m.HandleFunc("GET /ui/servers/{id}/stop", d.page(d.confirming("Stop server", d.askStop)))
	m.HandleFunc("POST /ui/servers/{id}/{action}", d.page(d.serverAction))

	m.HandleFunc("GET /ui/drives", d.page(d.drivesPage))
	m.HandleFunc("GET /ui/drives/rows", d.page(d.driveRows))
	m.HandleFunc("POST /ui/drives/new", d.page(d.createDrive))
	m.HandleFunc("POST /ui/drives/upload", streaming(d.page(d.uploadDrive)))
	m.HandleFunc("GET /ui/drives/{id}/download", streaming(d.page(d.downloadDrive)))
	m.HandleFunc("GET /ui/drives/{id}/info.json", d.page(d.driveJSON))
	m.HandleFunc("POST /ui/drives/{id}/write/{offset}", streaming(d.page(d.writeDrive)))
	m.HandleFunc("POST /ui/drives/{id}/resize", d.page(d.resizeDrive))
	m.HandleFunc("POST /ui/drives/{id}/share", d.page(d.shareDrive))
	m.HandleFunc("POST /ui/drives/{id}/destroy", d.page(d.destroyDrive))
	m.HandleFunc("POST /ui/library/import", streaming(d.page(d.importImage)))
	m.HandleFunc("GET /ui/library/imports/{id}", d.page(d.importJSON))
	m.HandleFunc("POST /ui/library/imports/{id}/dismiss", d.page(d.dismissImport))

	m.HandleFunc("GET /ui/resources", d.page(d.resourcesPage))
	m.HandleFunc("POST /ui/resources/{type}/new", d.page(d.createResource))
	m.HandleFunc("POST /ui/resources/{type}/{id}/set", d.page(d.renameResource))
	m.HandleFunc("POST /ui/resources/{type}/{id}/destroy", d.page(d.destroyResource))

	m.HandleFunc("GET /ui/account", d.page(d.ownAccount))
	m.HandleFunc("GET /ui/users", d.page(d.usersPage))
	m.HandleFunc("GET /ui/users/{id}", d.page(d.accountPage))
	m.HandleFunc("POST /ui/users/{id}/limits", d.page(d.setLimits))
	m.HandleFunc("POST /ui/users/new", d.page(d.createUser))
	m.HandleFunc("POST /ui/users/{id}/remove", d.page(d.removeUser))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.securityHeaders(w)
		w.WriteHeader(http.StatusNotFound)
		render(w, r, barePage("Not found", "There is no page at this address."))
	})
}

// request is one authenticated dashboard request.
type request struct {
	*http.Request
	w    http.ResponseWriter
	user User
	sess session
}

// fetch reports whether the dashboard's script sent the request and wants a
// JSON answer instead of a redirect.
func (rq *request) fetch() bool { return rq.Header.Get("X-Hearth-Fetch") == "1" }

// securityHeaders sets the headers every dashboard page carries. The pages
// have no inline script or style, so the policy can forbid both.
func (d *Dashboard) securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// page wraps a handler that needs a logged-in user: it loads the session and
// the user, and refuses state-changing requests without the session's CSRF
// token or from another origin.
func (d *Dashboard) page(h func(*request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.securityHeaders(w)
		rq := &request{Request: r, w: w}
		c, err := r.Cookie(sessionCookie)
		var ok bool
		if err == nil {
			rq.sess, ok = d.sessions.lookup(r.Context(), c.Value)
		}
		if ok {
			rq.user, err = d.backend.User(r.Context(), rq.sess.user)
			switch {
			case errors.Is(err, eh.ErrAuth) || errors.Is(err, eh.ErrMissing): // removed: the session goes with it
				d.sessions.remove(r.Context(), rq.sess.id)
				ok = false
			case err != nil: // the store failed: keep the session, say so
				d.log.Error("loading a session's user failed", "user", rq.sess.user, "err", err)
				w.WriteHeader(http.StatusInternalServerError)
				render(w, r, barePage("Something went wrong", "Hearth could not load your account. Try again in a moment."))
				return
			}
		}
		if !ok {
			d.notLoggedIn(rq)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				d.refuse(rq, http.StatusForbidden, "This request came from another site and was refused.")
				return
			}
			token := r.Header.Get("X-CSRF-Token")
			if token == "" && !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				token = r.PostFormValue("csrf")
			}
			if token == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				token = r.URL.Query().Get("csrf")
			}
			if !sameToken(token, rq.sess.csrf) {
				d.refuse(rq, http.StatusForbidden, "The form has expired (missing or wrong security token). Reload the page and try again.")
				return
			}
		}
		h(rq)
	}
}

// notLoggedIn sends a browser to the login page (back to this page, or for
// a form, to the page it came from), or answers a script 401.
func (d *Dashboard) notLoggedIn(rq *request) {
	if rq.fetch() || strings.HasSuffix(rq.URL.Path, ".json") {
		writeJSON(rq.w, http.StatusUnauthorized, map[string]string{"error": "not logged in", "login": "/login"})
		return
	}
	next := rq.URL.RequestURI()
	if rq.Method != http.MethodGet {
		next = "/ui/servers"
		if ref, err := url.Parse(rq.Referer()); err == nil && ref.Host == rq.Host {
			next = ref.RequestURI()
		}
	}
	http.Redirect(rq.w, rq.Request, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// refuse answers a refused request: JSON for the script, a page otherwise.
func (d *Dashboard) refuse(rq *request, status int, msg string) {
	if rq.fetch() {
		writeJSON(rq.w, status, map[string]string{"error": msg})
		return
	}
	rq.w.WriteHeader(status)
	render(rq.w, rq.Request, errorPage(d.pageData(rq, "Refused", ""), msg))
}

// sameOrigin checks the Origin header, when the browser sends one, against
// the host the request was made to.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// pageData is what the layout needs.
type pageData struct {
	Title   string
	Nav     string
	User    User
	CSRF    string
	Host    hostFacts
	Flashes []flash
}

// accelNote is what the pages say next to a server's type about how VMs
// run here: tcgNote under software emulation, else nothing.
func (d *Dashboard) accelNote() string {
	if d.cfg.Accelerator == "tcg" {
		return tcgNote
	}
	return ""
}

func (d *Dashboard) pageData(rq *request, title, nav string) pageData {
	return pageData{
		Title:   title,
		Nav:     nav,
		User:    rq.user,
		CSRF:    rq.sess.csrf,
		Host:    d.host.facts(),
		Flashes: d.sessions.takeFlashes(rq.sess.id),
	}
}

// done ends a successful action: JSON for the script, else a flash and a
// redirect to back.
func (d *Dashboard) done(rq *request, back, msg string) {
	d.announce(rq, back, flash{Kind: "ok", Message: msg})
}

// announce ends a successful action with its flash, which may wait for a
// state to come (Await).
func (d *Dashboard) announce(rq *request, back string, f flash) {
	if rq.fetch() {
		writeJSON(rq.w, http.StatusOK, struct {
			Message  string      `json:"message"`
			Kind     string      `json:"kind"`
			Redirect string      `json:"redirect"`
			Await    *awaitFlash `json:"await,omitempty"`
		}{f.Message, f.Kind, back, f.Await})
		return
	}
	if f.Message != "" {
		d.sessions.addFlash(rq.sess.id, f)
	}
	http.Redirect(rq.w, rq.Request, back, http.StatusSeeOther)
}

// failed ends a failed action the same way, with the operation's message.
func (d *Dashboard) failed(rq *request, back string, err error) {
	e := eh.AsError(err)
	if e.Status >= 500 {
		d.log.Error("dashboard action failed", "user", rq.user.ID, "method", rq.Method, "path", rq.URL.Path, "err", err)
	}
	if rq.fetch() {
		writeJSON(rq.w, e.Status, map[string]string{"error": e.Message})
		return
	}
	d.sessions.addFlash(rq.sess.id, flash{Kind: "error", Message: e.Message})
	http.Redirect(rq.w, rq.Request, back, http.StatusSeeOther)
}

// backTo returns the form's "back" field when it is a dashboard path, else def.
func backTo(r *http.Request, def string) string { return dashPath(r.PostFormValue("back"), def) }

// backQuery is backTo for a link's ?back= (a page reached by GET).
func backQuery(r *http.Request, def string) string { return dashPath(r.URL.Query().Get("back"), def) }

// dashPath returns b when it is a dashboard path (never another site), else def.
func dashPath(b, def string) string {
	if strings.HasPrefix(b, "/ui/") && !strings.HasPrefix(b, "//") {
		return b
	}
	return def
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// render writes a component; a failure mid-page can only be logged by the caller.
func render(w http.ResponseWriter, r *http.Request, c templ.Component) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	_ = c.Render(r.Context(), w)
}

// streaming gives a handler that moves a drive's contents progress
// deadlines instead of the fixed ones every request starts with.
func streaming(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(httpdeadline.Stream(w, r))
	}
}

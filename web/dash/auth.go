package dash

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"hearth/internal/peerlimit"
	"hearth/web/eh"
)

// loginForm is what the login page shows.
type loginForm struct {
	Token   string // protects the form against cross-site posting
	Login   string
	Next    string
	Error   string
	Message string
}

// safeNext keeps a post-login redirect inside the dashboard and console page.
func safeNext(next string) string {
	if (strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/static/console/")) && !strings.Contains(next, "//") {
		return next
	}
	return "/ui/servers"
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.securityHeaders(w)
	if _, ok := d.SessionCaller(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	f := loginForm{Next: r.URL.Query().Get("next")}
	if r.URL.Query().Has("bye") {
		f.Message = "You have been logged out."
	}
	d.showLogin(w, r, http.StatusOK, f)
}

// showLogin renders the login form with a fresh form token.
func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, f loginForm) {
	f.Token = randomToken()
	setCookie(w, d.cfg.Secure, loginCookie, f.Token, int(time.Hour/time.Second))
	w.WriteHeader(status)
	render(w, r, loginPage(f))
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	d.securityHeaders(w)
	f := loginForm{Login: strings.TrimSpace(r.PostFormValue("login")), Next: r.PostFormValue("next")}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || !sameToken(r.PostFormValue("token"), c.Value) {
		f.Error = "The login form has expired. Please try again."
		d.showLogin(w, r, http.StatusForbidden, f)
		return
	}
	secret := r.PostFormValue("secret")
	if f.Login == "" || secret == "" {
		f.Error = "Enter your user name (or UUID) and secret."
		d.showLogin(w, r, http.StatusBadRequest, f)
		return
	}
	attempts, wait, ok := d.logins.Begin(r.Context(), peerlimit.Host(r.RemoteAddr), f.Login)
	if !ok {
		f.Error = "Too many failed logins. Try again in a moment."
		if wait > 0 {
			f.Error = fmt.Sprintf("Too many failed logins. Try again in %s.", humanDuration(wait.Round(time.Second)))
		}
		d.log.Warn("login refused: rate limited", "login", f.Login, "remote", peerlimit.Host(r.RemoteAddr))
		d.showLogin(w, r, http.StatusTooManyRequests, f)
		return
	}
	defer attempts.End() // no-op after Fail
	user, err := d.backend.Authenticate(r.Context(), f.Login, secret)
	if err != nil {
		if !errors.Is(err, eh.ErrAuth) {
			d.log.Error("login failed", "login", f.Login, "remote", peerlimit.Host(r.RemoteAddr), "err", err)
		}
		attempts.Fail()
		f.Error = "Wrong user name or secret."
		d.showLogin(w, r, http.StatusUnauthorized, f)
		return
	}
	sess, err := d.sessions.create(r.Context(), user.ID)
	if err != nil {
		d.log.Error("starting a session", "login", f.Login, "err", err)
		f.Error = "Hearth could not start your session. Try again in a moment."
		d.showLogin(w, r, http.StatusInternalServerError, f)
		return
	}
	setCookie(w, d.cfg.Secure, loginCookie, "", -1)
	setCookie(w, d.cfg.Secure, sessionCookie, sess.id, 0)
	http.Redirect(w, r, safeNext(f.Next), http.StatusSeeOther)
}

func (d *Dashboard) logout(rq *request) {
	d.sessions.remove(rq.Context(), rq.sess.id)
	setCookie(rq.w, d.cfg.Secure, sessionCookie, "", -1)
	http.Redirect(rq.w, rq.Request, "/login?bye", http.StatusSeeOther)
}

package dash

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"hearth/storage"
)

// Cookie names. The session cookie carries only a random identifier; the
// login cookie carries the token that protects the login form itself against
// cross-site submission (there is no session yet to hold it).
const (
	sessionCookie = "hearth_session"
	loginCookie   = "hearth_login"
)

// flash is a one-time message shown on the next page the session renders.
type flash struct {
	Kind    string // "ok", "info" or "error"
	Message string
	// Await, when set, makes the flash follow a server until a state its
	// action announced has come (a shutdown, until stopped).
	Await *awaitFlash
}

// awaitFlash is what a flash waits for, as the page's script reads it.
type awaitFlash struct {
	Server string `json:"server"`
	States string `json:"states"` // space-separated serverState.State values
	Done   string `json:"done"`   // the message once one has come (or the server is gone)
	// Failed, when set, is the message (an error) once the server is in
	// the start-failed state, or gone, instead of Done.
	Failed string `json:"failed,omitempty"`
}

// session is one logged-in browser.
type session struct {
	id   string
	user string // UUID of the logged-in user
	csrf string // synchronizer token for every state-changing request
}

// SessionStore keeps sessions where a restart of Hearth finds them again
// (storage.Store, in SQLite); only hashes of their ids are kept.
type SessionStore interface {
	CreateSession(ctx context.Context, id string, sess storage.Session) error
	Session(ctx context.Context, id string) (storage.Session, error)
	TouchSession(ctx context.Context, id string, now time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteIdleSessions(ctx context.Context, before time.Time) error
}

// sessions are the logged-in browsers, in the SessionStore, with idle
// expiry; their flashes (messages for the next page) live in memory only.
type sessions struct {
	store SessionStore
	idle  time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	flashes map[string][]flash // by session id
}

func newSessions(store SessionStore, idle time.Duration, now func() time.Time, log *slog.Logger) *sessions {
	return &sessions{store: store, idle: idle, now: now, log: log, flashes: map[string][]flash{}}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user.
func (s *sessions) create(ctx context.Context, user string) (session, error) {
	now := s.now()
	if err := s.store.DeleteIdleSessions(ctx, now.Add(-s.idle)); err != nil {
		s.log.Warn("removing idle sessions", "err", err)
	}
	sess := session{id: randomToken(), user: user, csrf: randomToken()}
	if err := s.store.CreateSession(ctx, sess.id, storage.Session{User: user, CSRF: sess.csrf, LastSeen: now}); err != nil {
		return session{}, err
	}
	return sess, nil
}

// lookup returns the live session with this id and marks it used; an idle
// one is removed. A store that fails counts as no session (logged).
func (s *sessions) lookup(ctx context.Context, id string) (session, bool) {
	stored, err := s.store.Session(ctx, id)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("loading a session", "err", err)
		}
		return session{}, false
	}
	now := s.now()
	if now.Sub(stored.LastSeen) > s.idle {
		s.remove(ctx, id)
		return session{}, false
	}
	if err := s.store.TouchSession(ctx, id, now); err != nil {
		s.log.Warn("recording a session's use", "err", err)
	}
	return session{id: id, user: stored.User, csrf: stored.CSRF}, true
}

// remove ends a session (logout, or its user was removed).
func (s *sessions) remove(ctx context.Context, id string) {
	if err := s.store.DeleteSession(ctx, id); err != nil {
		s.log.Error("ending a session", "err", err)
	}
	s.mu.Lock()
	delete(s.flashes, id)
	s.mu.Unlock()
}

// addFlash queues a message for the next page of this session.
func (s *sessions) addFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flashes[id] = append(s.flashes[id], f)
}

// takeFlashes returns and clears the queued messages.
func (s *sessions) takeFlashes(id string) []flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flashes[id]
	delete(s.flashes, id)
	return f
}

// sameToken compares two tokens in constant time; an empty token never matches.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// setCookie writes a cookie with the attributes every Hearth cookie has.
func setCookie(w http.ResponseWriter, secure bool, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteStrictMode,
	})
}

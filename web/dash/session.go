package dash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
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
	Kind    string // "ok" or "error"
	Message string
}

// session is one logged-in browser. Sessions live in memory: a restart of
// Hearth logs everyone out, which is the safe direction to fail.
type session struct {
	id       string
	user     string // UUID of the logged-in user
	csrf     string // synchronizer token for every state-changing request
	lastSeen time.Time
	flashes  []flash
}

// sessions is the table of live sessions with idle expiry.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	idle time.Duration
	now  func() time.Time
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: idle, now: now}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user and returns its id.
func (s *sessions) create(user string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, old := range s.byID { // drop expired ones while we hold the lock anyway
		if now.Sub(old.lastSeen) > s.idle {
			delete(s.byID, id)
		}
	}
	sess := &session{id: randomToken(), user: user, csrf: randomToken(), lastSeen: now}
	s.byID[sess.id] = sess
	return sess
}

// lookup returns the live session with this id and marks it used; an idle
// one is removed. The returned copy is safe to read without the lock.
func (s *sessions) lookup(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	now := s.now()
	if now.Sub(sess.lastSeen) > s.idle {
		delete(s.byID, id)
		return session{}, false
	}
	sess.lastSeen = now
	return *sess, true
}

// remove ends a session (logout, or its user was removed).
func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// removeUser ends every session of a user.
func (s *sessions) removeUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.byID {
		if sess.user == user {
			delete(s.byID, id)
		}
	}
}

// addFlash queues a message for the next page of this session.
func (s *sessions) addFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok {
		sess.flashes = append(sess.flashes, f)
	}
}

// takeFlashes returns and clears the queued messages.
func (s *sessions) takeFlashes(id string) []flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return nil
	}
	f := sess.flashes
	sess.flashes = nil
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

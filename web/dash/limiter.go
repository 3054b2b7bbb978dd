package dash

import (
	"sync"
	"time"
)

// loginLimiter slows down password guessing: after maxFailures failed logins
// for the same key (the client address, and separately the login name) within
// window, further attempts for that key are refused until the oldest failure
// has aged out. Successful logins do not count.
type loginLimiter struct {
	mu          sync.Mutex
	failures    map[string][]time.Time
	maxFailures int
	window      time.Duration
	now         func() time.Time
}

func newLoginLimiter(maxFailures int, window time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, maxFailures: maxFailures, window: window, now: now}
}

// prune drops failures older than the window; call with mu held.
func (l *loginLimiter) prune(key string, now time.Time) []time.Time {
	recent := l.failures[key][:0]
	for _, t := range l.failures[key] {
		if now.Sub(t) < l.window {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(l.failures, key)
		return nil
	}
	l.failures[key] = recent
	return recent
}

// blocked reports whether any of keys is locked out, and for how long.
func (l *loginLimiter) blocked(keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, key := range keys {
		recent := l.prune(key, now)
		if len(recent) >= l.maxFailures {
			if w := recent[len(recent)-l.maxFailures].Add(l.window).Sub(now); w > wait {
				wait = w
			}
		}
	}
	return wait, wait > 0
}

// fail records a failed attempt for every key. Keys whose failures have
// all aged out are dropped now and then, so guessing from many addresses or
// names cannot grow the table without bound.
func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.failures) > 4096 {
		for key := range l.failures {
			l.prune(key, now)
		}
	}
	for _, key := range keys {
		l.failures[key] = append(l.prune(key, now), now)
	}
}

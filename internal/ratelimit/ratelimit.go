// Package ratelimit slows down guessing: it counts failed attempts per key
// (a source address, a login name) within a sliding window and refuses a key
// that failed too often until its oldest failure ages out. The dashboard's
// login form and the VNC password step share it.
package ratelimit

import (
	"sync"
	"time"
)

// maxTracked bounds the table: beyond it, keys whose failures all aged out
// are swept, so guessing from many addresses cannot grow it without bound.
const maxTracked = 4096

// Failures counts failed attempts per key. Successes are not recorded.
type Failures struct {
	mu       sync.Mutex
	now      func() time.Time
	max      int
	window   time.Duration
	failures map[string][]time.Time
}

// New returns a Failures that refuses a key after max failures within
// window, reading the time from now.
func New(max int, window time.Duration, now func() time.Time) *Failures {
	return &Failures{now: now, max: max, window: window, failures: map[string][]time.Time{}}
}

// recent drops key's failures older than the window; call with mu held.
func (l *Failures) recent(key string, now time.Time) []time.Time {
	cutoff := now.Add(-l.window)
	times := l.failures[key]
	i := 0
	for i < len(times) && !times[i].After(cutoff) {
		i++
	}
	times = times[i:]
	if len(times) == 0 {
		delete(l.failures, key)
	} else {
		l.failures[key] = times
	}
	return times
}

// Blocked reports whether any of keys is refused, and how long until the
// last of them may try again.
func (l *Failures) Blocked(keys ...string) (wait time.Duration, blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, key := range keys {
		times := l.recent(key, now)
		if len(times) >= l.max {
			if w := times[len(times)-l.max].Add(l.window).Sub(now); w > wait {
				wait = w
			}
		}
	}
	return wait, wait > 0
}

// Fail records a failed attempt for every key.
func (l *Failures) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.failures) >= maxTracked {
		for key := range l.failures {
			l.recent(key, now)
		}
	}
	for _, key := range keys {
		times := l.recent(key, now)
		if len(times) >= l.max {
			times = times[1:]
		}
		l.failures[key] = append(times, now)
	}
}

// tracked is how many keys the table holds (tests).
func (l *Failures) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failures)
}

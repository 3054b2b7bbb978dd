// Package ratelimit slows down guessing: it counts failed attempts per key
// (a source address, a login name, a server) within a sliding window and
// refuses a key that failed too often until its oldest failure ages out.
// An attempt counts against its keys from the moment it begins, so a burst
// of parallel attempts cannot have more guesses evaluated than sequential
// ones: with max 5, a sixth attempt waits until one in flight ends, and is
// refused if that one failed the fifth time. Honest clients that send many
// requests at once thus queue for the microseconds a check takes instead
// of being refused. The dashboard's login form and the VNC password step share it.
package ratelimit

import (
	"context"
	"slices"
	"sync"
	"time"
)

// maxTracked bounds the table: when it is full, keys whose failures all
// aged out are swept, and if that frees too little the keys that failed
// least recently are forgotten, down to three quarters, so that a spray of
// new keys (random login names) can neither grow it without bound nor make
// each check sweep it: a sweep comes at most once per maxTracked/4 new keys.
// Forgetting lets a key guess again early, but only after thousands of
// other keys failed in between.
const maxTracked = 4096

// Failures counts failed and in-flight attempts per key.
type Failures struct {
	mu       sync.Mutex
	now      func() time.Time
	max      int
	window   time.Duration
	failures map[string][]time.Time
	inFlight map[string]int
	ended    chan struct{} // closed (and replaced) whenever an attempt ends
}

// New returns a Failures that refuses a key after max failures within
// window, reading the time from now.
func New(max int, window time.Duration, now func() time.Time) *Failures {
	return &Failures{now: now, max: max, window: window, failures: map[string][]time.Time{}, inFlight: map[string]int{}, ended: make(chan struct{})}
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

// makeRoom keeps the table under maxTracked keys; call with mu held.
func (l *Failures) makeRoom(now time.Time) {
	if len(l.failures) < maxTracked {
		return
	}
	for key := range l.failures {
		l.recent(key, now)
	}
	keep := maxTracked * 3 / 4
	if len(l.failures) <= keep {
		return
	}
	keys := make([]string, 0, len(l.failures))
	for key := range l.failures {
		keys = append(keys, key)
	}
	last := func(key string) time.Time { times := l.failures[key]; return times[len(times)-1] }
	slices.SortFunc(keys, func(a, b string) int { return last(a).Compare(last(b)) })
	for _, key := range keys[:len(keys)-keep] {
		delete(l.failures, key)
	}
}

// Attempt is one guess in flight, begun by Begin; exactly one of Fail or
// End finishes it (later calls do nothing).
type Attempt struct {
	l    *Failures
	keys []string
	done bool
}

// Begin starts an attempt for every key. A key whose failures within the
// window reached max refuses it, with how long until the oldest of them
// ages out (wait). A key whose failures and attempts in flight together
// reached max makes Begin wait until one of those ends, as long as ctx
// lets it (then it is refused with wait 0).
func (l *Failures) Begin(ctx context.Context, keys ...string) (a *Attempt, wait time.Duration, ok bool) {
	for {
		l.mu.Lock()
		a, wait, busy := l.tryBegin(keys)
		ended := l.ended
		l.mu.Unlock()
		if a != nil || !busy {
			return a, wait, a != nil
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return nil, 0, false
		}
	}
}

// tryBegin is Begin without waiting: busy says that only attempts in
// flight stand in the way. Call with mu held.
func (l *Failures) tryBegin(keys []string) (a *Attempt, wait time.Duration, busy bool) {
	now := l.now()
	l.makeRoom(now)
	for _, key := range keys {
		times := l.recent(key, now)
		switch {
		case len(times) >= l.max:
			wait = max(wait, times[len(times)-l.max].Add(l.window).Sub(now))
		case len(times)+l.inFlight[key] >= l.max:
			busy = true
		}
	}
	if wait > 0 {
		return nil, wait, false
	}
	if busy {
		return nil, 0, true
	}
	for _, key := range keys {
		l.inFlight[key]++
	}
	return &Attempt{l: l, keys: keys}, 0, false
}

// Fail ends the attempt as a failure of each of its keys.
func (a *Attempt) Fail() { a.finish(true) }

// End ends the attempt without a failure: it succeeded, or it never got to
// guess (the client went away).
func (a *Attempt) End() { a.finish(false) }

func (a *Attempt) finish(failed bool) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	defer func() {
		close(l.ended)
		l.ended = make(chan struct{})
	}()
	now := l.now()
	for _, key := range a.keys {
		if l.inFlight[key]--; l.inFlight[key] <= 0 {
			delete(l.inFlight, key)
		}
		if !failed {
			continue
		}
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
	return len(l.failures) + len(l.inFlight)
}

// Limit is a key of one Failures.
type Limit struct {
	Failures *Failures
	Key      string
}

// Attempts are attempts begun together against several Limits.
type Attempts []*Attempt

// BeginAll begins an attempt against every limit, in order, or none if
// one of them refuses (as Begin does; the order is the same for every
// caller, so waits cannot deadlock).
func BeginAll(ctx context.Context, limits ...Limit) (as Attempts, wait time.Duration, ok bool) {
	for _, l := range limits {
		a, w, began := l.Failures.Begin(ctx, l.Key)
		if !began {
			as.End()
			return nil, w, false
		}
		as = append(as, a)
	}
	return as, 0, true
}

// Fail ends every attempt as a failure.
func (as Attempts) Fail() {
	for _, a := range as {
		a.Fail()
	}
}

// End ends every attempt not yet ended, without a failure.
func (as Attempts) End() {
	for _, a := range as {
		a.End()
	}
}

package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

var ctx = context.Background()

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fail begins an attempt on keys and fails it.
func fail(t *testing.T, l *Failures, keys ...string) {
	t.Helper()
	a, _, ok := l.Begin(ctx, keys...)
	if !ok {
		t.Fatalf("attempt on %v refused", keys)
	}
	a.Fail()
}

func TestBlocksAfterMaxFailuresUntilTheOldestAgesOut(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(3, time.Minute, c.now)
	for range 3 {
		fail(t, l, "a")
		c.advance(10 * time.Second)
	}
	if _, wait, ok := l.Begin(ctx, "a", "b"); ok || wait != 30*time.Second {
		t.Fatalf("after 3 failures: allowed %v, wait %v; want refused, 30s", ok, wait)
	}
	if a, _, ok := l.Begin(ctx, "b"); !ok {
		t.Fatal("another key is refused")
	} else {
		a.End()
	}
	c.advance(30 * time.Second)
	if _, _, ok := l.Begin(ctx, "a"); !ok {
		t.Fatal("still refused once the oldest failure aged out")
	}
}

func TestAttemptsInFlightCountUntilTheyEnd(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(2, time.Minute, c.now)
	first, _, ok1 := l.Begin(ctx, "a")
	second, _, ok2 := l.Begin(ctx, "a")
	if !ok1 || !ok2 {
		t.Fatal("the first two attempts were refused")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, wait, ok := l.Begin(done, "a"); ok || wait != 0 {
		t.Fatalf("a third attempt while two are in flight, not waiting: allowed %v, wait %v; want refused, 0", ok, wait)
	}
	// A third attempt waits for one in flight to end; a success frees its place.
	third := make(chan *Attempt)
	go func() { a, _, _ := l.Begin(ctx, "a"); third <- a }()
	first.End()
	first.Fail() // a finished attempt stays finished
	a := <-third
	if a == nil {
		t.Fatal("the waiting attempt was refused after one in flight ended without failing")
	}
	// Two failures: a waiting attempt is refused with the wait.
	fourth := make(chan time.Duration)
	go func() { _, wait, _ := l.Begin(ctx, "a"); fourth <- wait }()
	second.Fail()
	a.Fail()
	if wait := <-fourth; wait != time.Minute {
		t.Fatalf("a waiting attempt after two failures: wait %v, want a minute", wait)
	}
}

// However many attempts run at once, no more than max get to guess.
func TestParallelAttemptsCannotExceedMax(t *testing.T) {
	l := New(5, time.Minute, time.Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	began := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _, ok := l.Begin(ctx, "addr")
			if !ok {
				return
			}
			mu.Lock()
			began++
			mu.Unlock()
			time.Sleep(time.Millisecond)
			a.Fail()
		}()
	}
	wg.Wait()
	if began > 5 {
		t.Fatalf("%d of 50 parallel attempts got to guess; want at most 5", began)
	}
}

func TestTableStaysBounded(t *testing.T) {
	c := &clock{}
	l := New(5, time.Minute, c.now)
	for i := range 5000 {
		fail(t, l, strconv.Itoa(i))
	}
	c.advance(time.Minute)
	// The next sweep (the table filling up again) drops every aged key.
	fresh := maxTracked / 4
	for i := range fresh {
		fail(t, l, "late"+strconv.Itoa(i))
	}
	if n := l.tracked(); n != fresh {
		t.Fatalf("%d keys kept, want only the %d that failed within the window", n, fresh)
	}
}

// A spray of new keys (random login names) keeps the table bounded and
// never makes a check sweep it each time.
func TestSprayOfNewKeysStaysBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(5, time.Hour, c.now)
	for i := range 20 * maxTracked {
		fail(t, l, "spray"+strconv.Itoa(i))
		c.advance(time.Millisecond)
		if n := l.tracked(); n > maxTracked {
			t.Fatalf("%d keys tracked after %d new ones; want at most %d", n, i+1, maxTracked)
		}
	}
}

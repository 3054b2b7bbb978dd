package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBlocksAfterMaxFailuresUntilTheOldestAgesOut(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(3, time.Minute, c.now)
	for i := 0; i < 3; i++ {
		if _, blocked := l.Blocked("a"); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail("a")
		c.advance(10 * time.Second)
	}
	wait, blocked := l.Blocked("a", "b")
	if !blocked || wait != 30*time.Second {
		t.Fatalf("after 3 failures: blocked %v, wait %v; want 30s", blocked, wait)
	}
	if _, blocked := l.Blocked("b"); blocked {
		t.Fatal("another key is blocked")
	}
	c.advance(30 * time.Second)
	if _, blocked := l.Blocked("a"); blocked {
		t.Fatal("still blocked once the oldest failure aged out")
	}
}

func TestTableStaysBounded(t *testing.T) {
	c := &clock{}
	l := New(5, time.Minute, c.now)
	for i := 0; i < 5000; i++ {
		l.Fail(strconv.Itoa(i))
	}
	c.advance(time.Minute)
	l.Fail("late")
	if n := l.tracked(); n != 1 {
		t.Fatalf("%d keys kept after their failures aged out", n)
	}
}

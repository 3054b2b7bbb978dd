package guest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestConsoleRing(t *testing.T) {
	c := NewConsole()
	out := c.Output()
	first, updates, cancel := c.Subscribe()
	if len(first) != 0 {
		t.Errorf("backlog %q", first)
	}
	out.Write([]byte("hello"))
	if got := <-updates; string(got) != "hello" {
		t.Errorf("update %q", got)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), ConsoleBacklog/16+100)
	out.Write(big)
	if got := c.Backlog(); !bytes.Equal(got, big[len(big)-ConsoleBacklog:]) {
		t.Errorf("backlog is not the last 64 KiB (len %d)", len(got))
	}
	// A subscriber that never reads is dropped, and the writer never blocks.
	_, slow, _ := c.Subscribe()
	for i := 0; i < subscriberQueue+10; i++ {
		out.Write([]byte("x"))
	}
	n := 0
	for range slow {
		n++
	}
	if n != subscriberQueue {
		t.Errorf("slow subscriber got %d chunks before its channel closed", n)
	}
	cancel()
	cancel()
	c.CloseInput()
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("write after close: %v", err)
	}
}

func TestConsoleResize(t *testing.T) {
	c := NewConsole()
	if err := c.Resize(80, 24); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("resize before the guest's terminal exists: %v", err)
	}
	var got []int
	c.SetResizer(func(cols, rows int) error { got = append(got, cols, rows); return nil })
	if err := c.Resize(48, 42); err != nil || !slices.Equal(got, []int{48, 42}) {
		t.Fatalf("resize: %v, backend got %v", err, got)
	}
	if err := c.Resize(0, 24); !errors.Is(err, ErrInvalid) {
		t.Fatalf("resize to 0 columns: %v", err)
	}
}

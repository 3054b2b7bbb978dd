package qemu

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// fakeQEMU serves one QMP connection on a unix socket with a script:
// for each command line it reads, it writes the lines answer returns.
func fakeQEMU(t *testing.T, greeting string, answer func(command string) []string) string {
	t.Helper()
	path := filepath.Join(runDir(t), QMPSocket)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(greeting + "\n"))
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			for _, out := range answer(strings.TrimSpace(line)) {
				if _, err := conn.Write([]byte(out + "\n")); err != nil {
					return
				}
			}
		}
	}()
	return path
}

const (
	greeting   = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`
	resetEvent = `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}`
)

// TestMonitorEventsAroundAnswers: events before the capabilities answer and
// between answers are delivered as events, never taken for an answer.
func TestMonitorEventsAroundAnswers(t *testing.T) {
	path := fakeQEMU(t, greeting, func(command string) []string {
		switch {
		case strings.Contains(command, "qmp_capabilities"):
			return []string{resetEvent, `{"return": {}}`}
		case strings.Contains(command, "query-status"):
			return []string{resetEvent, `{"return": {"status": "running", "running": true}}`, resetEvent}
		case strings.Contains(command, "cont"):
			return []string{`{"error": {"class": "GenericError", "desc": "not paused"}}`}
		}
		return nil
	})
	ctx := context.Background()
	c, err := Connect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	events := c.Events(ctx)
	for range 3 {
		if s, err := c.Status(ctx); err != nil || s.State != "running" {
			t.Fatalf("Status = %+v, %v", s, err)
		}
	}
	// The RESET before the capabilities answer may precede Events; the six
	// after it may not be lost.
	got := 0
	for got < 6 {
		e := <-events
		if e.Kind != EventReset || !e.Guest || e.Reason != "guest-reset" {
			t.Fatalf("event %+v, want the guest's RESET", e)
		}
		got++
	}
	err = c.Resume(ctx)
	if err == nil || errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "not paused") {
		t.Errorf("Resume refused by QEMU: %v", err)
	}
	c.Close()
	if _, err := c.Status(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Status after Close: %v, want ErrClosed", err)
	}
	for range events { // closed after Close (a hang here fails by the test's timeout)
	}
}

func TestMonitorNotQMP(t *testing.T) {
	path := fakeQEMU(t, "SSH-2.0-OpenSSH", func(string) []string { return nil })
	if c, err := Connect(context.Background(), path); err == nil {
		c.Close()
		t.Fatal("Connect to a socket that does not speak QMP succeeded")
	}
}

func TestConnectCanceled(t *testing.T) {
	path := fakeQEMU(t, greeting, func(string) []string { return nil }) // never answers qmp_capabilities
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Connect(ctx, path)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Connect canceled: %v", err)
	}
}

// Package logtest gives tests a *slog.Logger that writes into the test's
// log, so what a component logs shows next to the failure it explains.
package logtest

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Logger returns a logger at debug level that writes to t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer writes each line to t.Log.
func Writer(t testing.TB) io.Writer { return testWriter{t} }

// Buffer keeps what a component logs for a test to read while the
// component may still be writing (a supervisor, a child process's stderr).
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Package httpdeadline keeps slow clients from holding connections: every
// request gets a fixed time for its body to arrive and its answer to leave
// (Limits.Bound, applied by web to all requests), and requests that stream
// data — drive uploads and downloads — trade it for a progress deadline
// (Stream): the connection lives as long as data keeps moving at a minimum
// rate, however long the whole transfer takes, and a client that trickles
// a byte at a time is cut off.
package httpdeadline

import (
	"io"
	"net/http"
	"time"
)

// Limits are the deadlines of requests.
type Limits struct {
	// Body bounds the arrival of a request body (at most 64 KiB outside
	// streams) from the moment its headers were read.
	Body time.Duration
	// Write bounds the answer of a request that does not stream.
	Write time.Duration
	// A stream must move Progress bytes within every Window.
	Progress int
	Window   time.Duration
}

// Default are the limits Hearth serves with.
var Default = Limits{Body: 30 * time.Second, Write: 2 * time.Minute, Progress: 64 << 10, Window: 30 * time.Second}

// Bound sets the fixed deadlines on the connection of w. Errors (a writer
// that cannot take deadlines, as httptest's recorder) leave it as is.
func (l Limits) Bound(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	now := time.Now()
	rc.SetReadDeadline(now.Add(l.Body))
	rc.SetWriteDeadline(now.Add(l.Write))
}

// Stream is Default.Stream.
func Stream(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	return Default.Stream(w, r)
}

// Stream replaces the fixed deadlines of r by progress deadlines, for a
// handler that reads a large body or writes a large answer: it returns the
// writer and request to use instead of w and r. Data moving either way
// extends both deadlines, so the answer to a long upload is not late.
func (l Limits) Stream(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	m := &meter{limits: l, rc: http.NewResponseController(w)}
	m.extend()
	r2 := *r
	r2.Body = &progressBody{ReadCloser: r.Body, meter: m}
	return &progressWriter{ResponseWriter: w, meter: m}, &r2
}

// meter extends the deadlines by Window each time Progress more bytes have
// moved.
type meter struct {
	limits Limits
	rc     *http.ResponseController
	moved  int
}

func (m *meter) count(n int) {
	if m.moved += n; m.moved >= m.limits.Progress {
		m.moved = 0
		m.extend()
	}
}

func (m *meter) extend() {
	deadline := time.Now().Add(m.limits.Window)
	m.rc.SetReadDeadline(deadline)
	m.rc.SetWriteDeadline(deadline)
}

type progressBody struct {
	io.ReadCloser
	*meter
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.count(n)
	return n, err
}

type progressWriter struct {
	http.ResponseWriter
	*meter
}

func (w *progressWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.count(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer
// (Flush, deadlines) through the wrapper.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

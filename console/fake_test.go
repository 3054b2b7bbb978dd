package console

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeStream is a guest terminal test double: output is what the test emits;
// input is recorded and, with echo, printed back as a tty in cooked mode would.
type fakeStream struct {
	mu      sync.Mutex
	backlog []byte
	subs    map[chan []byte]struct{}
	input   bytes.Buffer
	echo    bool
	typed   chan struct{} // signalled on every Write
	sizes   []string      // the terminal sizes set, "COLSxROWS"
}

// Resize records the size, as a pty would take it.
func (f *fakeStream) Resize(cols, rows int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sizes = append(f.sizes, fmt.Sprintf("%dx%d", cols, rows))
	return nil
}

func (f *fakeStream) resizes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sizes...)
}

func newFakeStream() *fakeStream {
	return &fakeStream{subs: map[chan []byte]struct{}{}, typed: make(chan struct{}, 1)}
}

func (f *fakeStream) Subscribe() ([]byte, <-chan []byte, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan []byte, 256)
	f.subs[ch] = struct{}{}
	return append([]byte(nil), f.backlog...), ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *fakeStream) emit(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backlog = append(f.backlog, p...)
	if len(f.backlog) > 64<<10 {
		f.backlog = f.backlog[len(f.backlog)-64<<10:]
	}
	for ch := range f.subs {
		select {
		case ch <- append([]byte(nil), p...):
		default: // too far behind: dropped, as the contract says
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *fakeStream) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.input.Write(p)
	echo := f.echo
	f.mu.Unlock()
	if echo {
		f.emit(bytes.ReplaceAll(p, []byte("\r"), []byte("\r\n")))
	}
	select {
	case f.typed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (f *fakeStream) typedInput() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.input.String()
}

// waitInput waits until the guest received want.
func (f *fakeStream) waitInput(t testing.TB, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !bytes.Contains([]byte(f.typedInput()), []byte(want)) {
		select {
		case <-f.typed:
		case <-deadline:
			t.Fatalf("guest input %q, want it to contain %q", f.typedInput(), want)
		}
	}
}

// waitScreen waits until the console's terminal shows want.
func waitScreen(t testing.TB, c *serverConsole, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains([]byte(c.screen.text()), []byte(want)) {
		if time.Now().After(deadline) {
			t.Fatalf("screen:\n%s\nwant it to contain %q", c.screen.text(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSubscribed waits until the console listens, so that what the test
// emits next is live output rather than backlog.
func (f *fakeStream) waitSubscribed(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		n := len(f.subs)
		f.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the console never subscribed to the stream")
		}
	}
}

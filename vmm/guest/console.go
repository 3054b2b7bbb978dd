package guest

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ConsoleBacklog is how much of a guest's console output is kept.
const ConsoleBacklog = 64 << 10

// subscriberQueue is how many chunks a subscriber may fall behind before its
// channel is closed (it then resubscribes and gets the backlog).
const subscriberQueue = 256

// Console is one guest's terminal: output is read continuously from the
// guest (so the guest never blocks on a console nobody watches) into a ring
// of the last 64 KiB, fanned out to subscribers; Write types into the guest.
// Subscribe and Write make it a console.Stream.
type Console struct {
	mu     sync.Mutex
	ring   []byte // allocated on first output
	next   int    // where the next byte goes
	filled bool   // the ring has wrapped
	subs   map[chan []byte]struct{}

	inR *io.PipeReader // read by containerd's copy into the stdin FIFO
	inW *io.PipeWriter

	resize func(cols, rows int) error // the backend's, once the guest's terminal exists
}

// NewConsole returns a console for one guest; the backend feeds Output with
// what the guest prints and copies Input to the guest's terminal.
func NewConsole() *Console {
	r, w := io.Pipe()
	return &Console{subs: make(map[chan []byte]struct{}), inR: r, inW: w}
}

// Subscribe returns what the guest printed so far (up to 64 KiB) and a
// channel of later output. A subscriber that falls too far behind has its
// channel closed (it resubscribes). cancel ends it.
func (c *Console) Subscribe() (backlog []byte, updates <-chan []byte, cancel func()) {
	ch := make(chan []byte, subscriberQueue)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs[ch] = struct{}{}
	return c.backlogLocked(), ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[ch]; ok {
			delete(c.subs, ch)
			close(ch)
		}
	}
}

func (c *Console) backlogLocked() []byte {
	if !c.filled {
		return append([]byte(nil), c.ring[:c.next]...)
	}
	out := make([]byte, 0, len(c.ring))
	return append(append(out, c.ring[c.next:]...), c.ring[:c.next]...)
}

// Write sends bytes to the guest's terminal input. It blocks while the guest
// does not read its input and fails once the guest is gone.
func (c *Console) Write(p []byte) (int, error) {
	n, err := c.inW.Write(p)
	if errors.Is(err, io.ErrClosedPipe) {
		err = fmt.Errorf("console input: %w", ErrNotRunning)
	}
	return n, err
}

// SetResizer tells the console how the backend resizes the guest's
// terminal; Resize fails until it is set.
func (c *Console) SetResizer(resize func(cols, rows int) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resize = resize
}

// Resize sets the size of the guest's terminal (console.Resizer): the
// kernel tells the guest's foreground process (SIGWINCH), as a terminal
// window's resize does.
func (c *Console) Resize(cols, rows int) error {
	c.mu.Lock()
	resize := c.resize
	c.mu.Unlock()
	if resize == nil {
		return fmt.Errorf("resize console: %w", ErrNotRunning)
	}
	if cols <= 0 || rows <= 0 || cols > 0xffff || rows > 0xffff {
		return fmt.Errorf("resize console to %dx%d: %w", cols, rows, ErrInvalid)
	}
	return resize(cols, rows)
}

// Input is what is typed into the guest: the backend copies it to the
// guest's terminal.
func (c *Console) Input() io.Reader { return c.inR }

// Output is the writer the backend feeds with the guest's output.
func (c *Console) Output() io.Writer { return consoleOutput{c} }

type consoleOutput struct{ c *Console }

func (o consoleOutput) Write(p []byte) (int, error) {
	c := o.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		c.ring = make([]byte, ConsoleBacklog)
	}
	for rest := p; len(rest) > 0; {
		n := copy(c.ring[c.next:], rest)
		rest = rest[n:]
		c.next += n
		if c.next == len(c.ring) {
			c.next, c.filled = 0, true
		}
	}
	if len(c.subs) > 0 {
		chunk := append([]byte(nil), p...)
		for ch := range c.subs {
			select {
			case ch <- chunk:
			default:
				delete(c.subs, ch)
				close(ch)
			}
		}
	}
	return len(p), nil
}

// CloseInput makes pending and later Writes fail: the guest is gone or
// Hearth lets go of it.
func (c *Console) CloseInput() {
	c.inW.CloseWithError(io.ErrClosedPipe)
	c.inR.CloseWithError(io.ErrClosedPipe)
}

// Backlog is the last 64 KiB the guest printed (what Subscribe returns first).
func (c *Console) Backlog() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backlogLocked()
}

// End closes every subscriber's channel: the guest is gone.
func (c *Console) End() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		delete(c.subs, ch)
		close(ch)
	}
}

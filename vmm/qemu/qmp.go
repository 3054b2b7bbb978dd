package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// ErrClosed: the QMP connection is closed (Close was called, or QEMU ended).
var ErrClosed = errors.New("qmp connection closed")

// Client is a QMP connection to one running QEMU. Its methods are safe for
// concurrent use; QEMU answers commands one at a time.
type Client struct {
	mon *monitor
	log *slog.Logger

	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed chan struct{} // closed when QEMU's event stream ends
	once   sync.Once
}

// Option configures a Client.
type Option func(*Client)

// WithLogger is where dropped events are logged (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// Connect dials the QMP socket at path and does the capabilities
// handshake. ctx bounds the dial and the handshake.
func Connect(ctx context.Context, path string, opts ...Option) (*Client, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial: %w", err)
	}
	mon := &monitor{conn: conn}
	handshake := make(chan error, 1)
	go func() { handshake <- mon.Connect() }()
	select {
	case err = <-handshake:
	case <-ctx.Done():
		conn.Close() // ends the handshake
		<-handshake
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake on %s: %w", path, err)
	}
	c := &Client{mon: mon, log: slog.Default(), subs: map[chan Event]struct{}{}, closed: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	events, _ := mon.Events(ctx) // connected: never fails
	go c.fanOut(events)
	return c, nil
}

// Close ends the connection; QEMU keeps running. Event channels close.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() { err = c.mon.Disconnect() })
	if err != nil {
		return fmt.Errorf("qmp: close: %w", err)
	}
	return nil
}

// run executes a QMP command and decodes its "return" into ret (nil: ignored).
// A command abandoned by ctx still completes in the background (QEMU answers
// in order), its answer discarded; Close ends it.
func (c *Client) run(ctx context.Context, ret any, command string, args any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	raw, err := json.Marshal(qmp.Command{Execute: command, Args: args})
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	type answer struct {
		out []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		out, err := c.mon.Run(raw)
		done <- answer{out, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
	if a.err != nil {
		return fmt.Errorf("qmp %s: %w", command, a.err)
	}
	if ret == nil {
		return nil
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(a.out, &resp); err != nil {
		return fmt.Errorf("qmp %s: answer: %w", command, err)
	}
	if err := json.Unmarshal(resp.Return, ret); err != nil {
		return fmt.Errorf("qmp %s: answer: %w", command, err)
	}
	return nil
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// PowerDown presses the ACPI power button (system_powerdown). A guest
// without an ACPI handler (SeaBIOS with no OS, an OS that ignores it)
// keeps running: the caller kills it after its grace period.
func (c *Client) PowerDown(ctx context.Context) error {
	return c.run(ctx, nil, "system_powerdown", nil)
}

// Reset is a hard reset (system_reset): the guest reboots at once.
func (c *Client) Reset(ctx context.Context) error { return c.run(ctx, nil, "system_reset", nil) }

// Pause freezes the vCPUs (stop).
func (c *Client) Pause(ctx context.Context) error { return c.run(ctx, nil, "stop", nil) }

// Resume thaws the vCPUs (cont).
func (c *Client) Resume(ctx context.Context) error { return c.run(ctx, nil, "cont", nil) }

// Quit ends QEMU at once (quit), as a power cut would.
func (c *Client) Quit(ctx context.Context) error {
	err := c.run(ctx, nil, "quit", nil)
	if errors.Is(err, ErrClosed) { // QEMU may close the socket before its answer reaches us
		return nil
	}
	return err
}

// Status is QEMU's run state (query-status).
type Status struct {
	Running bool   `json:"running"`
	State   string `json:"status"` // running, paused, shutdown, internal-error, …
}

// Status queries the run state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.run(ctx, &s, "query-status", nil)
	return s, err
}

// BlockStats are one drive's counters since QEMU started.
type BlockStats struct {
	ReadBytes, WriteBytes       uint64
	ReadRequests, WriteRequests uint64
}

// BlockStats returns the counters of each drive Command attached, keyed by
// its EH device key (ide:0:1).
func (c *Client) BlockStats(ctx context.Context) (map[string]BlockStats, error) {
	var devices []struct {
		Device string `json:"device"`
		Stats  struct {
			RdBytes      uint64 `json:"rd_bytes"`
			WrBytes      uint64 `json:"wr_bytes"`
			RdOperations uint64 `json:"rd_operations"`
			WrOperations uint64 `json:"wr_operations"`
		} `json:"stats"`
	}
	if err := c.run(ctx, &devices, "query-blockstats", nil); err != nil {
		return nil, err
	}
	stats := map[string]BlockStats{}
	for _, d := range devices {
		if d.Device == "" { // a node without a drive (none Command makes)
			continue
		}
		s := d.Stats
		stats[deviceKey(d.Device)] = BlockStats{
			ReadBytes: s.RdBytes, WriteBytes: s.WrBytes, ReadRequests: s.RdOperations, WriteRequests: s.WrOperations,
		}
	}
	return stats, nil
}

// Event kinds Events delivers.
const (
	EventShutdown  = "SHUTDOWN"  // QEMU is powering off; QEMU exits next (no -no-shutdown)
	EventReset     = "RESET"     // the guest reset: its own reboot, or Reset
	EventPowerdown = "POWERDOWN" // the ACPI power button was pressed (PowerDown)
	EventStop      = "STOP"      // the vCPUs stopped (Pause)
	EventResume    = "RESUME"    // the vCPUs run again (Resume)
)

// Event is a QMP event that changes the VM's power state.
type Event struct {
	Kind string
	// Guest is true when the guest asked for it (SHUTDOWN, RESET): its own
	// poweroff or reboot, not Hearth's command.
	Guest bool
	// Reason is QEMU's cause of a SHUTDOWN or RESET: guest-shutdown,
	// guest-reset, host-qmp-quit, host-qmp-system-reset, host-signal, …
	Reason string
	Time   time.Time
}

// eventBuffer is how many events a slow subscriber may fall behind before
// events are dropped (and logged).
const eventBuffer = 32

// Events delivers the power-state events from now on until ctx ends or the
// connection closes (then the channel closes).
func (c *Client) Events(ctx context.Context) <-chan Event {
	ch := make(chan Event, eventBuffer)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		close(ch)
		return ch
	}
	c.subs[ch] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.closed:
			return // fanOut closes every subscriber
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[ch]; ok {
			delete(c.subs, ch)
			close(ch)
		}
	}()
	return ch
}

// fanOut reads every QMP event and passes the power-state ones to the
// subscribers; it never blocks on one (see Connect).
func (c *Client) fanOut(events <-chan qmp.Event) {
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		close(c.closed)
		for ch := range c.subs {
			close(ch)
		}
		clear(c.subs)
	}()
	for e := range events {
		ev, ok := powerEvent(e)
		if !ok {
			continue
		}
		c.mu.Lock()
		for ch := range c.subs {
			select {
			case ch <- ev:
			default:
				c.log.Warn("qmp event dropped: subscriber too slow", "event", ev.Kind)
			}
		}
		c.mu.Unlock()
	}
}

func powerEvent(e qmp.Event) (Event, bool) {
	switch e.Event {
	case EventShutdown, EventReset, EventPowerdown, EventStop, EventResume:
	default:
		return Event{}, false
	}
	ev := Event{Kind: e.Event, Time: time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000)}
	ev.Guest, _ = e.Data["guest"].(bool)
	ev.Reason, _ = e.Data["reason"].(string)
	return ev, true
}

package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/digitalocean/go-qemu/qmp"
)

// monitor is a qmp.Monitor over QEMU's QMP socket. It replaces go-qemu's
// qmp.SocketMonitor, which hands Run a slice of its scanner's buffer that
// the next line overwrites (a data race the race detector reports here;
// go-qemu issue 226, open) and takes an event that arrives during the
// handshake for the handshake's answer (go-qemu pull request 210, open).
type monitor struct {
	conn net.Conn

	mu      sync.Mutex // one command at a time: QEMU answers in order
	answers chan []byte
	events  chan qmp.Event
}

var _ qmp.Monitor = (*monitor)(nil)

// qmpError is QEMU's refusal of a command.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// message is any line QEMU sends: greeting, answer or event.
type message struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
}

// Connect reads QEMU's greeting, negotiates capabilities (none) and starts
// reading answers and events.
func (m *monitor) Connect() error {
	r := bufio.NewReader(m.conn)
	greeting, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	var g message
	if err := json.Unmarshal(greeting, &g); err != nil || g.QMP == nil {
		return fmt.Errorf("greeting %q is not QMP's", greeting)
	}
	if _, err := m.conn.Write([]byte(`{"execute":"qmp_capabilities"}` + "\n")); err != nil {
		return fmt.Errorf("qmp_capabilities: %w", err)
	}
	// Events may come before the answer: they are kept for the reader to
	// deliver first.
	var early []qmp.Event
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("qmp_capabilities: %w", err)
		}
		msg, event, err := decode(line)
		switch {
		case err != nil:
			return fmt.Errorf("qmp_capabilities: %w", err)
		case event != nil:
			early = append(early, *event)
			continue
		case msg.Error != nil:
			return fmt.Errorf("qmp_capabilities: QEMU refused: %s: %s", msg.Error.Class, msg.Error.Desc)
		}
		break
	}
	m.answers, m.events = make(chan []byte), make(chan qmp.Event)
	go m.read(r, early)
	return nil
}

// decode parses a line of QEMU's: an event, or an answer.
func decode(line []byte) (message, *qmp.Event, error) {
	var msg message
	if err := json.Unmarshal(line, &msg); err != nil {
		return msg, nil, fmt.Errorf("%q: %w", line, err)
	}
	if msg.Event == "" {
		return msg, nil, nil
	}
	var e qmp.Event
	if err := json.Unmarshal(line, &e); err != nil {
		return msg, nil, fmt.Errorf("%q: %w", line, err)
	}
	return msg, &e, nil
}

// read passes each line on as an answer or an event until the connection
// ends, then closes both channels. Events block it: Client always reads them.
func (m *monitor) read(r *bufio.Reader, early []qmp.Event) {
	defer close(m.events)
	defer close(m.answers)
	for _, e := range early {
		m.events <- e
	}
	for {
		line, err := r.ReadBytes('\n') // a new slice each time
		if err != nil {
			return
		}
		_, event, err := decode(line)
		switch {
		case err != nil: // not QMP: skipped
		case event != nil:
			m.events <- *event
		default:
			m.answers <- line
		}
	}
}

// Run sends one command and returns QEMU's answer line.
func (m *monitor) Run(command []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.conn.Write(append(slices.Clip(command), '\n')); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	answer, ok := <-m.answers
	if !ok {
		return nil, ErrClosed
	}
	msg, _, _ := decode(answer) // read checked it
	if msg.Error != nil {
		return nil, fmt.Errorf("QEMU refused: %s: %s", msg.Error.Class, msg.Error.Desc)
	}
	return answer, nil
}

// Events returns the connection's one event stream.
func (m *monitor) Events(context.Context) (<-chan qmp.Event, error) {
	if m.events == nil {
		return nil, errors.New("not connected")
	}
	return m.events, nil
}

// Disconnect closes the connection; QEMU keeps running.
func (m *monitor) Disconnect() error { return m.conn.Close() }

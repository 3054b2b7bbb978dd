package console

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"hearth/internal/ratelimit"
)

// Registry keeps the consoles of all running servers that have a VNC
// password, terminal (Attach) or relay (AttachRelay): it opens their TCP
// ports, applies password changes, mints and checks console tokens, and
// serves viewers that other transports (the web layer's websocket) bring
// in.
type Registry struct {
	listenIP   string // "" = no TCP ports, websocket only
	basePort   int    // first port tried; 0 = let the kernel choose
	portSpan   int
	cols       int
	rows       int
	log        *slog.Logger
	now        func() time.Time
	byAddr     *ratelimit.Failures // password guesses per source address
	byServer   *ratelimit.Failures // password guesses per server, from anywhere
	pending    chan struct{}       // one slot per handshake in progress
	pendingMu  sync.Mutex
	pendingBy  map[string]int // handshakes in progress per source address
	tokens     *tokens
	authMax    int
	authSpan   time.Duration
	maxPending int
	tokenTTL   time.Duration
	tokenKey   []byte
	consoleMu  sync.Mutex
	consoles   map[string]*serverConsole
	closed     bool
}

// Option configures a Registry.
type Option func(*Registry)

// WithListen sets the IP address that native VNC ports listen on
// (--vnc-listen). Without it consoles are reachable by websocket only.
func WithListen(ip string) Option { return func(m *Registry) { m.listenIP = ip } }

// WithBasePort sets the first port tried (default 5900); each console takes
// the lowest free port from there. 0 lets the kernel choose (tests).
func WithBasePort(port int) Option { return func(m *Registry) { m.basePort = port } }

// WithLogger sets where the manager reports problems.
func WithLogger(l *slog.Logger) Option { return func(m *Registry) { m.log = l } }

// WithClock sets the clock for rate limiting and tokens.
func WithClock(now func() time.Time) Option { return func(m *Registry) { m.now = now } }

// WithAuthLimit refuses a source address after max failed VNC
// authentications within window (default 5 per minute), counting the
// guesses in flight: parallel connections get no more challenges than that.
// A server refuses password guesses from anywhere after 4×max failures
// within window, which bounds guessing from many addresses at once.
func WithAuthLimit(max int, window time.Duration) Option {
	return func(m *Registry) { m.authMax, m.authSpan = max, window }
}

// WithMaxPending bounds the handshakes in progress on all consoles
// together (default 64), and from one source address to a quarter of that;
// a connection beyond either is closed at once.
func WithMaxPending(n int) Option { return func(m *Registry) { m.maxPending = n } }

// beginHandshake takes a handshake slot for addr, or says why not; the
// caller gives it back with endHandshake.
func (m *Registry) beginHandshake(addr string) error {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if perAddr := max(1, cap(m.pending)/4); m.pendingBy[addr] >= perAddr {
		return fmt.Errorf("%w: %d handshakes from %s already in progress", ErrBusy, perAddr, addr)
	}
	select {
	case m.pending <- struct{}{}:
	default:
		return fmt.Errorf("%w: %d handshakes already in progress, %s turned away", ErrBusy, cap(m.pending), addr)
	}
	m.pendingBy[addr]++
	return nil
}

func (m *Registry) endHandshake(addr string) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	<-m.pending
	if m.pendingBy[addr]--; m.pendingBy[addr] <= 0 {
		delete(m.pendingBy, addr)
	}
}

// WithTokenKey sets the HMAC key for console tokens (default: random per
// process, so tokens die with a restart, which their short life allows).
func WithTokenKey(key []byte) Option { return func(m *Registry) { m.tokenKey = key } }

// WithTokenTTL sets how long a console token is valid (default 30 s).
func WithTokenTTL(d time.Duration) Option { return func(m *Registry) { m.tokenTTL = d } }

// WithGeometry sets the guest terminal's size in cells (default 80×24, plus
// Hearth's status line).
func WithGeometry(cols, rows int) Option { return func(m *Registry) { m.cols, m.rows = cols, rows } }

// NewRegistry returns a Registry with no consoles.
func NewRegistry(opts ...Option) *Registry {
	m := &Registry{
		basePort: 5900, portSpan: 1000,
		cols: DefaultColumns, rows: DefaultRows,
		log: slog.New(slog.DiscardHandler), now: time.Now,
		authMax: 5, authSpan: time.Minute, maxPending: 64, tokenTTL: 30 * time.Second,
		consoles: map[string]*serverConsole{},
	}
	for _, o := range opts {
		o(m)
	}
	if m.tokenKey == nil {
		m.tokenKey = make([]byte, 32)
		rand.Read(m.tokenKey)
	}
	m.byAddr = ratelimit.New(m.authMax, m.authSpan, m.now)
	m.byServer = ratelimit.New(4*m.authMax, m.authSpan, m.now)
	m.pending, m.pendingBy = make(chan struct{}, m.maxPending), map[string]int{}
	m.tokens = &tokens{key: m.tokenKey, now: m.now, ttl: m.tokenTTL, used: map[[16]byte]time.Time{}}
	return m
}

// Attach opens the console of server (shown as name) on the guest terminal
// s, protected by password, and returns its native VNC endpoint. A console
// already attached for server is replaced (its viewers are cut).
func (m *Registry) Attach(server, name string, s Stream, password string) (Endpoint, error) {
	return m.attach(server, password, func() *serverConsole { return newConsole(m, server, name, s, password) })
}

// AttachRelay opens the console of server (shown as name) on a display
// that speaks RFB itself, such as a VM's QEMU (-vnc unix:PATH), which dial
// reaches; see Dialer. Viewers authenticate with password or a console
// token exactly as on a terminal's console, and each viewer then gets its
// own connection to the display. The rest of the API (Detach, SetPassword,
// Rename, Endpoint, Serve) treats both kinds of console alike.
func (m *Registry) AttachRelay(server, name string, dial Dialer, password string) (Endpoint, error) {
	return m.attach(server, password, func() *serverConsole { return newRelayConsole(m, server, name, dial, password) })
}

// attach replaces server's console with the one create makes, once the
// password is known to be usable, and opens its port.
func (m *Registry) attach(server, password string, create func() *serverConsole) (Endpoint, error) {
	if password == "" {
		return Endpoint{}, fmt.Errorf("%w: server %s has no VNC password", ErrNoConsole, server)
	}
	if err := CheckPassword(password); err != nil {
		return Endpoint{}, fmt.Errorf("server %s: %w", server, err)
	}
	m.Detach(server)
	c := create()
	if m.listenIP != "" {
		l, err := m.listen()
		if err != nil {
			c.close()
			return Endpoint{}, fmt.Errorf("console for server %s: %w", server, err)
		}
		addr := l.Addr().(*net.TCPAddr)
		c.listener = l
		c.endpoint = Endpoint{IP: m.listenIP, Port: addr.Port}
		c.wg.Add(1)
		go c.accept(l)
	}
	m.consoleMu.Lock()
	if m.closed {
		m.consoleMu.Unlock()
		c.close()
		return Endpoint{}, ErrClosed
	}
	replaced := m.consoles[server] // a concurrent Attach for the same server
	m.consoles[server] = c
	m.consoleMu.Unlock()
	if replaced != nil {
		replaced.close()
	}
	return c.endpoint, nil
}

// listen takes the lowest free port from the base port upward.
func (m *Registry) listen() (net.Listener, error) {
	if m.basePort == 0 {
		return net.Listen("tcp", net.JoinHostPort(m.listenIP, "0"))
	}
	var lastErr error
	for port := m.basePort; port < m.basePort+m.portSpan && port < 65536; port++ {
		l, err := net.Listen("tcp", net.JoinHostPort(m.listenIP, strconv.Itoa(port)))
		if err == nil {
			return l, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: %w", m.listenIP, err)
		}
	}
	return nil, fmt.Errorf("no free VNC port in %d–%d on %s: %w", m.basePort, m.basePort+m.portSpan-1, m.listenIP, lastErr)
}

func (m *Registry) console(server string) *serverConsole {
	m.consoleMu.Lock()
	defer m.consoleMu.Unlock()
	return m.consoles[server]
}

// SetPassword changes the VNC password of server's console; new
// connections need the new one at once, open ones stay. An empty password
// closes the console, as a server without a password has none.
func (m *Registry) SetPassword(server, password string) error {
	if password == "" {
		m.Detach(server)
		return nil
	}
	if err := CheckPassword(password); err != nil {
		return fmt.Errorf("server %s: %w", server, err)
	}
	c := m.console(server)
	if c == nil {
		return fmt.Errorf("%w: server %s", ErrNoConsole, server)
	}
	c.setPassword(password)
	return nil
}

// Rename changes the name shown in the desktop name and the status line.
func (m *Registry) Rename(server, name string) {
	if c := m.console(server); c != nil {
		c.rename(name)
	}
}

// Endpoint returns where server's native VNC port listens.
func (m *Registry) Endpoint(server string) (Endpoint, bool) {
	c := m.console(server)
	if c == nil {
		return Endpoint{}, false
	}
	return c.endpoint, true
}

// Detach closes server's console: its port closes and every viewer is cut.
// Call it when the server stops, or its owner is removed.
func (m *Registry) Detach(server string) {
	m.consoleMu.Lock()
	c := m.consoles[server]
	delete(m.consoles, server)
	m.consoleMu.Unlock()
	if c != nil {
		c.close()
	}
}

// Token mints a console token for user on server: valid once, within the
// token TTL, for that server and user only; it lets the user's viewer in
// without the VNC password (CheckToken checks it).
func (m *Registry) Token(server, user string) string { return m.tokens.mint(server, user) }

// Close detaches every console.
func (m *Registry) Close() error {
	m.consoleMu.Lock()
	m.closed = true
	all := m.consoles
	m.consoles = map[string]*serverConsole{}
	m.consoleMu.Unlock()
	for _, c := range all {
		c.close()
	}
	return nil
}

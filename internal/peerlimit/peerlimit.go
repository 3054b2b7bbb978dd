// Package peerlimit caps the connections one client address may hold open
// on a listener at once, so a single source (a slowloris, a runaway
// script) cannot take every connection slot of the port; connections past
// the cap are closed as soon as they are accepted.
package peerlimit

import (
	"log/slog"
	"net"
	"sync"
)

// Listener is a net.Listener that admits at most max connections per
// remote IP address at a time.
type Listener struct {
	net.Listener
	max    int
	log    *slog.Logger
	mu     sync.Mutex
	open   map[string]int
	warned map[string]bool // refused since its last connection closed: logged once
}

// Listen wraps inner; refusals are logged to log at Warn, once per
// address while it stays at the cap.
func Listen(inner net.Listener, max int, log *slog.Logger) *Listener {
	return &Listener{Listener: inner, max: max, log: log, open: map[string]int{}, warned: map[string]bool{}}
}

// Accept returns the next connection whose address is under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := Host(c.RemoteAddr().String())
		l.mu.Lock()
		admitted := l.open[host] < l.max
		if admitted {
			l.open[host]++
		}
		warn := !admitted && !l.warned[host]
		if warn {
			l.warned[host] = true
		}
		l.mu.Unlock()
		if !admitted {
			if warn {
				l.log.Warn("connections refused: too many open from one address", "remote", host, "max", l.max)
			}
			c.Close()
			continue
		}
		return &conn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.warned, host)
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// Host is the host part of a remote address ("host:port"): what a peer is
// known by here, and in the web layer's rate limits and logs.
func Host(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

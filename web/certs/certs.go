// Package certs gives Hearth's one port its TLS: the certificate — a pair the
// operator supplies (--tls-cert, --tls-key), or a self-signed ECDSA pair that
// Hearth makes, keeps in DATA/tls/ and renews before it expires (--tls auto) —
// and a listener that speaks TLS and answers plain HTTP sent to the same port
// with a redirect to https (see NewListener).
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrConfig marks a TLS configuration that cannot work (conflicting or
// incomplete flags, unreadable or mismatched certificate files).
var ErrConfig = errors.New("tls configuration")

// Config is what `hearth serve` knows about TLS: its flags, where DATA is,
// and the logger and clock to use.
type Config struct {
	// Mode is "" or "off" (plain HTTP unless CertFile/KeyFile are set) or
	// "auto" (a self-signed pair kept in DataDir/tls).
	Mode string
	// CertFile and KeyFile are the operator's own PEM pair. They are
	// re-read when their modification time changes, so a renewed
	// certificate is picked up without a restart.
	CertFile, KeyFile string
	// DataDir is Hearth's DATA directory; auto mode keeps its pair in
	// DataDir/tls/.
	DataDir string
	// Logger receives one line per certificate made, renewed or reloaded
	// (never a key). Nil discards them.
	Logger *slog.Logger
	// Now is the clock deciding expiry; nil means time.Now.
	Now func() time.Time
	// HostNames lists the names and addresses the self-signed certificate
	// must carry; nil means the host's name, localhost and the addresses of
	// its interfaces (except Hearth's own, named hearth*).
	HostNames func() []string
}

// RegisterFlags adds --tls, --tls-cert and --tls-key to fs, defaulting to the
// environment variables HEARTH_TLS, HEARTH_TLS_CERT and HEARTH_TLS_KEY.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "tls", os.Getenv("HEARTH_TLS"),
		"`auto`: serve HTTPS with a self-signed certificate kept in DATA/tls (env HEARTH_TLS)")
	fs.StringVar(&c.CertFile, "tls-cert", os.Getenv("HEARTH_TLS_CERT"),
		"serve HTTPS with this PEM certificate `file` (with --tls-key; env HEARTH_TLS_CERT)")
	fs.StringVar(&c.KeyFile, "tls-key", os.Getenv("HEARTH_TLS_KEY"),
		"PEM private key `file` of --tls-cert (env HEARTH_TLS_KEY)")
}

// Enabled reports whether the flags ask for HTTPS. It does not validate them;
// TLSConfig does.
func (c Config) Enabled() bool {
	return c.Mode == "auto" || c.CertFile != "" || c.KeyFile != ""
}

// TLSConfig checks the flags and returns the server configuration to serve
// with (through NewListener), or nil and no error when TLS is off. In auto
// mode it makes or loads the pair at once, so a bad DATA/tls fails the start
// instead of the first handshake. Errors wrap ErrConfig.
func (c Config) TLSConfig() (*tls.Config, error) {
	switch c.Mode {
	case "", "off":
	case "auto":
		if c.CertFile != "" || c.KeyFile != "" {
			return nil, fmt.Errorf("%w: --tls auto makes its own certificate; drop --tls-cert/--tls-key or --tls auto", ErrConfig)
		}
	default:
		return nil, fmt.Errorf("%w: --tls %q: want auto or off", ErrConfig, c.Mode)
	}
	if c.Mode == "off" && (c.CertFile != "" || c.KeyFile != "") {
		return nil, fmt.Errorf("%w: --tls off conflicts with --tls-cert/--tls-key", ErrConfig)
	}
	if !c.Enabled() {
		return nil, nil
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var source interface {
		certificate() (*tls.Certificate, error)
	}
	switch {
	case c.Mode == "auto":
		if c.DataDir == "" {
			return nil, fmt.Errorf("%w: --tls auto needs the data directory", ErrConfig)
		}
		if c.HostNames == nil {
			c.HostNames = HostNames
		}
		source = &selfSigned{dir: filepath.Join(c.DataDir, "tls"), now: c.Now, log: c.Logger, names: c.HostNames}
	case c.CertFile == "":
		return nil, fmt.Errorf("%w: --tls-key given without --tls-cert", ErrConfig)
	case c.KeyFile == "":
		return nil, fmt.Errorf("%w: --tls-cert given without --tls-key", ErrConfig)
	default:
		source = &filePair{certFile: c.CertFile, keyFile: c.KeyFile, now: c.Now, log: c.Logger}
	}
	if _, err := source.certificate(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// HTTP/1.1 only: the console websocket needs the Upgrade handshake,
		// which HTTP/2 does not carry for gorilla/websocket.
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return source.certificate()
		},
	}, nil
}

// filePair serves the operator's certificate, re-reading the files when they
// change (checked at most every recheck).
type filePair struct {
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	modTime   time.Time
	checkedAt time.Time
}

const recheck = 10 * time.Second

func (p *filePair) certificate() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.cert != nil && now.Sub(p.checkedAt) < recheck {
		return p.cert, nil
	}
	p.checkedAt = now
	modTime, err := newestModTime(p.certFile, p.keyFile)
	if err == nil && p.cert != nil && modTime.Equal(p.modTime) {
		return p.cert, nil
	}
	cert, err := loadPair(p.certFile, p.keyFile)
	if err != nil {
		if p.cert != nil {
			p.log.Warn("tls: keeping the loaded certificate", "err", err)
			return p.cert, nil
		}
		return nil, err
	}
	if p.cert != nil {
		p.log.Info("tls: reloaded the certificate", "file", p.certFile, "valid_until", cert.Leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if left := cert.Leaf.NotAfter.Sub(now); left < renewBefore {
		p.log.Warn("tls: the certificate expires soon; replace it", "file", p.certFile, "expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	p.cert, p.modTime = cert, modTime
	return cert, nil
}

func newestModTime(paths ...string) (time.Time, error) {
	var newest time.Time
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return newest, nil
}

// loadPair reads a PEM certificate and key, checks they belong together and
// fills Leaf.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s with key %s: %w", ErrConfig, certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: certificate %s: %w", ErrConfig, certFile, err)
		}
	}
	return &cert, nil
}

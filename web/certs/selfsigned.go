package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// validity of a self-signed certificate. Browsers ask the user to trust
	// it once per certificate, so it lives long; renewBefore keeps a running
	// Hearth from ever serving an expired one.
	validity    = 365 * 24 * time.Hour
	renewBefore = 30 * 24 * time.Hour

	certName = "cert.pem"
	keyName  = "key.pem"
)

// selfSigned keeps an ECDSA P-256 self-signed pair in dir, making it when it
// is missing, unreadable, (nearly) expired or no longer names the host.
type selfSigned struct {
	dir   string
	now   func() time.Time
	log   *slog.Logger
	names func() []string

	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *selfSigned) certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.cert.Leaf.NotAfter.Add(-renewBefore)) {
		return s.cert, nil
	}
	names := s.names()
	cert, err := loadPair(filepath.Join(s.dir, certName), filepath.Join(s.dir, keyName))
	reason := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "there was none"
	case err != nil:
		reason = err.Error()
	case now.After(cert.Leaf.NotAfter.Add(-renewBefore)):
		reason = "it expires " + cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
	default:
		if missing := missingNames(cert.Leaf, stableNames(names)); len(missing) > 0 {
			reason = "it does not name " + strings.Join(missing, ", ")
		}
	}
	if reason == "" {
		s.cert = cert
		return cert, nil
	}
	fresh, err := s.create(now, names)
	if err != nil {
		if s.cert != nil {
			s.log.Warn("tls: cannot renew the self-signed certificate, keeping the current one", "dir", s.dir, "err", err)
			return s.cert, nil
		}
		return nil, err
	}
	s.log.Info("tls: made a self-signed certificate", "dir", s.dir, "names", strings.Join(names, ","),
		"valid_until", fresh.Leaf.NotAfter.UTC().Format(time.DateOnly), "reason", reason)
	s.cert = fresh
	return fresh, nil
}

// create makes a new pair and replaces the files: the key first, then the
// certificate, each written to a temporary file and renamed, so a crash
// leaves either the old pair or a mismatch that the next start replaces.
func (s *selfSigned) create(now time.Time, names []string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls: generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tls: generating a serial number: %w", err)
	}
	host := "hearth"
	if len(names) > 0 {
		host = names[0]
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"Hearth self-signed"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is a little behind
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, name)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tls: signing the certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: encoding the key: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tls: parsing the new certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// writeFileAtomic writes data to path with mode 0600 through a synced
// temporary file in the same directory.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already makes the file 0600; the chmod keeps that true
	// whatever the umask does in the future.
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("tls: writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("tls: writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("tls: writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// stableNames leaves out IPv6 addresses: hosts with privacy extensions
// rotate theirs daily, and a certificate made anew at every restart would
// have browsers ask for trust again each time. They are still named in each
// certificate made.
func stableNames(names []string) []string {
	var stable []string
	for _, name := range names {
		if ip := net.ParseIP(name); ip == nil || ip.To4() != nil {
			stable = append(stable, name)
		}
	}
	return stable
}

// missingNames lists the names the certificate does not carry.
func missingNames(cert *x509.Certificate, names []string) []string {
	var missing []string
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				missing = append(missing, name)
			}
		} else if !slices.Contains(cert.DNSNames, name) {
			missing = append(missing, name)
		}
	}
	return missing
}

// HostNames returns what a self-signed certificate for this host should
// name: the host name, localhost, and the addresses of the interfaces that
// are up (loopback included, link-local and Hearth's own hearth* devices
// left out, since guests' bridges come and go).
func HostNames() []string {
	var names []string
	if host, err := os.Hostname(); err == nil && host != "" && host != "localhost" {
		names = append(names, host)
	}
	names = append(names, "localhost")
	ifaces, err := net.Interfaces()
	if err != nil {
		return append(names, "127.0.0.1", "::1")
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || strings.HasPrefix(iface.Name, "hearth") {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, addr := range addrs {
			ipnet, ok := addr.(*net.IPNet)
			if !ok || ipnet.IP.IsLinkLocalUnicast() {
				continue
			}
			if ip := ipnet.IP.String(); !slices.Contains(names, ip) {
				names = append(names, ip)
			}
		}
	}
	return names
}

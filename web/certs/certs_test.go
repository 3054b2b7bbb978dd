package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testClock is a settable clock for expiry decisions.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// recorder is a logger that appends each line to lines.
func recorder(lines *[]string) *slog.Logger {
	return slog.New(slog.NewTextHandler(lineWriter{lines}, nil))
}

type lineWriter struct{ lines *[]string }

func (w lineWriter) Write(p []byte) (int, error) {
	*w.lines = append(*w.lines, string(p))
	return len(p), nil
}

func autoConfig(t *testing.T, dir string, clock *testClock, names ...string) (Config, *[]string) {
	t.Helper()
	var logged []string
	if len(names) == 0 {
		names = []string{"hearth-test", "localhost", "127.0.0.1", "::1"}
	}
	return Config{
		Mode:      "auto",
		DataDir:   dir,
		Now:       clock.now,
		Logger:    recorder(&logged),
		HostNames: func() []string { return names },
	}, &logged
}

func serverCert(t *testing.T, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return cert.Leaf
}

func TestAutoMakesKeepsAndProtectsThePair(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, logged := autoConfig(t, dir, clock)
	cfg, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf := serverCert(t, cfg)
	if len(*logged) != 1 || !strings.Contains((*logged)[0], "made a self-signed certificate") {
		t.Errorf("log = %q, want one line about the new certificate", *logged)
	}
	for _, name := range []string{"hearth-test", "localhost"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not name %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Errorf("certificate does not name %s: %v", ip, err)
		}
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	if !leaf.NotAfter.After(clock.t.Add(300 * 24 * time.Hour)) {
		t.Errorf("valid until %v only", leaf.NotAfter)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "tls"):             0o700 | os.ModeDir,
		filepath.Join(dir, "tls", "cert.pem"): 0o600,
		filepath.Join(dir, "tls", "key.pem"):  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tls"))
	if len(entries) != 2 {
		t.Errorf("DATA/tls holds %d files, want cert.pem and key.pem only", len(entries))
	}

	// A second start keeps the same certificate: browsers trusted it once.
	c2, logged2 := autoConfig(t, dir, clock)
	cfg2, err := c2.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if again := serverCert(t, cfg2); again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("restart made a new certificate (serial %v, was %v)", again.SerialNumber, leaf.SerialNumber)
	}
	if len(*logged2) != 0 {
		t.Errorf("restart logged %q", *logged2)
	}
}

func TestAutoRenewsBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, logged := autoConfig(t, dir, clock)
	cfg, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	first := serverCert(t, cfg)

	clock.t = first.NotAfter.Add(-31 * 24 * time.Hour)
	if got := serverCert(t, cfg); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("renewed 31 days before expiry; want the same certificate until 30 days before")
	}
	clock.t = first.NotAfter.Add(-29 * 24 * time.Hour)
	renewed := serverCert(t, cfg)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("still serving the certificate that expires %v at %v", first.NotAfter, clock.t)
	}
	if !renewed.NotAfter.After(clock.t.Add(300 * 24 * time.Hour)) {
		t.Errorf("renewed certificate valid until %v only", renewed.NotAfter)
	}
	if last := (*logged)[len(*logged)-1]; !strings.Contains(last, "expires") {
		t.Errorf("renewal log %q does not say why", last)
	}
	// The renewed pair is what the files hold, so a restart keeps it.
	onDisk, err := loadPair(filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Leaf.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("DATA/tls still holds the old certificate")
	}
}

func TestAutoReplacesBrokenOrOutdatedPair(t *testing.T) {
	clock := &testClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		names  []string
		reason string
	}{
		{"garbage certificate", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tls", "cert.pem"), []byte("not a certificate"), 0o600)
		}, nil, "cert.pem"},
		{"key of another pair", func(t *testing.T, dir string) {
			other := t.TempDir()
			oc, _ := autoConfig(t, other, clock)
			if _, err := oc.TLSConfig(); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(other, "tls", "key.pem"))
			os.WriteFile(filepath.Join(dir, "tls", "key.pem"), data, 0o600)
		}, nil, "key.pem"},
		{"key missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "tls", "key.pem"))
		}, nil, "there was none"},
		{"host got a new address", func(t *testing.T, dir string) {}, []string{"hearth-test", "localhost", "192.0.2.7"}, "does not name 192.0.2.7"},
		{"host was renamed", func(t *testing.T, dir string) {}, []string{"hearth-renamed", "localhost"}, "does not name hearth-renamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := autoConfig(t, dir, clock)
			cfg, err := c.TLSConfig()
			if err != nil {
				t.Fatal(err)
			}
			before := serverCert(t, cfg)
			tc.damage(t, dir)

			c2, logged := autoConfig(t, dir, clock, tc.names...)
			cfg2, err := c2.TLSConfig()
			if err != nil {
				t.Fatalf("start after %s: %v", tc.name, err)
			}
			after := serverCert(t, cfg2)
			if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
				t.Fatalf("kept the old certificate")
			}
			if len(*logged) != 1 || !strings.Contains((*logged)[0], tc.reason) {
				t.Errorf("log = %q, want the reason %q", *logged, tc.reason)
			}
			for _, name := range tc.names {
				if err := after.VerifyHostname(name); err != nil {
					t.Errorf("new certificate does not name %s", name)
				}
			}
		})
	}
}

func TestAutoKeepsThePairWhenOnlyIPv6AddressesChange(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, _ := autoConfig(t, dir, clock, "hearth-test", "192.0.2.1", "2001:db8::1")
	cfg, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	first := serverCert(t, cfg)
	if err := first.VerifyHostname("2001:db8::1"); err != nil {
		t.Errorf("IPv6 address not named: %v", err)
	}
	c2, logged := autoConfig(t, dir, clock, "hearth-test", "192.0.2.1", "2001:db8::2")
	cfg2, err := c2.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if again := serverCert(t, cfg2); again.SerialNumber.Cmp(first.SerialNumber) != 0 || len(*logged) != 0 {
		t.Errorf("a rotated IPv6 address replaced the certificate (log %q)", *logged)
	}
}

func TestOperatorPairIsServedAndReloaded(t *testing.T) {
	clock := &testClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	// Make two pairs with the self-signed code, then use them as the
	// operator's own files.
	pairA, pairB := t.TempDir(), t.TempDir()
	for _, dir := range []string{pairA, pairB} {
		c, _ := autoConfig(t, dir, clock)
		if _, err := c.TLSConfig(); err != nil {
			t.Fatal(err)
		}
	}
	live := t.TempDir()
	certFile, keyFile := filepath.Join(live, "server.crt"), filepath.Join(live, "server.key")
	install := func(from string, mtime time.Time) {
		for src, dst := range map[string]string{"cert.pem": certFile, "key.pem": keyFile} {
			data, err := os.ReadFile(filepath.Join(from, "tls", src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(dst, mtime, mtime)
		}
	}
	install(pairA, time.Unix(1_700_000_000, 0))
	var logged []string
	cfg, err := Config{CertFile: certFile, KeyFile: keyFile, Now: clock.now,
		Logger: recorder(&logged)}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	first := serverCert(t, cfg)
	wantA, _ := loadPair(filepath.Join(pairA, "tls", "cert.pem"), filepath.Join(pairA, "tls", "key.pem"))
	if first.SerialNumber.Cmp(wantA.Leaf.SerialNumber) != 0 {
		t.Fatalf("not serving the operator's certificate")
	}

	install(pairB, time.Unix(1_700_000_100, 0))
	if got := serverCert(t, cfg); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("re-read the files within %v", recheck)
	}
	clock.t = clock.t.Add(recheck + time.Second)
	wantB, _ := loadPair(filepath.Join(pairB, "tls", "cert.pem"), filepath.Join(pairB, "tls", "key.pem"))
	if got := serverCert(t, cfg); got.SerialNumber.Cmp(wantB.Leaf.SerialNumber) != 0 {
		t.Errorf("did not pick up the replaced certificate")
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "reloaded") || !strings.Contains(logged[0], "file="+certFile) {
		t.Errorf("log = %q", logged)
	}

	// A broken replacement keeps the working pair and says so.
	os.WriteFile(keyFile, []byte("broken"), 0o600)
	os.Chtimes(keyFile, time.Unix(1_700_000_200, 0), time.Unix(1_700_000_200, 0))
	clock.t = clock.t.Add(recheck + time.Second)
	if got := serverCert(t, cfg); got.SerialNumber.Cmp(wantB.Leaf.SerialNumber) != 0 {
		t.Errorf("dropped the working certificate for a broken one")
	}
	if last := logged[len(logged)-1]; !strings.Contains(last, "keeping the loaded certificate") || !strings.Contains(last, keyFile) {
		t.Errorf("log = %q, want a line naming %s", last, keyFile)
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		config Config
		want   string
	}{
		{Config{Mode: "yes"}, `--tls "yes"`},
		{Config{Mode: "auto", CertFile: "a.pem", KeyFile: "b.pem", DataDir: dir}, "--tls auto"},
		{Config{Mode: "off", CertFile: "a.pem"}, "--tls off"},
		{Config{CertFile: "a.pem"}, "--tls-cert given without --tls-key"},
		{Config{KeyFile: "b.pem"}, "--tls-key given without --tls-cert"},
		{Config{Mode: "auto"}, "data directory"},
		{Config{CertFile: missing, KeyFile: missing}, missing},
	} {
		cfg, err := tc.config.TLSConfig()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want ErrConfig naming %q", tc.config, err, tc.want)
		}
		if cfg != nil {
			t.Errorf("%+v: returned a configuration with the error", tc.config)
		}
	}
	for _, off := range []Config{{}, {Mode: "off"}} {
		if cfg, err := off.TLSConfig(); cfg != nil || err != nil {
			t.Errorf("%+v: (%v, %v), want TLS off", off, cfg, err)
		}
	}
}

func TestHostNamesNameThisHost(t *testing.T) {
	names := HostNames()
	host, _ := os.Hostname()
	for _, want := range []string{host, "localhost", "127.0.0.1"} {
		if !slices.Contains(names, want) {
			t.Errorf("HostNames() = %q, missing %q", names, want)
		}
	}
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil && ip.IsLinkLocalUnicast() {
			t.Errorf("HostNames() has link-local %s", name)
		}
	}
}

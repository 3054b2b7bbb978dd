package certs

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startHTTPS serves a handler that reports r.TLS over NewListener on a free
// loopback port, and returns its address and a client trusting its
// self-signed certificate.
func startHTTPS(t *testing.T) (addr string, client *http.Client) {
	t.Helper()
	c, _ := autoConfig(t, t.TempDir(), &testClock{time.Now()})
	cfg, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, cfg)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "request without TLS state", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "secure "+r.URL.RequestURI())
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})

	pool := x509.NewCertPool()
	pool.AddCert(serverCert(t, cfg))
	client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   10 * time.Second,
	}
	t.Cleanup(client.CloseIdleConnections)
	return inner.Addr().String(), client
}

func TestListenerServesTLS(t *testing.T) {
	addr, client := startHTTPS(t)
	resp, err := client.Get("https://" + addr + "/health?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "secure /health?x=1" {
		t.Fatalf("%s: %q", resp.Status, body)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("want HTTP/1.1 over TLS (websockets need it), got %+v", resp.TLS)
	}
}

func TestListenerRedirectsPlainHTTP(t *testing.T) {
	addr, _ := startHTTPS(t)
	plain := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, "http://"+addr+"/servers/list?a=b%20c", strings.NewReader("name web\n"))
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "https://" + addr + "/servers/list?a=b%20c"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s: %s to %q, want 308 to %q", method, resp.Status, resp.Header.Get("Location"), want)
		}
		if !strings.Contains(string(body), "HTTPS only") {
			t.Errorf("%s: body %q does not explain", method, body)
		}
	}
}

func TestListenerRefusesWhatIsNotHTTP(t *testing.T) {
	addr, _ := startHTTPS(t)
	for name, request := range map[string]string{
		"binary":           "\x00\x01\x02garbage\r\n\r\n",
		"host with a path": "GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n",
		"no host":          "GET / HTTP/1.0\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS only") {
			t.Errorf("%s: %s %q, want 400 explaining HTTPS", name, resp.Status, body)
		}
	}
}

func TestListenerIsNotBlockedBySilentClients(t *testing.T) {
	addr, client := startHTTPS(t)
	for range 3 {
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("a TLS client waited behind silent connections: %v", err)
	}
	resp.Body.Close()
}

func TestListenerCloseEndsAccept(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, &tls.Config{})
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepted <- err
	}()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := net.Dial("tcp", inner.Addr().String()); err == nil {
		t.Errorf("the inner listener still accepts after Close")
	}
}

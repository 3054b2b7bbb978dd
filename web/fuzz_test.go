package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hearth/storage"
	"hearth/web/api"
)

// FuzzAPI sends arbitrary methods, paths, bodies and encodings through the
// whole handler (routing, path arguments, body parsing, gunzip, the
// operations) as an authenticated user. Whatever comes in, the answer is a
// known status; errors carry their X-Elastic-Error word and a one-line body;
// JSON answers are valid JSON.
func FuzzAPI(f *testing.F) {
	store, err := storage.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	u, secret, err := store.CreateUser(ctx, "fuzz", false)
	if err != nil {
		f.Fatal(err)
	}
	d, _ := store.CreateDrive(ctx, storage.Drive{Owner: u.ID, Name: "d", Size: 1 << 20})
	srv, _ := store.CreateServer(ctx, u.ID, map[string]string{"name": "s", "cpu": "1000", "mem": "512"})
	h := New(Config{API: api.New(store)})

	for _, seed := range []struct {
		method, path, body string
		gzip, json         bool
	}{
		{"POST", "/drives/create", "name x\nsize 1M", false, false},
		{"POST", "/drives/create", `{"name":"x","size":1024}`, false, true},
		{"POST", "/drives/" + d.ID + "/set", "size 2M\nname y", false, false},
		{"POST", "/drives/" + d.ID + "/write/512", "hello", false, false},
		{"POST", "/drives/" + d.ID + "/write", string(gz([]byte("zipped"))), true, false},
		{"GET", "/drives/" + d.ID + "/read/1K/4K", "", false, false},
		{"POST", "/drives/" + d.ID + "/image/" + d.ID + "/gunzip", "", false, false},
		{"POST", "/servers/create/stopped", "name s\ncpu 1000\nmem 512\nide:0:0 " + d.ID, false, true},
		{"POST", "/servers/" + srv.ID + "/set", "smp 2\nvnc:password abc", false, false},
		{"GET", "//servers/info/full", "", false, true},
		{"GET", "/resources/ip/create", "", false, false},
		{"POST", "/resources/vlan/create", `{"name":"v"}`, false, false},
		{"GET", "/resources/ip/10.73.0.2/info", "", false, false},
		{"POST", "/servers/" + srv.ID + "/destroy", "", false, false},
	} {
		f.Add(seed.method, seed.path, seed.body, seed.gzip, seed.json)
	}
	f.Fuzz(func(t *testing.T, method, path, body string, gzipped, wantJSON bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://hearth.test/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path = path
		req.SetBasicAuth(u.ID, secret)
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if wantJSON {
			req.Header.Set("Accept", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 204:
			if wantJSON && w.Header().Get("Content-Type") == "application/json" && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %q: invalid JSON %q", method, path, w.Body.String())
			}
		case 400, 401, 404, 405, 409, 500, 507:
			if w.Header().Get("X-Elastic-Error") == "" {
				t.Fatalf("%s %q: %d without X-Elastic-Error", method, path, w.Code)
			}
			if b := strings.TrimSuffix(w.Body.String(), "\n"); b == "" || strings.Contains(b, "\n") {
				t.Fatalf("%s %q: error body %q is not one line", method, path, w.Body.String())
			}
		default:
			t.Fatalf("%s %q: unexpected status %d %q", method, path, w.Code, w.Body.String())
		}
	})
}

// FuzzAuth sends arbitrary credentials, browser headers and paths through
// the whole handler, console websocket path included: whatever comes in,
// the answer is a known status, never a 5xx, never a server's data without
// the right secret, and never the secret itself.
func FuzzAuth(f *testing.F) {
	store, err := storage.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	u, secret, err := store.CreateUser(context.Background(), "fuzz", false)
	if err != nil {
		f.Fatal(err)
	}
	h := New(Config{API: api.New(store), Console: &recordingConsole{}})
	for _, seed := range []struct{ path, authorization, origin, site string }{
		{"/servers/list", "Basic " + basic(u.ID, secret), "", ""},
		{"/drives/info", "Basic " + basic("fuzz", "wrong"), "", ""},
		{"/resources/ip/create", "Basic " + basic(u.ID, secret), "https://evil.example", "cross-site"},
		{"/servers/x/vnc", "Basic " + basic(u.ID, secret), "http://hearth.test", "same-origin"},
		{"/servers/x/vnc?token=abc", "", "", ""},
		{"/drives/list", "Bearer abc", "null", "same-site"},
		{"/drives/list", "Basic !!!", "", "none"},
		{"/health", "", "", ""},
	} {
		f.Add(seed.path, seed.authorization, seed.origin, seed.site)
	}
	f.Fuzz(func(t *testing.T, path, authorization, origin, site string) {
		req, err := http.NewRequest("GET", "http://hearth.test/", http.NoBody)
		if err != nil {
			return
		}
		if p, q, ok := strings.Cut(path, "?"); ok {
			req.URL.Path, req.URL.RawQuery = "/"+strings.TrimPrefix(p, "/"), q
		} else {
			req.URL.Path = "/" + strings.TrimPrefix(path, "/")
		}
		for k, v := range map[string]string{"Authorization": authorization, "Origin": origin, "Sec-Fetch-Site": site} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 || w.Code < 200 {
			t.Fatalf("GET %q (Authorization %q, Origin %q, Sec-Fetch-Site %q): status %d %q", path, authorization, origin, site, w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), secret) {
			t.Fatalf("GET %q: the answer holds the user's secret", path)
		}
		if w.Code == 200 && !strings.Contains(authorization, basic(u.ID, secret)) && !strings.Contains(authorization, basic("fuzz", secret)) &&
			req.URL.Path != "/health" && !strings.HasPrefix(req.URL.Path, "/static") {
			if strings.HasPrefix(strings.TrimLeft(req.URL.Path, "/"), "servers") || strings.HasPrefix(strings.TrimLeft(req.URL.Path, "/"), "drives") {
				t.Fatalf("GET %q answered 200 without the right secret (Authorization %q)", path, authorization)
			}
		}
	})
}

func basic(login, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(login + ":" + secret))
}

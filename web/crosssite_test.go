package web

import (
	"net/http"
	"strings"
	"testing"
)

// A page on another site cannot drive the API with the browser's cached
// credentials, by script or by an <img> tag, while API clients (no Origin,
// no Fetch Metadata) and the browser's own same-origin requests work.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	e := newEnv(t)
	u := e.user("alice", false)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers []string
	}{
		{"script POST from another site", "POST", "/resources/ip/create", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"POST with a foreign Origin (no Fetch Metadata)", "POST", "/drives/create", []string{"Origin", "https://evil.example"}},
		{"img tag GET from another site", "GET", "/resources/ip/create", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "image"}},
		{"sibling subdomain", "GET", "/drives/list", []string{"Sec-Fetch-Site", "same-site"}},
		{"Origin null (sandboxed frame)", "POST", "/drives/create", []string{"Origin", "null"}},
	} {
		r := u.do(tc.method, tc.path, strings.NewReader("name x\nsize 1M\n"), tc.headers...)
		r.expectError(t, http.StatusForbidden, "auth", "refused")
		if r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: a 403 asks for credentials", tc.name)
		}
	}
	if ids := u.get("/resources/ip/list").expect(t, 200).body; ids != "" {
		t.Fatalf("a refused request created something:\n%s", ids)
	}
	// An API client (CloudSigma's dialect creates and destroys by GET) and
	// the browser's own pages keep working.
	u.get("/resources/ip/create").expect(t, 200)
	u.do("POST", "/drives/create", strings.NewReader("name mine\nsize 1M\n"),
		"Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin", "Host", host).expect(t, 200)
	u.do("GET", "/drives/list", nil, "Sec-Fetch-Site", "none").expect(t, 200)
}

// A browser never gets a Basic challenge from the API, so it never prompts
// for and caches credentials; API clients still get one.
func TestBrowsersGetNoCredentialsPrompt(t *testing.T) {
	e := newEnv(t)
	anon := &client{t: t, base: e.srv.URL}
	if r := anon.get("/drives/list"); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("an API client without credentials: %d, challenge %q; want 401 with a challenge", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := anon.do("GET", "/drives/list", nil, "Sec-Fetch-Site", "same-origin"); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("a browser's script without credentials: %d, challenge %q; want 401 without one", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
}

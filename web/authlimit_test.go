package web

import (
	"net/http"
	"strconv"
	"testing"

	"hearth/internal/ratelimit"
)

// Wrong Basic secrets are limited per address and user: the sixth try is
// 429 with Retry-After, the right secret too until the window passes, and
// another user behind the same address is not affected.
func TestBasicAuthFailuresAreLimited(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice", false), e.user("bob", false)
	wrong := *alice
	wrong.secret = "not-" + alice.secret
	for i := range ratelimit.LoginMaxFailures {
		if r := wrong.get("/drives/list"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d: %d, want 401", i, r.StatusCode)
		}
	}
	r := alice.get("/drives/list")
	r.expectError(t, http.StatusTooManyRequests, "auth", "too many failed authentications")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s <= 0 || r.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("429: Retry-After %q, WWW-Authenticate %q; want seconds and no challenge", r.Header.Get("Retry-After"), r.Header.Get("WWW-Authenticate"))
	}
	bob.get("/drives/list").expect(t, http.StatusOK)
}

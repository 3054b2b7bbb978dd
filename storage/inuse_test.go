package storage

import "testing"

// TestInUseText: the refusal names the drive and the running servers of the
// user asking, says what to do, and never names another user's server.
func TestInUseText(t *testing.T) {
	for _, tc := range []struct {
		own    []string
		others int
		want   string
	}{
		{[]string{"web1"}, 0, "web1 boot is attached to running server web1 — stop web1 first"},
		{[]string{"a", "b"}, 0, "web1 boot is attached to running servers a, b — stop them first"},
		{[]string{"a"}, 2, "web1 boot is attached to running server a and to a running server of another user"},
		{nil, 1, "web1 boot is attached to a running server of another user"},
		{nil, 0, "web1 boot is attached to a running server"},
	} {
		if got := inUseText("web1 boot", tc.own, tc.others); got != tc.want {
			t.Errorf("%v %d: %q, want %q", tc.own, tc.others, got, tc.want)
		}
	}
}

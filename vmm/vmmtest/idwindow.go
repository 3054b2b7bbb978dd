package vmmtest

import (
	"fmt"
	"net"
	"testing"
)

// IDWindow claims, for the test's life, a window of host ids (an index
// from 1 for containerd.IDWindowBase) that no other test on the host holds
// meanwhile, whatever process runs it: each test Host is an instance of its
// own, and guests of two instances may not share host ids. The claim is an
// abstract unix socket, gone with the test process however it ends.
func IDWindow(t testing.TB, windows int) int {
	t.Helper()
	for w := 1; w < windows; w++ {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: fmt.Sprintf("@hearth-test/idwindow/%d", w), Net: "unixgram"})
		if err != nil {
			continue
		}
		t.Cleanup(func() { c.Close() })
		return w
	}
	t.Fatal("every window of host ids is held by another test")
	return 0
}

package ehkeys

import (
	"strings"
	"syscall"
	"testing"
)

func TestShutdownSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"SIGRTMIN+4": 38, "sigrtmin+3": 37, "RTMIN": 34, "SIGRTMAX": 64, "SIGRTMAX-2": 62,
		"SIGPWR": syscall.SIGPWR, "pwr": syscall.SIGPWR, "SIGUSR2": syscall.SIGUSR2, "SIGTERM": syscall.SIGTERM,
		"38": 38, " 15 ": 15, "SIGINT": syscall.SIGINT,
	} {
		got, err := ShutdownSignal(in)
		if err != nil || got != want {
			t.Errorf("ShutdownSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, err := ShutdownSignal(SignalName(got)); err != nil || back != got {
			t.Errorf("SignalName(%d) = %q reads back as %d, %v", got, SignalName(got), back, err)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGFOO", "SIGRTMIN-1", "SIGRTMIN+31", "SIGRTMAX+1", "SIGRTMIN+x", "SIGKILL", "9", "SIGSTOP"} {
		if got, err := ShutdownSignal(in); err == nil {
			t.Errorf("ShutdownSignal(%q) = %d, want an error", in, got)
		}
	}
	if got := SignalName(38); got != "SIGRTMIN+4" {
		t.Errorf("SignalName(38) = %q", got)
	}
	if _, err := ShutdownSignal("SIGFOO"); err == nil || !strings.Contains(err.Error(), "SIGFOO") {
		t.Errorf("error does not name the value: %v", err)
	}
}

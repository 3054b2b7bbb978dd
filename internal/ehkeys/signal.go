package ehkeys

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signals as glibc numbers them (it keeps the kernel's 32 and 33
// for itself): SIGRTMIN+4 is 38, systemd's power-off request.
const (
	SIGRTMIN syscall.Signal = 34
	SIGRTMAX syscall.Signal = 64
)

// ShutdownSignal parses the server key shutdown:signal: a signal name
// (SIGPWR, PWR, SIGRTMIN+4, SIGRTMAX-2; any case) or number, the power-off
// request Hearth sends the guest's init instead of the one it detected.
// SIGKILL and SIGSTOP are refused: neither asks the guest anything.
func ShutdownSignal(v string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(v))
	sig, err := parseSignal(name)
	if err != nil {
		return 0, err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		return 0, fmt.Errorf("%s asks the guest nothing (stop kills a guest at once)", SignalName(sig))
	}
	return sig, nil
}

func parseSignal(name string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 1 || n > int(SIGRTMAX) {
			return 0, fmt.Errorf("signal %d: want 1 to %d", n, SIGRTMAX)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for base, sign := range map[string]int{"SIGRTMIN": 1, "SIGRTMAX": -1} {
		rest, ok := strings.CutPrefix(name, base)
		if !ok {
			continue
		}
		offset := 0
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil || (sign > 0) != (rest[0] == '+') || n*sign < 0 {
				return 0, fmt.Errorf("%q: want %s%s N", name, base, map[int]string{1: "+", -1: "-"}[sign])
			}
			offset = n
		}
		sig := SIGRTMIN + syscall.Signal(offset)
		if sign < 0 {
			sig = SIGRTMAX + syscall.Signal(offset)
		}
		if sig < SIGRTMIN || sig > SIGRTMAX {
			return 0, fmt.Errorf("%q is beyond the real-time signals (%d to %d)", name, SIGRTMIN, SIGRTMAX)
		}
		return sig, nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%q is no signal (e.g. SIGRTMIN+4, SIGPWR, SIGUSR2, SIGTERM or a number)", name)
}

// SignalName names sig as ShutdownSignal reads it: SIGPWR, SIGRTMIN+4.
func SignalName(sig syscall.Signal) string {
	if sig >= SIGRTMIN && sig <= SIGRTMAX {
		return fmt.Sprintf("SIGRTMIN+%d", sig-SIGRTMIN)
	}
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return strconv.Itoa(int(sig))
}

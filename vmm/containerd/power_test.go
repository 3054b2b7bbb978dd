package containerd

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestInitKind reads /sbin/init of root filesystems as distributions lay
// them out: merged /usr with absolute and relative links, busybox as a link
// and as a copy, sysvinit's binary, a script, none.
func TestInitKind(t *testing.T) {
	outside := t.TempDir() // a host directory a guest's absolute link must not reach
	write(t, filepath.Join(outside, "init"), "\x7fELF BusyBox v1.36 ")
	for _, c := range []struct {
		name  string
		files map[string]string // path → content; "->target" makes a symlink
		want  string
	}{
		{"debian systemd, merged /usr", map[string]string{
			"sbin": "->usr/sbin", "lib": "->usr/lib", "usr/sbin/init": "->../lib/systemd/systemd", "usr/lib/systemd/systemd": "\x7fELF"}, initSystemd},
		{"systemd by absolute link", map[string]string{"sbin/init": "->/lib/systemd/systemd", "lib/systemd/systemd": "\x7fELF"}, initSystemd},
		{"busybox link", map[string]string{"sbin/init": "->/bin/busybox", "bin/busybox": "\x7fELF BusyBox v1.35"}, initBusybox},
		{"busybox copy", map[string]string{"sbin/init": "\x7fELF junk BusyBox v1.35.0 (Debian) junk"}, initBusybox},
		{"sysvinit binary", map[string]string{"sbin/init": "\x7fELF junk INIT_VERSION=sysvinit-3.06 junk"}, initSysvinit},
		{"sysvinit's own path", map[string]string{"sbin/init": "->/lib/sysvinit/init", "lib/sysvinit/init": "\x7fELF"}, initSysvinit},
		{"a script", map[string]string{"sbin/init": "#!/bin/sh\nexec sh\n"}, initUnknown},
		{"no init", map[string]string{"bin/sh": "\x7fELF"}, initUnknown},
		{"dangling link", map[string]string{"sbin/init": "->/nowhere"}, initUnknown},
		{"link loop", map[string]string{"sbin/init": "->/sbin/other", "sbin/other": "->/sbin/init"}, initUnknown},
		{"absolute link stays in the root", map[string]string{"sbin/init": "->" + filepath.Join(outside, "init")}, initUnknown},
		{"dot-dot stays in the root", map[string]string{"sbin/init": "->../../../../../../" + filepath.Join(outside, "init")}, initUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range c.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if target, ok := cutLink(content); ok {
					if err := os.Symlink(target, p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				write(t, p, content)
			}
			if got := initKind(root); got != c.want {
				t.Errorf("initKind = %s, want %s", got, c.want)
			}
		})
	}
	if kind, sig := detectPowerOff(uint32(os.Getpid())); kind != initUnknown || sig != powerOffSignal[initUnknown] {
		t.Errorf("a process in the host's root: %s %d, want unknown (the host's init is not the guest's)", kind, sig)
	}
}

func cutLink(content string) (string, bool) {
	if len(content) > 2 && content[:2] == "->" {
		return content[2:], true
	}
	return "", false
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCatches reads which signals a process catches from its /proc status.
func TestCatches(t *testing.T) {
	// 0xa00: bits 9 and 11 (SIGUSR1, SIGUSR2); bit 33: SIGRTMIN (34).
	status := "Name:\tinit\nSigIgn:\t0000000000001000\nSigCgt:\t0000000200000a00\nCapInh:\t0000000000000000\n"
	for sig, want := range map[syscall.Signal]bool{
		syscall.SIGUSR1: true, syscall.SIGUSR2: true, 34: true,
		syscall.SIGTERM: false, syscall.SIGPIPE: false /* ignored, not caught */, 38: false, 0: false, 65: false,
	} {
		if got := catches(status, sig); got != want {
			t.Errorf("catches(%d) = %v, want %v", sig, got, want)
		}
	}
	if catches("Name:\tgone\n", syscall.SIGUSR2) {
		t.Error("a status without SigCgt catches SIGUSR2")
	}
}

package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"hearth/internal/ehkeys"
)

// The kinds of init initKind tells apart.
const (
	initSystemd  = "systemd"
	initSysvinit = "sysvinit"
	initBusybox  = "busybox"
	initUnknown  = "unknown"
)

// powerOffSignal is the request each kind of init powers off on (spec §5):
// systemd's SIGRTMIN+4 (SIGTERM would make it re-execute itself), sysvinit's
// SIGPWR, busybox init's SIGUSR2 (SIGTERM would make it reboot); SIGTERM for
// anything else.
var powerOffSignal = map[string]syscall.Signal{
	initSystemd:  ehkeys.SIGRTMIN + 4,
	initSysvinit: syscall.SIGPWR,
	initBusybox:  syscall.SIGUSR2,
	initUnknown:  syscall.SIGTERM,
}

// maxInitScan bounds how much of an init binary initKind reads (busybox is
// about 2 MiB, sysvinit's init 50 KiB).
const maxInitScan = 8 << 20

// initKind tells what the root filesystem at rootDir runs as /sbin/init:
// a symlink chain that names systemd or busybox, or a binary that is
// busybox or sysvinit's init (Debian keeps one under /lib/sysvinit too).
// Every path is resolved inside rootDir, absolute symlinks included
// (openat2 RESOLVE_IN_ROOT), so a guest's links never lead to host files.
func initKind(rootDir string) string {
	root, err := os.Open(rootDir)
	if err != nil {
		return initUnknown
	}
	defer root.Close()
	name := "/sbin/init"
	for range 40 { // the kernel's own limit on symlinks in a walk
		switch base := path.Base(name); {
		case base == "systemd":
			return initSystemd
		case base == "busybox":
			return initBusybox
		case strings.Contains(name, "/sysvinit/"):
			return initSysvinit
		}
		fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT,
		})
		if err != nil {
			return initUnknown
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			kind := initUnknown
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				kind = binaryKind(fd)
			}
			unix.Close(fd)
			return kind
		}
		target, err := readlinkFd(fd)
		unix.Close(fd)
		if err != nil {
			return initUnknown
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(name), target)
		}
		name = path.Clean(target)
	}
	return initUnknown
}

func readlinkFd(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// binaryKind reads an init binary (a regular file's O_PATH fd) for the
// marks busybox and sysvinit's init carry.
func binaryKind(pathFd int) string {
	f, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", pathFd))
	if err != nil {
		return initUnknown
	}
	defer f.Close()
	marks := map[string][]byte{initSysvinit: []byte("INIT_VERSION=sysvinit"), initBusybox: []byte("BusyBox v")}
	const overlap = 32 // longer than any mark, so none is missed across reads
	buf := make([]byte, 256<<10)
	var carry []byte
	for read := 0; read < maxInitScan; {
		n, err := f.Read(buf)
		chunk := append(carry, buf[:n]...)
		for kind, mark := range marks {
			if bytes.Contains(chunk, mark) {
				return kind
			}
		}
		if len(chunk) > overlap {
			carry = append(carry[:0], chunk[len(chunk)-overlap:]...)
		}
		read += n
		if err != nil {
			break
		}
	}
	return initUnknown
}

// detectPowerOff tells the power-off signal of the guest whose init is
// process pid, from the init in its root (/proc/PID/root: the root the
// runtime gave it). A process whose root is the host's (a VM's runtime
// process: Kata) tells nothing: the guest's init is inside the VM.
func detectPowerOff(pid uint32) (kind string, sig syscall.Signal) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	var guest, host unix.Stat_t
	if unix.Stat(root, &guest) != nil || unix.Stat("/", &host) != nil || guest.Dev == host.Dev && guest.Ino == host.Ino {
		return initUnknown, powerOffSignal[initUnknown]
	}
	kind = initKind(root)
	return kind, powerOffSignal[kind]
}

// notePowerOff sets what g's init, of the given kind, powers off on.
func (h *Host) notePowerOff(g *instance, kind string) {
	sig := powerOffSignal[kind]
	h.mu.Lock()
	g.powerOff = sig
	h.mu.Unlock()
	h.log.Info("guest init", "server", g.spec.ID, "init", kind, "poweroff", ehkeys.SignalName(sig))
}

// recordPowerOff finds what the created (not yet started) init of g, process
// pid, powers off on and records it with the guest, for Status and for a
// Hearth that re-adopts it: for a guest whose root the host does not mount
// (Kata), whose init is only seen through its process.
func (h *Host) recordPowerOff(ctx context.Context, g *instance, pid uint32) {
	kind, _ := detectPowerOff(pid)
	h.notePowerOff(g, kind)
	if _, err := g.container.SetLabels(ctx, map[string]string{labelPowerOff: strconv.Itoa(int(g.powerOff))}); err != nil {
		h.log.Warn("recording the power-off signal for re-adoption", "server", g.spec.ID, "err", err)
	}
}

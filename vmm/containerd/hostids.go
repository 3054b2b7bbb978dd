package containerd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"hearth/vmm/guest"
)

// Host ids. Every guest of an instance maps its 65,536 ids to a block of
// the instance's window of host ids: slot N (guest.Spec.IDSlot, kept by
// the database) is base + N×65536. The database of each Hearth hands out
// slots from 0, so two Hearths on one host would hand out the same blocks;
// each instance therefore gets a window of its own, IDSlots blocks long:
// window 0 (from DefaultIDBase) is the instance "hearth"'s, the one every
// Hearth used before instances, and any other instance takes one of the
// IDWindows-1 others, chosen once (ClaimIDBase) and recorded in its
// database, and claimed host-wide while it runs. What the database cannot see, another Hearth's guests, is
// checked on the host itself: no guest starts while a process outside this
// instance's guests maps one of its host ids (HostIDUsers), and at Open
// such processes anywhere in the instance's window are logged.

// IDSlots is how many 65,536-id blocks (servers that have been started) an
// instance's window holds.
const IDSlots = 1024

// idWindow is the size of an instance's window of host ids.
const idWindow = IDSlots * guest.IDRange

// IDWindows is how many windows fit between DefaultIDBase and the last
// host id.
const IDWindows = (1<<32 - DefaultIDBase) / idWindow

// legacyInstance is the instance whose window is the first, where every
// Hearth put its guests before instances.
const legacyInstance = "hearth"

// ClaimIDBase claims a window of host ids for instance until the Closer is
// closed or the process ends: the window from base when base is not 0 (the
// one the instance recorded), else a new instance's: the first window for
// the instance "hearth", else one derived from the name, moved on past
// windows another running Hearth has claimed or a running process's user
// namespace maps ids of (another Hearth's guests). It returns the window's
// first id, for the caller to record: a running instance's window must not
// move. A claim is an abstract unix socket "@hearth/idwindow/N", so two
// Hearths running at once never hold one window, however they end.
func ClaimIDBase(instance string, base uint32) (uint32, io.Closer, error) {
	if base != 0 {
		if err := CheckIDBase(base); err != nil {
			return 0, nil, err
		}
		c, err := claimIDWindow(base)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: the window of host ids from %d is another running Hearth's (a rare clash of two instances' windows; stop one, or serve a copy of this DATA under another --instance before its first start)", err, base)
		}
		return base, c, nil
	}
	if instance == legacyInstance {
		return ClaimIDBase(instance, DefaultIDBase)
	}
	sum := sha256.Sum256([]byte(instance))
	first := 1 + int(binary.BigEndian.Uint32(sum[:4])%(IDWindows-1))
	for i := range IDWindows - 1 {
		base := idWindowBase(1 + (first-1+i)%(IDWindows-1))
		if len(HostIDUsers("/proc", uint64(base), idWindow, nil)) > 0 {
			continue
		}
		if c, err := claimIDWindow(base); err == nil {
			return base, c, nil
		}
	}
	return 0, nil, fmt.Errorf("every window of host ids is in use on this host: %w", guest.ErrUnavailable)
}

// ErrIDWindowInUse: another running Hearth holds the window.
var ErrIDWindowInUse = errors.New("window of host ids in use")

func claimIDWindow(base uint32) (io.Closer, error) {
	name := fmt.Sprintf("@hearth/idwindow/%d", (base-DefaultIDBase)/idWindow)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, ErrIDWindowInUse
	}
	return c, err
}

// idWindowBase is the first host id of window w (0 to IDWindows-1).
func idWindowBase(w int) uint32 { return uint32(DefaultIDBase + w*idWindow) }

// CheckIDBase refuses a base that is not the first id of a window.
func CheckIDBase(base uint32) error {
	if base < DefaultIDBase || (base-DefaultIDBase)%idWindow != 0 || (base-DefaultIDBase)/idWindow >= IDWindows {
		return fmt.Errorf("host id base %d is not the start of a window of %d ids from %d: %w", base, idWindow, DefaultIDBase, guest.ErrInvalid)
	}
	return nil
}

// IDUser is a process whose user namespace maps host ids Hearth looked for.
type IDUser struct {
	PID         int
	First, Size uint64 // the host ids of its uid_map line that overlaps
	Cgroup      string // its first cgroup path (tells whose guest it is)
}

func (u IDUser) String() string {
	return fmt.Sprintf("pid %d maps host ids %d-%d (cgroup %s)", u.PID, u.First, u.First+u.Size-1, u.Cgroup)
}

// HostIDUsers lists the live processes under proc (/proc) whose user
// namespace maps any host user id in [first, first+size), but those for
// which ours (given the process's cgroup lines) says they are our own.
// Processes of the host's own user namespace map every id one to one and
// are skipped; so are zombies.
func HostIDUsers(proc string, first, size uint64, ours func(cgroups string) bool) []IDUser {
	entries, _ := os.ReadDir(proc)
	// The processes of one user namespace share its map: it is read once
	// per namespace (most processes are in the host's own), not once per
	// process, which on a busy host made this scan tens of milliseconds of
	// every start.
	type found struct {
		hit IDUser
		ok  bool
	}
	byNamespace := map[string]found{}
	var users []IDUser
	for _, e := range entries {
		if name := e.Name(); name[0] < '0' || name[0] > '9' {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		ns, nsErr := os.Readlink(filepath.Join(dir, "ns", "user"))
		f, seen := byNamespace[ns]
		if nsErr != nil || !seen {
			b, err := os.ReadFile(filepath.Join(dir, "uid_map"))
			if err != nil {
				continue
			}
			f.hit, f.ok = overlap(b, first, size)
			if nsErr == nil {
				byNamespace[ns] = f
			}
		}
		if !f.ok {
			continue
		}
		hit := f.hit
		stat, _ := os.ReadFile(filepath.Join(dir, "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i < 0 || bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
			continue
		}
		cgroups, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
		if ours != nil && ours(string(cgroups)) {
			continue
		}
		hit.PID, _ = strconv.Atoi(e.Name())
		if line, _, _ := strings.Cut(string(cgroups), "\n"); line != "" {
			hit.Cgroup = line[strings.LastIndexByte(line, ':')+1:]
		}
		users = append(users, hit)
	}
	return users
}

// overlap finds the first line of a uid_map ("inside outside count") that
// maps a host id in [first, first+size); the identity map of the host's own
// namespace never counts.
func overlap(uidMap []byte, first, size uint64) (IDUser, bool) {
	lines := bufio.NewScanner(bytes.NewReader(uidMap))
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 64)
		outside, err2 := strconv.ParseUint(f[1], 10, 64)
		count, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || inside == 0 && outside == 0 && count == 1<<32-1 {
			continue
		}
		if outside < first+size && first < outside+count {
			return IDUser{First: outside, Size: count}, true
		}
	}
	return IDUser{}, false
}

// inCgroupOf returns whether cgroups (a process's /proc/PID/cgroup) puts it
// below dir (a cgroup path such as /NAMESPACE or /NAMESPACE/ID) in any
// hierarchy.
func inCgroupOf(dir string) func(cgroups string) bool {
	return func(cgroups string) bool {
		for _, line := range strings.Split(cgroups, "\n") {
			path := line[strings.LastIndexByte(line, ':')+1:]
			if path == dir || strings.HasPrefix(path, dir+"/") {
				return true
			}
		}
		return false
	}
}

// checkHostIDs refuses to start a guest whose host ids a process outside
// the instance's guests maps: another Hearth's guest (their windows
// overlap) or anything else that took them. Among its own guests the
// database keeps slots disjoint.
func (h *Host) checkHostIDs(spec guest.Spec) error {
	users := HostIDUsers("/proc", uint64(spec.IDMap.HostID), uint64(spec.IDMap.Size), inCgroupOf("/"+h.namespace))
	if len(users) == 0 {
		return nil
	}
	return fmt.Errorf("guest %s: its host ids %d-%d are in use outside this Hearth (%s): %w",
		spec.ID, spec.IDMap.HostID, uint64(spec.IDMap.HostID)+uint64(spec.IDMap.Size)-1, users[0], guest.ErrUnavailable)
}

// logForeignIDUsers logs the processes other than this instance's guests
// that map host ids of the instance's window: guests of theirs would not
// start.
func (h *Host) logForeignIDUsers() {
	for _, u := range HostIDUsers("/proc", uint64(h.idBase), idWindow, inCgroupOf("/"+h.namespace)) {
		h.log.Error("a process outside this Hearth maps host ids of this instance's window: guests whose ids it maps will not start",
			"window_from", h.idBase, "process", u.String())
	}
}

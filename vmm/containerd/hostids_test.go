package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/internal/testguest"
	"hearth/vmm/guest"
)

func TestIDWindowsAreDisjointAndWithinHostIDs(t *testing.T) {
	base, claim, err := ClaimIDBase("hearth", 0)
	switch {
	case errors.Is(err, ErrIDWindowInUse): // a Hearth serving the instance hearth on this host
	case err != nil || base != DefaultIDBase:
		t.Errorf("the instance hearth's window starts at %d (%v), want %d (where guests were before instances)", base, err, DefaultIDBase)
	default:
		claim.Close()
	}
	if IDWindows < 32 {
		t.Errorf("only %d windows of host ids", IDWindows)
	}
	last := uint64(idWindowBase(IDWindows-1)) + idWindow
	if last > 1<<32-1 {
		t.Errorf("the last window ends at %d, past the last host id", last)
	}
	held := map[uint32]string{}
	for _, inst := range []string{"a", "test", "0123abcd", "e2e-2", "a"} {
		base, claim, err := ClaimIDBase(inst, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { claim.Close() })
		if err := CheckIDBase(base); err != nil || base == DefaultIDBase {
			t.Errorf("%s: base %d (%v): want a window but the instance hearth's", inst, base, err)
		}
		if other, dup := held[base]; dup {
			t.Errorf("%s got the window from %d that %s holds", inst, base, other)
		}
		held[base] = inst
		if _, _, err := ClaimIDBase(inst, base); !errors.Is(err, ErrIDWindowInUse) {
			t.Errorf("%s: a second claim of a held window: %v, want ErrIDWindowInUse", inst, err)
		}
	}
	for _, bad := range []uint32{DefaultIDBase + 1, DefaultIDBase + idWindow/2, idWindowBase(IDWindows-1) + idWindow} {
		if err := CheckIDBase(bad); err == nil {
			t.Errorf("CheckIDBase(%d) = nil, want an error", bad)
		}
		if _, _, err := ClaimIDBase("a", bad); err == nil {
			t.Errorf("ClaimIDBase of %d = nil, want an error", bad)
		}
	}
	h := &Host{idBase: idWindowBase(3)}
	if m, err := h.idMap(IDSlots - 1); err != nil || uint64(m.HostID)+uint64(m.Size) != uint64(idWindowBase(4)) {
		t.Errorf("last slot maps %+v (%v), want the last block of the window", m, err)
	}
	if _, err := h.idMap(IDSlots); err == nil {
		t.Error("a slot past the window was given host ids")
	}
}

// TestHostIDUsers: processes whose user namespace maps ids of a range are
// found from /proc, but the host's own identity map, zombies and processes
// the caller says are its own.
func TestHostIDUsers(t *testing.T) {
	proc := t.TempDir()
	process := func(pid, uidMap, state, cgroup string) {
		dir := filepath.Join(proc, pid)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "uid_map"), []byte(uidMap), 0o644)
		os.WriteFile(filepath.Join(dir, "stat"), []byte(pid+" (init) "+state+" 1 1"), 0o644)
		os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644)
	}
	process("1", "         0          0 4294967295\n", "S", "0::/init.scope\n")
	process("10", "         0    1000000      65536\n", "S", "0::/hearth/a\n")
	process("11", "         0    1065536      65536\n", "S", "0::/hearth-x/b\n")
	process("12", "         0    1065536      65536\n", "Z", "0::/hearth-x/b\n")
	process("13", "         0     100000      65536\n", "S", "0::/user.slice\n")
	process("14", "         0       1000          1\n         1    1131071          1\n", "S", "12:pids:/other\n1:name=systemd:/other\n")
	// Two processes of one user namespace (read once): each is still told
	// apart by its own cgroup.
	for pid, cgroup := range map[string]string{"15": "0::/hearth/c\n", "16": "0::/other2\n"} {
		process(pid, "         0    1000000      65536\n", "S", cgroup)
		os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755)
		os.Symlink("user:[4026532777]", filepath.Join(proc, pid, "ns", "user"))
	}

	found := func(users []IDUser) string {
		var pids []string
		for _, u := range users {
			pids = append(pids, u.String())
		}
		return strings.Join(pids, "; ")
	}
	all := HostIDUsers(proc, DefaultIDBase, 2*guest.IDRange, nil)
	if got := found(all); got != "pid 10 maps host ids 1000000-1065535 (cgroup /hearth/a); pid 11 maps host ids 1065536-1131071 (cgroup /hearth-x/b); pid 14 maps host ids 1131071-1131071 (cgroup /other); pid 15 maps host ids 1000000-1065535 (cgroup /hearth/c); pid 16 maps host ids 1000000-1065535 (cgroup /other2)" {
		t.Errorf("users of ids 1000000-1131071: %s", got)
	}
	if got := found(HostIDUsers(proc, DefaultIDBase, 2*guest.IDRange, inCgroupOf("/hearth"))); strings.Contains(got, "pid 10") || !strings.Contains(got, "pid 11") ||
		strings.Contains(got, "pid 15") || !strings.Contains(got, "pid 16") {
		t.Errorf("users but the instance hearth's guests: %s (the instance hearth-x's are not its own)", got)
	}
	if got := found(HostIDUsers(proc, 2_000_000, guest.IDRange, nil)); got != "" {
		t.Errorf("users of ids nobody maps: %s", got)
	}
}

// TestGuestRefusedWhileAnotherInstanceMapsItsIDs: two Hosts (two Hearths)
// given the same window of host ids: the second's guest in the first's
// slot does not start while the first's runs, and starts once it is gone;
// a guest of the first in another slot is not held up by its own.
func TestGuestRefusedWhileAnotherInstanceMapsItsIDs(t *testing.T) {
	a, _ := openTestHost(t)
	b, _ := openTestHost(t, WithIDBase(a.idBase))
	ctx := context.Background()
	spec := func(id string, slot int) guest.Spec {
		return guest.Spec{ID: id, IDSlot: slot, Boot: guest.Disk{Image: testguest.Image(t, 32<<20)}}
	}
	first := guestID(t, 0)
	if err := a.Start(ctx, spec(first, 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx, spec(guestID(t, 1), 1)); err != nil {
		t.Errorf("a second guest of the same instance: %v", err)
	}
	other := guestID(t, 2)
	err := b.Start(ctx, spec(other, 0))
	if !errors.Is(err, guest.ErrUnavailable) || !strings.Contains(err.Error(), "in use outside this Hearth") {
		t.Fatalf("a guest on ids another instance's guest maps: %v, want refused", err)
	}
	if _, err := b.Status(ctx, other); !errors.Is(err, guest.ErrNotFound) {
		t.Errorf("the refused guest left something behind: %v", err)
	}
	if err := a.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, spec(other, 0)); err != nil {
		t.Errorf("once the other guest is gone: %v", err)
	}
	// Both Hosts' guests go before either checks for leaks: they share the
	// test's directory.
	for _, h := range []*Host{a, b} {
		for _, g := range h.Guests(ctx) {
			if err := h.Delete(ctx, g.Spec.ID); err != nil {
				t.Errorf("delete %s: %v", g.Spec.ID, err)
			}
		}
	}
}

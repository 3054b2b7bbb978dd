package containerd

import (
	"testing"

	"golang.org/x/sys/unix"

	"hearth/vmm/guest"
)

// detachedTmpfs is a tmpfs mount attached nowhere, as mountRoot makes a
// root before moving it into place.
func detachedTmpfs(t *testing.T) int {
	t.Helper()
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		t.Skipf("fsopen: %v (needs root)", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(mfd) })
	return mfd
}

// TestUsernsCacheReusesNamespaces: a mapping idmaps a mount with the same
// user namespace at every start (none is made again); another mapping gets
// one of its own.
func TestUsernsCacheReusesNamespaces(t *testing.T) {
	var c usernsCache
	defer c.close()
	ns := func(ids guest.IDMap) uint64 {
		var st unix.Stat_t
		if err := unix.Fstat(int(c.byMap[ids].Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	a, b := guest.IDMap{HostID: 3_000_000_000, Size: guest.IDRange}, guest.IDMap{HostID: 3_000_065_536, Size: guest.IDRange}
	if err := c.idmap(detachedTmpfs(t), a); err != nil {
		t.Fatal(err)
	}
	first := ns(a)
	if err := c.idmap(detachedTmpfs(t), a); err != nil {
		t.Fatal(err)
	}
	if again := ns(a); again != first {
		t.Errorf("the same ids got another user namespace (%d, then %d)", first, again)
	}
	if err := c.idmap(detachedTmpfs(t), b); err != nil {
		t.Fatal(err)
	}
	if ns(b) == first {
		t.Error("other ids got the same user namespace")
	}
}

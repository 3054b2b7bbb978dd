package containerd

import (
	"fmt"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"hearth/vmm/guest"
)

// maxUserns bounds the namespaces usernsCache keeps: past it, one is let
// go (and made again when its ids start a guest).
const maxUserns = 256

// usernsCache keeps, by id mapping, the user namespaces idmapped roots are
// mounted with: each held by a file descriptor, no process living in it, so
// it confers nothing on anyone and only describes a mapping. Making one
// forks a process into it (15–20 ms on these machines, more on a loaded
// host), and a server's guest gets the same mapping at every start — a
// reboot, a stop and start.
type usernsCache struct {
	mu    sync.Mutex
	byMap map[guest.IDMap]*os.File
}

// idmap idmaps the detached mount mfd so that guest ids 0… are ids's host
// ids.
func (c *usernsCache) idmap(mfd int, ids guest.IDMap) error {
	c.mu.Lock() // held while the namespace is used: none is closed under a mount
	defer c.mu.Unlock()
	ns, ok := c.byMap[ids]
	if !ok {
		m := fmt.Sprintf("0:%d:%d", ids.HostID, ids.Size)
		var err error
		if ns, err = mount.GetUsernsFD(m, m); err != nil {
			return fmt.Errorf("user namespace for the root's id mapping: %w", err)
		}
		if c.byMap == nil {
			c.byMap = map[guest.IDMap]*os.File{}
		}
		for old, f := range c.byMap {
			if len(c.byMap) < maxUserns {
				break
			}
			f.Close()
			delete(c.byMap, old)
		}
		c.byMap[ids] = ns
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	return unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &attr)
}

// close lets every namespace go.
func (c *usernsCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ids, f := range c.byMap {
		f.Close()
		delete(c.byMap, ids)
	}
}

package containerd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/storage/rootfs"
	"hearth/vmm/guest"
)

// debianTarball is the Debian 12 root filesystem `./task guest-image`
// builds (debootstrap: systemd, ifupdown, login; root password root).
const debianTarball = "../../test-artifacts/guests/debian12.tar"

// TestDebianLogin boots a stock Debian 12 (systemd) as an unprivileged
// guest to the login prompt on its console: from a writable drive, and as
// a live system from a read-only one (systemd settles on the overlay, and
// the drive is unchanged afterwards).
func TestDebianLogin(t *testing.T) {
	if _, err := os.Stat(debianTarball); err != nil {
		t.Skipf("no Debian image (./task guest-image): %v", err)
	}
	for _, readOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "writable", true: "live"}[readOnly], func(t *testing.T) { debianLogin(t, readOnly) })
	}
}

func debianLogin(t *testing.T, readOnly bool) {
	h, _ := openTestHost(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "debian.img")
	if _, err := rootfs.Import(ctx, debianTarball, img, rootfs.WithSize(1<<30)); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, img)
	id := guestID(t, 0)
	start := time.Now()
	if err := h.Start(ctx, guest.Spec{ID: id, Hostname: "deb", IDSlot: 7, Boot: guest.Disk{Image: img, ReadOnly: readOnly}}); err != nil {
		t.Fatal(err)
	}
	if uid := initUID(t, h, id); uid != h.idBase+7*guest.IDRange {
		t.Errorf("systemd runs as host uid %d", uid)
	}
	c, _ := h.Console(id)
	// systemd's boot on a loaded 2-core machine takes seconds, not minutes.
	for deadline := time.Now().Add(2 * time.Minute); !bytes.Contains(c.Backlog(), []byte("login:")); time.Sleep(100 * time.Millisecond) {
		if st, _ := h.Status(ctx, id); st.State != guest.Running || time.Now().After(deadline) {
			t.Fatalf("no login prompt (guest %s); the console shows:\n%s", st.State, c.Backlog())
		}
	}
	t.Logf("login prompt %v after the start", time.Since(start).Round(10*time.Millisecond))
	// root logs in; the guest sees its own ids as 0… and systemd settles.
	c.Write([]byte("root\n"))
	waitConsole(t, c, "Password:")
	c.Write([]byte("hearth\n"))
	waitConsole(t, c, "root@deb:~#") // login flushes what was typed before
	c.Write([]byte("echo in-$((6*7)); cat /proc/self/uid_map; systemctl is-system-running --wait; systemctl --failed --no-legend; ip tuntap add mode tun tun0 && echo tun-$((2*3)); echo done-$((6*7))\n"))
	waitConsole(t, c, "done-42")
	if !bytes.Contains(c.Backlog(), []byte("tun-6")) {
		t.Error("guest root cannot create a tun device")
	}
	out := c.Backlog()
	out = out[bytes.LastIndex(out, []byte("in-42")):]
	if f := strings.Fields(string(out[:bytes.Index(out, []byte("done-42"))])); len(f) < 4 || f[1] != "0" || f[2] != strconv.Itoa(int(h.idBase)+7*guest.IDRange) || f[3] != "65536" {
		t.Errorf("uid_map in the guest: %q", f)
	}
	t.Logf("after login:\n%s", out)
	if !readOnly {
		return
	}
	c.Write([]byte("echo live > /etc/live-write && cat /etc/live-write && echo wrote-$((6*7))\n"))
	waitConsole(t, c, "wrote-42")
	if err := h.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if after := fileSum(t, img); after != before {
		t.Error("the read-only drive changed under a live Debian")
	}
}

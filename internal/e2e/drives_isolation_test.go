package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// liveMarkInit is an inittab line run once at every boot: it says whether an
// earlier boot's write survived, writes in /etc, and tries to open
// /hostdisk (a block device node for the host's loop0, when the test put
// one on the drive), printing the error.
const liveMarkInit = `::once:/bin/sh -c 'test -e /etc/live-mark && echo seen-before; echo x > /etc/live-mark && sync && echo wrote-$((1+1)); ` +
	`test -e /hostdisk && { head -c 1 /hostdisk > /dev/null 2> /tmp/err; echo dev-open-$?; cat /tmp/err; }; grep " / " /proc/mounts; echo probe-$((3+4))'`

// driveImage is the image file of a drive in DATA.
func (h *hearth) driveImage(drive string) string {
	return filepath.Join(h.data, "drives", drive+".img")
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// debugfsWrite changes a stopped drive's ext4 filesystem from the host, as
// a raw upload could have left it.
func debugfsWrite(t *testing.T, img string, requests ...string) {
	t.Helper()
	for _, r := range requests {
		if out, err := exec.Command("debugfs", "-w", "-R", r, img).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %q: %v: %s", r, err, out)
		}
	}
}

// TestReadOnlyDrives (issue 12): an ordinary user boots the admin's library
// image — attached as a cdrom, and from a second server attached plainly,
// which the owner may only read — and both guests write into /etc at once.
// Each write lands in the server's own throwaway layer: it is gone after a
// stop and start, and the library image is byte for byte what it was.
func TestReadOnlyDrives(t *testing.T) {
	h := startHearth(t)
	lib := h.importImage(guestImage(t, liveMarkInit), "32M")
	img := h.driveImage(lib)
	before := fileSHA(t, img)
	c := h.addUser("ro-"+randomHex(2), false)

	cdrom := c.post("/servers/create", guestConfig("live-cdrom", lib)+"ide:0:0:media cdrom\n").must(t, 200).props()["server"]
	c.waitStatus(t, cdrom, "active", 30*time.Second)
	out := c.waitConsole(t, cdrom, "probe-7", 30*time.Second)
	if !strings.Contains(out, "wrote-2") || strings.Contains(out, "seen-before") {
		t.Fatalf("live boot of a cdrom: want a write that succeeds into a fresh layer; console:\n%s", out)
	}
	if !strings.Contains(out, " / overlay ") {
		t.Errorf("the live root is not an overlay:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(h.data, "run", cdrom, "live", "upper")); err != nil {
		t.Errorf("no throwaway layer in DATA/run: %v", err)
	}

	// A plain attachment of a drive the user may only read is read-only
	// too, and two servers boot the image at once.
	if r := c.post("/servers/create", guestConfig("plain", lib)); r.status != 400 || !strings.Contains(r.body, "cdrom") {
		t.Errorf("plain attachment of another user's drive: %d %s, want 400 naming cdrom", r.status, r.body)
	}
	second := c.post("/servers/create", guestConfig("live-second", lib)+"ide:0:0:media cdrom\n").must(t, 200).props()["server"]
	c.waitStatus(t, second, "active", 30*time.Second)
	if out := c.waitConsole(t, second, "probe-7", 30*time.Second); !strings.Contains(out, "wrote-2") || strings.Contains(out, "seen-before") {
		t.Errorf("second live boot of the same image at once:\n%s", out)
	}

	c.post("/servers/"+cdrom+"/stop", "").must(t, 204)
	c.waitStatus(t, cdrom, "stopped", 30*time.Second)
	if _, err := os.Stat(filepath.Join(h.data, "run", cdrom)); err == nil {
		t.Errorf("DATA/run/%s (the throwaway layer) left after stop", cdrom)
	}
	c.post("/servers/"+cdrom+"/start", "").must(t, 204)
	c.waitStatus(t, cdrom, "active", 30*time.Second)
	if out := c.waitConsole(t, cdrom, "probe-7", 30*time.Second); strings.Contains(out, "seen-before") {
		t.Errorf("a live system's write survived stop and start:\n%s", out)
	}
	for _, id := range []string{cdrom, second} {
		c.post("/servers/"+id+"/destroy", "").must(t, 204)
	}
	if after := fileSHA(t, img); after != before {
		t.Errorf("the library image changed: sha256 %s, was %s", after, before)
	}
}

// TestDriveWriteOnce (issue 12): a drive is attached writable to at most one
// running server: a second writable create or start answers 409 busy
// naming the drive, even for a drive whose claim:type is shared, and
// leaves nothing running.
func TestDriveWriteOnce(t *testing.T) {
	h := startHearth(t)
	lib := h.importImage(guestImage(t, liveMarkInit), "32M")
	c := h.addUser("wo-"+randomHex(2), false)
	d := c.driveFrom(t, lib, "32M")
	c.post("/drives/"+d+"/set", "claim:type shared").must(t, 200)

	name := c.get("/drives/"+d+"/info").must(t, 200).props()["name"]
	first := c.post("/servers/create", guestConfig("writer", d)).must(t, 200).props()["server"]
	c.waitStatus(t, first, "active", 30*time.Second)
	r := c.post("/servers/create", guestConfig("second-writer", d))
	if r.status != 409 || !strings.Contains(r.body, name+" (ide:0:0) is already attached writable to running server writer") {
		t.Errorf("second writable attachment: %d %s, want 409 busy naming drive %s and server writer", r.status, r.body, name)
	}

	// The same through start of an existing stopped server.
	later := c.post("/servers/create/stopped", guestConfig("later-writer", d)).must(t, 200).props()["server"]
	if r := c.post("/servers/"+later+"/start", ""); r.status != 409 || !strings.Contains(r.body, name) {
		t.Errorf("start of a second writer: %d %s, want 409 naming drive %s", r.status, r.body, name)
	}
	if p := c.get("/servers/"+later+"/info").must(t, 200).props(); p["status"] != "stopped" {
		t.Errorf("refused server is %s, want stopped", p["status"])
	}
}

// TestUntrustedFilesystem (issue 12): a boot filesystem a tenant damaged
// byte by byte is refused before the host mounts it (dead, with a reason
// naming the problem and no host path), and a device node a tenant put on
// its drive opens nothing: the host mounts tenant filesystems nodev.
func TestUntrustedFilesystem(t *testing.T) {
	h := startHearth(t)
	lib := h.importImage(guestImage(t, liveMarkInit), "32M")
	c := h.addUser("fs-"+randomHex(2), false)

	damaged := c.driveFrom(t, lib, "32M")
	debugfsWrite(t, h.driveImage(damaged), "clri /etc")
	p := c.post("/servers/create", guestConfig("damaged", damaged)).must(t, 200).props()
	if p["status"] != "dead" || !strings.Contains(p["error"], "damaged") || !strings.Contains(p["error"], "deleted/unused inode") ||
		strings.Contains(p["error"], h.data) || strings.Contains(p["error"], "/dev/") {
		t.Errorf("damaged boot filesystem: status %q error %q, want dead naming the damage and no host path", p["status"], p["error"])
	}

	node := c.driveFrom(t, lib, "32M")
	debugfsWrite(t, h.driveImage(node), "mknod hostdisk b 7 0", "sif hostdisk mode 060660")
	for _, media := range []string{"", "ide:0:0:media cdrom\n"} {
		id := c.post("/servers/create", guestConfig("node", node)+media).must(t, 200).props()["server"]
		c.waitStatus(t, id, "active", 30*time.Second)
		out := c.waitConsole(t, id, "probe-7", 30*time.Second)
		// nodev answers EACCES; without it the devices cgroup would
		// answer EPERM ("Operation not permitted").
		if !strings.Contains(out, "dev-open-1") || !strings.Contains(out, "Permission denied") || !strings.Contains(out, "nodev") {
			t.Errorf("device node on the drive (media %q): want it refused by nodev; console:\n%s", media, out)
		}
		c.post("/servers/"+id+"/destroy", "").must(t, 204)
	}
}

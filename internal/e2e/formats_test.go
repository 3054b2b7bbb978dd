package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// x86-64 root, the GPT partition type of a root filesystem (Discoverable
// Partitions Specification).
const gptRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

// runTool runs a command that builds a test image.
func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// partitionedDebian is a 1.5 GiB sparse GPT disk: a small EFI-type
// partition first (so the root is not simply the first one) and the Debian
// tree in an ext4 on a partition of the x86-64 root type.
func partitionedDebian(t testing.TB, tree string) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "debian12-gpt.img")
	runTool(t, "truncate", "-s", "1536M", disk)
	const first, rootStart, rootSectors = 2048, 4096, 3000 * 1024 // 1 MiB EFI, ~1.46 GiB root
	layout := fmt.Sprintf("label: gpt\nstart=%d, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=%d, size=%d, type=%s\n",
		first, rootStart, rootSectors, gptRootX86_64)
	cmd := exec.Command("sfdisk", "--quiet", disk)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	runTool(t, "mkfs.ext4", "-q", "-F", "-L", "root", "-E", fmt.Sprintf("offset=%d", rootStart*512), "-d", tree, disk, fmt.Sprintf("%dk", rootSectors/2))
	return disk
}

// qcow2Debian is the Debian tree in a bare ext4, converted to qcow2.
func qcow2Debian(t testing.TB, tree string) string {
	t.Helper()
	dir := t.TempDir()
	raw, qcow := filepath.Join(dir, "debian12.ext4"), filepath.Join(dir, "debian12.qcow2")
	runTool(t, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, raw, "1200M")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
	return qcow
}

// TestImageFormats imports the Debian tree as the disk images users
// actually have — a GPT-partitioned raw disk and a qcow2 — with `hearth
// image import`, and boots each to a login prompt.
func TestImageFormats(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sfdisk", "qemu-img", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("building the test images needs %s (./task deps): %v", tool, err)
		}
	}
	tree := debianTree(t)
	h := startHearth(t)
	c := h.addUser("formats-"+randomHex(2), false)
	images := map[string]string{
		"gpt":   h.importNamed("debian12-gpt", partitionedDebian(t, tree), "2G"),
		"qcow2": h.importNamed("debian12-qcow2", qcow2Debian(t, tree), "2G"),
	}
	servers := map[string]string{}
	for name, lib := range images {
		drive := c.driveFrom(t, lib, "2G")
		id := c.post("/servers/create/stopped", debianServer(name, drive, h.secret("v"+randomHex(3)))).must(t, 200).props()["server"]
		c.post("/servers/"+id+"/start", "").must(t, 204)
		servers[name] = id
	}
	for name, id := range servers {
		t.Run(name, func(t *testing.T) {
			c.waitStatus(t, id, "active", time.Minute)
			c.waitConsole(t, id, "login:", 3*time.Minute)
		})
	}
}

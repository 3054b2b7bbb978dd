package containerd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"hearth/internal/testguest"
	"hearth/vmm/guest"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestLiveBoot: two guests boot the same read-only drive at once, each a
// live system: guest root owns / and the files it makes (uid 0 in the
// guest), writes succeed into its own throwaway layer and are not seen by
// the other guest, the root is nodev, and the drive is byte for byte
// unchanged; the layers go with the guests.
func TestLiveBoot(t *testing.T) {
	h, _ := openTestHost(t)
	ctx := context.Background()
	img := testguest.Image(t, 32<<20)
	before := fileSum(t, img)
	ids := []string{guestID(t, 0), guestID(t, 1)}
	for _, id := range ids {
		if err := h.Start(ctx, guest.Spec{ID: id, Boot: guest.Disk{Device: "hda", Image: img, ReadOnly: true}}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(h.runDir, id, liveDirName, "upper")); err != nil {
			t.Errorf("no upper layer in DATA/run/%s: %v", id, err)
		}
		if mounted, _ := mountinfo.Mounted(filepath.Join(h.runDir, id, liveDirName, "lower")); mounted {
			t.Errorf("the lower layer of %s stays mounted on the host", id)
		}
	}
	for i, id := range ids {
		c, _ := h.Console(id)
		c.Write([]byte("echo guest-" + id + " > /written && mkdir -p /root/d && touch /root/d/f && sync && " +
			"ls -lnd / /written /root/d/f; cat /written; grep ' / ' /proc/mounts; echo done-$((40+" + string(rune('0'+i)) + "))\n"))
		waitConsole(t, c, "done-4"+string(rune('0'+i)))
		out := string(c.Backlog())
		for _, re := range []string{`drwxr-xr-x\s+\d+ 0\s+0\s.* /\r?\n`, `-rw-r--r--\s+1 0\s+0\s.* /written`, `-rw-r--r--\s+1 0\s+0\s.* /root/d/f`,
			`(?m)^guest-` + regexp.QuoteMeta(id) + `\r?$`, ` / overlay [^ ]*nodev`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("guest %s console lacks %q:\n%s", id, re, out)
			}
		}
		if strings.Contains(out, h.runDir) {
			t.Errorf("guest %s sees host paths in /proc/mounts:\n%s", id, out)
		}
		if strings.Contains(out, "guest-"+ids[1-i]+"\r") {
			t.Errorf("guest %s sees the other guest's write:\n%s", id, out)
		}
	}
	for _, id := range ids {
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(h.runDir, id)); err == nil {
			t.Errorf("DATA/run/%s (the live layer) left after delete", id)
		}
	}
	if after := fileSum(t, img); !bytes.Equal(before[:], after[:]) {
		t.Error("the read-only drive changed")
	}
}

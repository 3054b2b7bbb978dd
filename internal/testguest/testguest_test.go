package testguest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageIsExt4WithInit(t *testing.T) {
	img := Image(t, 64<<20)
	out, err := exec.Command("debugfs", "-R", "stat /sbin/init", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Type: symlink") {
		t.Fatalf("debugfs stat /sbin/init: %v\n%s", err, out)
	}
	noInit := Image(t, 64<<20, WithoutInit())
	out, _ = exec.Command("debugfs", "-R", "stat /sbin/init", noInit).CombinedOutput()
	if !strings.Contains(string(out), "File not found") {
		t.Fatalf("WithoutInit image still has /sbin/init:\n%s", out)
	}
}

// TestLoopDevicesLeft finds a loop device on a file while it is attached,
// and none once it is detached.
func TestLoopDevicesLeft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("attaching a loop device needs root")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	held := func(backing string) bool { return backing == img }
	if left := LoopDevicesLeft(held); len(left) != 1 || !strings.HasPrefix(left[0], filepath.Base(dev)+" → ") {
		t.Errorf("attached %s: left %q", dev, left)
	}
	if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
		t.Fatalf("losetup --detach: %v %s", err, out)
	}
	if left := LoopDevicesLeft(held); len(left) != 0 {
		t.Errorf("detached: left %q", left)
	}
}

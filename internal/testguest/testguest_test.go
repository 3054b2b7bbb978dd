package testguest

import (
	"os/exec"
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

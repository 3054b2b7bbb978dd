package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/internal/rfbtest"
	"hearth/vmm/qemu"
)

// A VM's VGA console is checked the way a person reads it: rfbtest's viewer
// keeps a copy of the framebuffer and reads a text-mode screen back into
// characters with the VGA BIOS's font.

// vmImage is one of the images tools/vm-images.sh builds (disk.img,
// installer.iso): in $HEARTH_VM_IMAGES, else test-artifacts/vm at the module
// root. Without it the test skips, or fails under CI, where `./task test`
// builds it first.
func vmImage(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("HEARTH_VM_IMAGES")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artifacts", "vm")
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no VM test image (%v): run ./task vm-images", err)
		}
		t.Skipf("no VM test image (%v): run ./task vm-images", err)
	}
	return path
}

// handVM is QEMU run by the test itself with qemu.Command's argv, as an
// operator would run it by hand: no containerd, no Hearth.
type handVM struct {
	cmd    *exec.Cmd
	serial *logtest.Buffer // the serial console (QEMU's stdout) and stderr
	exited chan struct{}
	vnc    string // the display's unix socket
}

// runQEMU starts vm; cleanup kills QEMU. It skips where QEMU is missing.
func runQEMU(t testing.TB, vm qemu.VM) *handVM {
	t.Helper()
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skipf("%s not installed (Debian package %s): %v", qemu.Binary, qemu.Package, err)
	}
	argv, err := qemu.Command(vm)
	if err != nil {
		t.Fatal(err)
	}
	h := &handVM{serial: &logtest.Buffer{}, exited: make(chan struct{}), vnc: filepath.Join(vm.RunDir, qemu.VNCSocket)}
	h.cmd = exec.Command(argv[0], argv[1:]...)
	h.cmd.Env = append(os.Environ(), qemu.Env(vm)...)
	h.cmd.Stdout, h.cmd.Stderr = h.serial, h.serial
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }() //nolint:errcheck // ProcessState says how it ended
	t.Cleanup(h.kill)
	return h
}

// kill ends QEMU (a power cut) and waits for it.
func (h *handVM) kill() {
	h.cmd.Process.Kill()
	<-h.exited
}

// screen connects to the display once QEMU listens on its socket.
func (h *handVM) screen(t testing.TB) *rfbtest.Viewer {
	t.Helper()
	v, err := rfbtest.DialDisplay(h.vnc, h.exited, time.Minute)
	if err != nil {
		t.Fatalf("%v:\n%s", err, h.serial)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// shortDir is a temporary directory with a short path: unix socket paths
// are at most 107 bytes.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestVGAText checks the screen reader against QEMU's own rendering:
// SeaBIOS's screen with no drive, every cell recognised, then the test
// disk's kernel console (text mode kept by vga=normal) showing its banner.
func TestVGAText(t *testing.T) {
	t.Run("firmware", func(t *testing.T) {
		vm := runQEMU(t, qemu.VM{Name: "vgatext", SMP: 1, Mem: 32, RunDir: shortDir(t)})
		text := vm.screen(t).WaitText(t, "No bootable device.", 2*time.Minute)
		t.Logf("the screen reads:\n%s", text)
		if !strings.HasPrefix(text, "SeaBIOS (version ") {
			t.Errorf("first line is not SeaBIOS's banner:\n%s", text)
		}
		if strings.Contains(text, "?") {
			t.Errorf("cells no glyph of the font matches ('?'):\n%s", text)
		}
	})
	t.Run("kernel", func(t *testing.T) {
		dir := shortDir(t)
		vm := runQEMU(t, qemu.VM{Name: "vgatext", SMP: 1, Mem: 128, RunDir: dir,
			Drives: []qemu.Drive{{Key: "ide:0:0", Image: vmImage(t, "disk.img"), ReadOnly: true}}})
		text := vm.screen(t).WaitText(t, "hearth-e2e disk", 2*time.Minute)
		t.Logf("the screen reads:\n%s", text)
		if !strings.Contains(text, "SYSLINUX") {
			t.Errorf("the boot loader's line is gone from the screen:\n%s", text)
		}
	})
}

package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"hearth/console"
	"hearth/internal/rfbtest"
	"hearth/storage"
	"hearth/vmm"
)

// keySectorBoot is a boot sector that waits for a key (int 16h), then
// switches VGA to mode 13h (320×200, 256 colours, int 10h ax=0x0013; QEMU's
// std VGA shows it pixel-doubled, 640×400),
// fills the screen with white and halts: a guest that changes its display's
// resolution when the viewer types.
var keySectorBoot = []byte{
	0xfb,       // sti
	0x31, 0xc0, // xor ax, ax
	0xcd, 0x16, // int 16h: wait for a key
	0xb8, 0x13, 0x00, // mov ax, 0x0013
	0xcd, 0x10, // int 10h: mode 13h
	0xb8, 0x00, 0xa0, // mov ax, 0xa000
	0x8e, 0xc0, // mov es, ax
	0x31, 0xff, // xor di, di
	0xb0, 0x0f, // mov al, 15 (white)
	0xb9, 0x00, 0xfa, // mov cx, 64000
	0xf3, 0xaa, // rep stosb
	0xf4,       // hlt
	0xeb, 0xfd, // jmp to hlt
}

// TestVMConsoleVGA: a VM server started through the Manager has its VGA
// display on Hearth's VNC port: a wrong password is refused, the right one
// shows SeaBIOS's text screen (720×400, something drawn); a key typed
// reaches the guest, which switches to mode 13h, and the viewer is told the
// new size (DesktopSize, 640×400: QEMU doubles 320×200) and sees it drawn;
// Ctrl-Alt-Del, as the console page sends it, resets the VM (SeaBIOS's text
// screen again). The API's vnc:port is
// that port.
func TestVMConsoleVGA(t *testing.T) {
	consoles := console.NewRegistry(console.WithListen("127.0.0.1"), console.WithBasePort(0))
	t.Cleanup(func() { consoles.Close() })
	f := newManagerFixture(t, vmm.WithConsoles(consoles))
	if err := f.host.canRunVMs(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	d, err := f.Store.CreateDriveFrom(ctx, storage.Drive{Owner: f.Owner, Name: "boot"}, func(path string) error {
		img := make([]byte, 1<<20)
		copy(img, keySectorBoot)
		img[510], img[511] = 0x55, 0xaa
		return os.WriteFile(path, img, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	id := f.Server(map[string]string{"type": "vm", "ide:0:0": d.ID, "mem": "64", "password": "vgapass", "name": "vga"})
	if err := f.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.m.Stop(context.Background(), id) })
	o, ok := f.m.Observe(ctx, id)
	if !ok || o.VNC == nil {
		t.Fatalf("a running VM with a password has no VNC endpoint: %+v", o)
	}
	addr := net.JoinHostPort(o.VNC.IP, strconv.Itoa(o.VNC.Port))

	if _, err := rfbtest.Dial("tcp", addr, "wrongpw"); !errors.Is(err, rfbtest.ErrRefused) {
		t.Fatalf("a wrong password: %v, want it refused", err)
	}
	c, err := rfbtest.Dial("tcp", addr, "vgapass")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Name != "vga" {
		t.Errorf("desktop name %q, want the server's", c.Name)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute)) // TCG on a shared machine
	if err := waitDrawn(c, 720, 400); err != nil {
		t.Fatalf("SeaBIOS's text screen: %v", err)
	}
	if err := c.Tap(rfbtest.KeyReturn); err != nil {
		t.Fatal(err)
	}
	if err := waitDrawn(c, 640, 400); err != nil {
		t.Fatalf("mode 13h after a key: %v", err)
	}
	// Ctrl-Alt-Del as noVNC sends it (keysyms down, then up in reverse):
	// SeaBIOS's keyboard handler, still the guest's, resets the machine,
	// which boots again into SeaBIOS's text screen.
	for _, k := range []struct {
		sym  uint32
		down bool
	}{{0xffe3, true}, {0xffe9, true}, {0xffff, true}, {0xffff, false}, {0xffe9, false}, {0xffe3, false}} {
		if err := c.KeyEvent(k.sym, k.down); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitDrawn(c, 720, 400); err != nil {
		t.Fatalf("SeaBIOS again after Ctrl-Alt-Del: %v", err)
	}
	t.Logf("desktop sizes the viewer was told: %v", c.Sizes)
}

// waitDrawn reads updates until the desktop is width×height with
// something drawn on it.
func waitDrawn(c *rfbtest.Viewer, width, height int) error {
	err := c.Wait(func(c *rfbtest.Viewer) bool { return c.Width == width && c.Height == height && c.Lit() })
	if err != nil {
		return fmt.Errorf("at %d×%d (sizes %v): %w", c.Width, c.Height, c.Sizes, err)
	}
	return nil
}

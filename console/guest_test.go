package console_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/console"
	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/containerd"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// TestGuestConsole: a real guest (busybox under runc, through containerd)
// gets a console; a VNC viewer types `echo $((6*7))` and the guest's answer
// shows on the rendered terminal and in the framebuffer the viewer decodes.
func TestGuestConsole(t *testing.T) {
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s on PATH: %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and containerd")
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	ns := "hearth-test-console-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	data := vmmtest.DataDir(t)
	idBase, claim, err := containerd.ClaimIDBase(ns, 0) // host ids of its own, as every Hearth's
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Close()
	h, err := containerd.Open(ctx, data, containerd.WithNamespace(ns), containerd.WithRuntime(containerd.RuntimeRunc),
		containerd.WithIDBase(idBase), containerd.WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.Close()
		// The guest's root was a loop device over an image under data.
		for _, l := range testguest.LoopDevicesLeft(func(backing string) bool { return strings.Contains(backing, filepath.Dir(data)) }) {
			t.Errorf("leaked loop device %s", l)
		}
	}()
	id := "console-" + hex.EncodeToString(suffix)
	if err := h.Start(ctx, guest.Spec{ID: id, Hostname: "vnc", CPU: 1000, Mem: 64, Boot: guest.Disk{Device: "hda", Image: testguest.Image(t, 32<<20)}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := h.Delete(ctx, id); err != nil {
			t.Errorf("delete guest: %v", err)
		}
	}()
	stream, ok := h.Console(id)
	if !ok {
		t.Fatal("the guest has no console stream")
	}

	m := console.NewRegistry(console.WithListen("127.0.0.1"), console.WithBasePort(0), console.WithLogger(logtest.Logger(t)))
	defer m.Close()
	ep, err := m.Attach(id, "vnc", stream, "guestpw")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(ep.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	v, err := console.DialTestViewer(conn, "guestpw")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.FullUpdate(); err != nil {
		t.Fatal(err)
	}
	// The guest computes the marker, so the echo of the typed line cannot match it.
	v.Type("echo $((6*7))\n")
	console.WaitScreen(t, m, id, "\n42")
	if err := v.FullUpdate(); err != nil {
		t.Fatal(err)
	}
	v.CheckFramebuffer(t, m, id)

	// The viewer's window sizes the guest's terminal: 100 columns of 8 px
	// and 30 rows of 16 px less the status line.
	v.SetDesktopSize(t, 800, 480)
	v.Type("stty size\n")
	console.WaitScreen(t, m, id, "\n29 100")
	m.Detach(id)
}

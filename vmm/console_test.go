package vmm_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"hearth/console"
	"hearth/vmm"
	"hearth/vmm/guest"
)

// displayWidth and displayHeight are the fake VM display's desktop: a
// terminal console never has this size, so a viewer that sees it is on
// the relay.
const displayWidth, displayHeight = 320, 200

// serveDisplay is a VM's display as QEMU's -vnc unix: socket is one: RFB
// 3.8 asking no authentication, a 320×200 desktop named "QEMU", then it
// reads (and drops) what the viewer sends until the connection closes.
func serveDisplay(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	io.WriteString(conn, "RFB 003.008\n")
	var version [12]byte
	if _, err := io.ReadFull(r, version[:]); err != nil {
		return
	}
	conn.Write([]byte{1, 1}) // one security type: None
	if _, err := r.ReadByte(); err != nil {
		return
	}
	conn.Write([]byte{0, 0, 0, 0})
	if _, err := r.ReadByte(); err != nil { // ClientInit
		return
	}
	init := binary.BigEndian.AppendUint16(nil, displayWidth)
	init = binary.BigEndian.AppendUint16(init, displayHeight)
	init = append(init, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0)
	init = binary.BigEndian.AppendUint32(init, 4)
	conn.Write(append(init, "QEMU"...))
	io.Copy(io.Discard, r)
}

// fakeDisplays gives the fake backend's VM guests serveDisplay, counting
// the viewers that reached it.
func fakeDisplays(f *fixture) chan string {
	dialed := make(chan string, 16)
	f.backend.DialDisplay = func(ctx context.Context, id string) (net.Conn, error) {
		ours, theirs := net.Pipe()
		go serveDisplay(theirs)
		dialed <- id
		return ours, nil
	}
	return dialed
}

// dialedFor is the server whose display a viewer dialed last ("" none):
// a relay dials before it sends ServerInit, so a viewer that has its
// desktop finds its dial here.
func dialedFor(dialed chan string) string {
	select {
	case id := <-dialed:
		return id
	default:
		return ""
	}
}

// view connects a viewer that holds a checked console token (security
// None) to server's console and returns its desktop's size and name.
func view(t *testing.T, reg *console.Registry, server string) (width, height int, name string) {
	t.Helper()
	ours, theirs := net.Pipe()
	defer ours.Close()
	go reg.Serve(theirs, server, console.Peer{Addr: "test", Via: "test", TokenChecked: true})
	ours.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(ours)
	var version [12]byte
	if _, err := io.ReadFull(r, version[:]); err != nil {
		t.Fatalf("server %s console: %v", server, err)
	}
	// net.Pipe is synchronous: write while the other side reads.
	go func() {
		io.WriteString(ours, "RFB 003.008\n")
	}()
	var sec [2]byte
	if _, err := io.ReadFull(r, sec[:]); err != nil || sec != [2]byte{1, 1} {
		t.Fatalf("server %s console: security types %v (%v), want None", server, sec, err)
	}
	go ours.Write([]byte{1})
	var result [4]byte
	if _, err := io.ReadFull(r, result[:]); err != nil || result != [4]byte{} {
		t.Fatalf("server %s console: security result %v (%v)", server, result, err)
	}
	go ours.Write([]byte{1}) // ClientInit: shared
	var init [24]byte
	if _, err := io.ReadFull(r, init[:]); err != nil {
		t.Fatalf("server %s console: ServerInit: %v", server, err)
	}
	nameBytes := make([]byte, binary.BigEndian.Uint32(init[20:]))
	if _, err := io.ReadFull(r, nameBytes); err != nil {
		t.Fatalf("server %s console: desktop name: %v", server, err)
	}
	return int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:])), string(nameBytes)
}

// TestVMConsoleIsItsDisplay: a VM server's console is its guest's display
// relayed (QEMU's VGA), under the server's name, while a container's is
// its terminal; the VM's serial port stays its console log; the console
// goes when the server stops, and a password set while it runs opens the
// relay again.
func TestVMConsoleIsItsDisplay(t *testing.T) {
	reg := console.NewRegistry()
	t.Cleanup(func() { reg.Close() })
	f := newFixture(t, vmm.WithConsoles(reg))
	dialed := fakeDisplays(f)
	ctx := context.Background()

	vm := f.started(map[string]string{"type": "vm", "name": "desk", "password": "secret"})
	ct := f.started(map[string]string{"name": "box", "password": "secret"})
	if w, h, name := view(t, reg, vm); w != displayWidth || h != displayHeight || name != "desk" {
		t.Errorf("VM console: %d×%d %q, want the display's %d×%d under the server's name", w, h, name, displayWidth, displayHeight)
	}
	if got := dialedFor(dialed); got != vm {
		t.Errorf("display dialed for %q, want %s", got, vm)
	}
	if w, h, _ := view(t, reg, ct); w == displayWidth && h == displayHeight {
		t.Errorf("container console: %d×%d, the VM display's size: want its terminal", w, h)
	}
	if id := dialedFor(dialed); id != "" {
		t.Errorf("a container's viewer dialed a display (%s)", id)
	}

	c, _ := f.backend.Console(vm)
	c.Output().Write([]byte("SeaBIOS on the serial port\n"))
	if out, err := f.m.ConsoleOutput(ctx, vm); err != nil || string(out) != "SeaBIOS on the serial port\n" {
		t.Errorf("VM console log %q, %v: want its serial port", out, err)
	}

	if err := f.Set(ctx, f.m, vm, map[string]string{"password": ""}); err != nil {
		t.Fatal(err)
	}
	if reg.HasConsole(vm) {
		t.Fatal("the VM's console stayed after its password was removed")
	}
	if err := f.Set(ctx, f.m, vm, map[string]string{"password": "other"}); err != nil {
		t.Fatal(err)
	}
	if w, h, _ := view(t, reg, vm); w != displayWidth || h != displayHeight {
		t.Errorf("VM console after a new password: %d×%d, want the display's", w, h)
	}
	if got := dialedFor(dialed); got != vm {
		t.Errorf("display dialed for %q, want %s", got, vm)
	}

	if err := f.m.Stop(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if reg.HasConsole(vm) {
		t.Error("a stopped VM still has a console")
	}
}

// TestVMConsoleReadopted: a VM an earlier Hearth left running gets its
// display as console again when the Manager adopts it.
func TestVMConsoleReadopted(t *testing.T) {
	reg := console.NewRegistry()
	t.Cleanup(func() { reg.Close() })
	f := newStore(t)
	dialed := fakeDisplays(f)
	id := f.Server(map[string]string{"type": "vm", "name": "left", "password": "secret", "ide:0:0": f.drive(nil)})
	f.backend.Adopt(guest.Status{Spec: guest.Spec{ID: id, Type: guest.TypeVM, CPU: 1000, Mem: 256,
		Boot: guest.Disk{Device: "ide:0:0", Key: "ide:0:0", Image: "/dev/null"}}, State: guest.Running})
	f.manager(vmm.WithConsoles(reg))
	if w, h, name := view(t, reg, id); w != displayWidth || h != displayHeight || name != "left" {
		t.Errorf("adopted VM console: %d×%d %q, want the display's under the server's name", w, h, name)
	}
	if got := dialedFor(dialed); got != id {
		t.Errorf("display dialed for %q, want %s", got, id)
	}
}

// TestAccelerator: the Manager reports the backend's probe.
func TestAccelerator(t *testing.T) {
	f := newStore(t)
	f.backend.Accel = guest.AccelTCG
	if got := f.manager().Accelerator(); got != guest.AccelTCG {
		t.Errorf("Accelerator() = %q, want %q", got, guest.AccelTCG)
	}
}

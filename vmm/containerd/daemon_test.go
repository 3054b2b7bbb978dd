package containerd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/guest"
)

// TestDaemonRestart kills the private containerd under a running guest: the
// supervisor restarts it, the guest keeps running, and exits are still
// reported from the new daemon's events.
func TestDaemonRestart(t *testing.T) {
	var log logtest.Buffer
	h, _ := openTestHost(t, WithLogger(slog.New(slog.NewTextHandler(io.MultiWriter(&log, logtest.Writer(t)), nil))))
	exits := make(chan guest.Exit, 1)
	h.OnExit(func(e guest.Exit) { exits <- e })
	img := testguest.Image(t, 32<<20)
	id := guestID(t, 0)
	if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
		t.Fatal(err)
	}
	c, _ := h.Console(id)
	shellMarker(t, c, 1)

	old := h.daemon.pid()
	syscall.Kill(old, syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	for h.daemon.pid() == old || h.daemon.waitReady(time.Second) != nil {
		if time.Now().After(deadline) {
			t.Fatal("containerd was not restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	shellMarker(t, c, 2) // the console kept flowing: the shim never left
	// Calls made before the Host has redialled may fail as unavailable.
	for err := h.Kill(context.Background(), id); err != nil; err = h.Kill(context.Background(), id) {
		if !errors.Is(err, guest.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case e := <-exits:
		if e.ID != id {
			t.Errorf("exit of %s", e.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit reported after the daemon restart")
	}
	if !strings.Contains(log.String(), "restarting") {
		t.Errorf("restart not logged:\n%s", log.String())
	}
}

// TestDaemonFailsFast: a containerd that cannot start is reported at once
// with its exit, not after the readiness timeout.
func TestDaemonFailsFast(t *testing.T) {
	needContainerd(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root"), nil, 0o600); err != nil { // root must be a directory
		t.Fatal(err)
	}
	start := time.Now()
	_, err := startDaemon(dir, logtest.Logger(t))
	if !errors.Is(err, guest.ErrUnavailable) || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("start on a broken directory: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s to notice", took)
	}
}

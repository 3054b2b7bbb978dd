package containerd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
	"hearth/internal/testguest"
	"hearth/vmm/guest"
	"hearth/vmm/vmmtest"
)

// TestHelperHost is not a test: TestReadoptAfterKill runs the test binary
// again with HEARTH_VMM_HELPER set, to have a Hearth process it can SIGKILL.
// It opens a Host, starts the guests asked for, and waits to be killed.
func TestHelperHost(t *testing.T) {
	arg := os.Getenv("HEARTH_VMM_HELPER")
	if arg == "" {
		t.Skip("helper process for TestReadoptAfterKill")
	}
	f := strings.Split(arg, ",") // data, namespace, id base, id=image...
	base, _ := strconv.ParseUint(f[2], 10, 32)
	h, err := Open(context.Background(), f[0], WithNamespace(f[1]), WithRuntime(RuntimeRunc), WithIDBase(uint32(base)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for _, guestImage := range f[3:] {
		id, img, _ := strings.Cut(guestImage, "=")
		if err := h.Start(context.Background(), guest.Spec{ID: id, Boot: guest.Disk{Image: img}}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		c, _ := h.Console(id)
		// Output the guest prints while no Hearth runs, read after re-adoption.
		c.Write([]byte("(sleep 2; echo while-away-$((2+3))) &\n"))
	}
	fmt.Println("ready")
	select {}
}

func TestReadoptAfterKill(t *testing.T) {
	needContainerd(t)
	data, ns, base := vmmtest.DataDir(t), testNamespace(t), testIDBase(t)
	// A writable drive boots one guest at a time (its root is grown and
	// mounted by the host): one image each.
	running, ended := guestID(t, 0), guestID(t, 1)
	guests := []string{running + "=" + testguest.Image(t, 32<<20), ended + "=" + testguest.Image(t, 32<<20)}

	// Whatever happens, nothing of the helper's guests or daemon stays.
	var h *Host
	t.Cleanup(func() {
		if h == nil {
			var err error
			if h, err = Open(context.Background(), data, WithNamespace(ns), WithRuntime(RuntimeRunc), WithIDBase(base)); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
		for _, g := range h.Guests(context.Background()) {
			if err := h.Delete(context.Background(), g.Spec.ID); err != nil {
				t.Errorf("delete %s: %v", g.Spec.ID, err)
			}
		}
		assertNoLeaks(t, data, ns, h.client)
		h.Close()
	})

	helper := exec.Command(os.Args[0], "-test.run=^TestHelperHost$", "-test.v")
	helper.Env = append(os.Environ(), "HEARTH_VMM_HELPER="+strings.Join(append([]string{data, ns, strconv.FormatUint(uint64(base), 10)}, guests...), ","))
	out, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "ready") {
		if strings.HasPrefix(lines.Text(), "error") {
			t.Fatal(lines.Text())
		}
	}
	time.Sleep(300 * time.Millisecond) // let the typed line reach the guests
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()

	// The private containerd ends with Hearth (the guests do not).
	pid, _ := os.ReadFile(data + "/containerd/containerd.pid")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd (pid %s) outlived the Hearth that started it", pid)
		}
	}
	// While neither Hearth nor containerd runs, one guest ends.
	procs, err := os.ReadFile("/sys/fs/cgroup/pids/" + ns + "/" + ended + "/cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(procs)) {
		n, _ := strconv.Atoi(p)
		syscall.Kill(n, syscall.SIGKILL)
	}
	time.Sleep(2 * time.Second) // the running guest prints while away

	h, err = Open(context.Background(), data, WithNamespace(ns), WithRuntime(RuntimeRunc), WithIDBase(base), WithLogger(logtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]guest.Status{}
	for _, g := range h.Guests(context.Background()) {
		states[g.Spec.ID] = g
	}
	if s := states[running]; s.State != guest.Running || s.Started.IsZero() || s.Spec.Boot.Image == "" {
		t.Errorf("running guest re-adopted as %+v", s)
	}
	if m := states[running].Spec.IDMap; m.HostID != base || m.Size != guest.IDRange {
		t.Errorf("re-adopted guest's id mapping %+v", m)
	}
	if s := states[ended]; s.State != guest.Stopped || s.ExitStatus != 128+9 {
		t.Errorf("ended guest re-adopted as %+v", s)
	}
	con, _ := h.Console(running)
	waitConsole(t, con, "while-away-5")
	shellMarker(t, con, 99)
}

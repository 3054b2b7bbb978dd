package containerd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"

	"hearth/vmm/guest"
)

// TestRuncStateIsTheInstances: a runc guest's task options put runc's root
// in the directory given (DATA/run/runc), keeping options set before; Kata
// takes none.
func TestRuncStateIsTheInstances(t *testing.T) {
	info := &client.TaskInfo{Options: &options.Options{IoUid: 7}}
	for _, opt := range (runcDriver{}).TaskOptions("/data/run/runc") {
		if err := opt(context.Background(), nil, info); err != nil {
			t.Fatal(err)
		}
	}
	if o := info.Options.(*options.Options); o.Root != "/data/run/runc" || o.IoUid != 7 {
		t.Errorf("runc task options %+v, want Root /data/run/runc and IoUid kept", o)
	}
	fresh := &client.TaskInfo{}
	for _, opt := range (runcDriver{}).TaskOptions("/d") {
		opt(context.Background(), nil, fresh)
	}
	if o, ok := fresh.Options.(*options.Options); !ok || o.Root != "/d" {
		t.Errorf("runc task options without earlier ones: %+v", fresh.Options)
	}
	if opts := newKataDriver().TaskOptions("/d"); len(opts) != 0 {
		t.Errorf("Kata got %d task options", len(opts))
	}
}

// VMs run under runc also where containers run under Kata: QEMU is the VM.
func TestVMsRunUnderRunc(t *testing.T) {
	h := &Host{driver: newKataDriver()}
	if got := h.driverFor(guest.Spec{Type: guest.TypeVM}).Name(); got != RuntimeRunc {
		t.Errorf("a VM under a Kata host runs under %s, want %s", got, RuntimeRunc)
	}
	if got := h.driverFor(guest.Spec{}).Name(); got != RuntimeKata {
		t.Errorf("a container under a Kata host runs under %s, want %s", got, RuntimeKata)
	}
}

// A host without QEMU cannot run VMs, and says which package to install.
func TestVMsNeedQEMU(t *testing.T) {
	defer func(p string) { qemuPath = p }(qemuPath)
	qemuPath = filepath.Join(t.TempDir(), "qemu-system-x86_64")
	err := (&Host{driver: runcDriver{}}).canRunVMs()
	if err == nil || !strings.Contains(err.Error(), "Debian package qemu-system-x86") {
		t.Errorf("without QEMU: %v, want the package named", err)
	}
}

package dash

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/web/eh"
)

func TestHostFacts(t *testing.T) {
	proc := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(proc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("meminfo", "MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n")
	write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
	p := &hostProbe{runtime: "io.containerd.runc.v2", accelerator: "tcg", dataDir: proc, procDir: proc}
	f := p.facts()
	if f.MemTotal != 16000000<<10 || f.MemFree != 8000000<<10 {
		t.Errorf("memory %d/%d", f.MemFree, f.MemTotal)
	}
	if f.CPUFree != 0.8 { // since boot: 800 idle of 1000
		t.Errorf("cpu free since boot %v", f.CPUFree)
	}
	write("stat", "cpu  120 0 100 830 0 0 0 0 0 0\n")
	if f := p.facts(); f.CPUFree != 0.8 {
		t.Errorf("cpu free after too short an interval %v, want the previous 0.8", f.CPUFree)
	}
	write("stat", "cpu  250 0 100 950 0 0 0 0 0 0\n") // 300 more jiffies than the baseline, 150 idle
	if f := p.facts(); f.CPUFree != 0.5 {
		t.Errorf("cpu free %v, want 0.5", f.CPUFree)
	}
	if f.DiskSize == 0 || f.Runtime != "runc containers" || f.VM || !strings.Contains(f.Warning, "software emulation") {
		t.Errorf("facts %+v", f)
	}
	p.accelerator = "kvm"
	if f := p.facts(); !strings.Contains(f.Warning, "Kata runtime is not in use") || !strings.Contains(f.Warning, "under KVM") {
		t.Errorf("with KVM: %q", f.Warning)
	}
	p.accelerator = ""
	if f := p.facts(); !strings.Contains(f.Warning, "install qemu-system-x86") {
		t.Errorf("without QEMU: %q", f.Warning)
	}
	p.runtime = "io.containerd.kata.v2"
	if f := p.facts(); !f.VM || f.Warning != "" || f.Runtime != "Kata VMs" {
		t.Errorf("kata: %+v", f)
	}
	p.runtime = "none"
	if f := p.facts(); !strings.Contains(f.Warning, "No guest runtime") {
		t.Errorf("no runtime: %+v", f)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 10 << 30: "10 GiB", 150 << 20: "150 MiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{10 << 30: "10G", 512 << 20: "512M", 1 << 40: "1T", 1000: "1000", 3 << 10: "3K"} {
		if got := sizeInput(in); got != want {
			t.Errorf("sizeInput(%d) = %q, want %q", in, got, want)
		}
	}
	if got := stripANSI("\x1b[1mbold\x1b[0m\r\nline\x07"); got != "bold\nline" {
		t.Errorf("stripANSI = %q", got)
	}
	keyed := func(key, msg string) error { e := eh.Usagef("%s", msg); e.Key = key; return e }
	if got := fieldFor(keyed("cpu", "key cpu: 50 is below 100 MHz")); got != "cpu" {
		t.Errorf("fieldFor cpu message = %q", got)
	}
	if got := fieldFor(keyed("block:9", "unknown server key block:9")); got != "extra" {
		t.Errorf("fieldFor unknown key = %q", got)
	}
	if got := fieldFor(eh.Busyf("server is busy")); got != "" {
		t.Errorf("fieldFor without a key = %q", got)
	}
}

func TestImagingProgressRendering(t *testing.T) {
	var b strings.Builder
	if err := imagingProgress("boot", "45%", imagingPercent("45%")).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `<progress max="100" value="45" aria-label="Imaging boot">`) || !strings.Contains(b.String(), "imaging 45%") {
		t.Fatalf("imaging 45%%: %s", b.String())
	}
	b.Reset()
	imagingProgress("boot", "queued", 0).Render(context.Background(), &b)
	if !strings.Contains(b.String(), "imaging queued") {
		t.Fatalf("queued: %s", b.String())
	}
	b.Reset()
	imagingProgress("boot", "", 0).Render(context.Background(), &b)
	if b.Len() != 0 {
		t.Fatalf("idle: %q", b.String())
	}
}

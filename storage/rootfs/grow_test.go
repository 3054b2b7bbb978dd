package rootfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// growOK grows img and checks that its ext4 root then fills the room it has
// and is clean.
func growOK(t *testing.T, img string) Root {
	t.Helper()
	root, err := Grow(context.Background(), img, nil)
	if err != nil {
		t.Fatalf("Grow: %v", err)
	}
	target := e2fsPath(img, root)
	if got := fsSize(t, target); got != root.FSSize || root.CanGrow() {
		t.Errorf("root %+v: dumpe2fs says %d bytes, want a filesystem filling the %d bytes", root, got, root.Size)
	}
	runTool(t, "e2fsck", "-f", "-n", target)
	return root
}

// noTools makes the tools Grow would run unreachable, so a Grow that runs
// any fails.
func noTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
}

func TestGrowBareExt4(t *testing.T) {
	needTools(t)
	img := mkfsImage(t, FSExt4, 32*mib, tree(t, true))
	if err := os.Truncate(img, 100*mib); err != nil {
		t.Fatal(err)
	}
	root := growOK(t, img)
	if root.Size != 100*mib || root.FSSize != 100*mib {
		t.Errorf("root %+v, want an ext4 of 100 MiB", root)
	}
	if out := debugfs(t, img, "stat /usr/lib/systemd/systemd"); !strings.Contains(out, "Inode:") {
		t.Error("content lost in the grow")
	}
	t.Run("no-op", func(t *testing.T) {
		before, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		noTools(t)
		again, err := Grow(context.Background(), img, nil)
		if err != nil || again != root {
			t.Fatalf("second Grow = %+v, %v; want %+v without running a tool", again, err, root)
		}
		if after, _ := os.Stat(img); !after.ModTime().Equal(before.ModTime()) {
			t.Error("a no-op Grow wrote the image")
		}
	})
}

func TestGrowPartitioned(t *testing.T) {
	needTools(t)
	if os.Geteuid() != 0 {
		t.Skip("growing ext4 in a partition takes a loop device, which needs root")
	}
	for _, label := range []string{"gpt", "dos"} {
		t.Run(label, func(t *testing.T) {
			fs := mkfsImage(t, FSExt4, 24*mib, tree(t, true))
			first, typ, table := typeESP, typeRootHere, "gpt"
			if label == "dos" {
				first, typ, table = "c", "83", "mbr"
			}
			img := disk(t, label, 64, part{mib: 8, typ: first}, part{typ: typ, fs: fs})
			if err := os.Truncate(img, 200*mib); err != nil {
				t.Fatal(err)
			}
			root := growOK(t, img)
			// The last partition reaches the end: all but the backup GPT
			// (33 sectors) for GPT, the whole disk for MBR.
			end := int64(200 * mib)
			if label == "gpt" {
				end -= 33 * sectorSize
			}
			if root.Table != table || root.Partition != 2 || root.Offset+root.Size != end || root.FSSize < root.Size-mib {
				t.Errorf("root %+v, want partition 2 ending at %d, its filesystem filling it", root, end)
			}
			// sfdisk reads the table back: valid, backup header at the end.
			if out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") || strings.Contains(string(out), "mismatch") || strings.Contains(string(out), "greater than") {
				t.Errorf("sfdisk --verify: %v: %s", err, out)
			}
			dump := runTool(t, "sfdisk", "--dump", img)
			if label == "gpt" && !strings.Contains(dump, "last-lba: 409566") {
				t.Errorf("GPT not moved to the end of the 200 MiB disk:\n%s", dump)
			}
			if out := debugfs(t, e2fsPath(img, root), "stat /usr/lib/systemd/systemd"); !strings.Contains(out, "Inode:") {
				t.Error("content lost in the grow")
			}
			noTools(t)
			if again, err := Grow(context.Background(), img, nil); err != nil || again != root {
				t.Errorf("second Grow = %+v, %v; want %+v without running a tool", again, err, root)
			}
		})
	}
}

// TestGrowNotLast leaves a root that is not the last partition alone, but
// moves the GPT's backup header to the end of the grown disk.
func TestGrowNotLast(t *testing.T) {
	needTools(t)
	fs := mkfsImage(t, FSExt4, 16*mib, tree(t, true))
	img := disk(t, "gpt", 64, part{mib: 16, typ: typeRootHere, fs: fs}, part{typ: typeLinux})
	if err := os.Truncate(img, 128*mib); err != nil {
		t.Fatal(err)
	}
	root, err := Grow(context.Background(), img, nil)
	if err != nil {
		t.Fatal(err)
	}
	if root.Partition != 1 || root.Size != 16*mib || root.FSSize != 16*mib {
		t.Errorf("root %+v, want partition 1 unchanged", root)
	}
	if dump := runTool(t, "sfdisk", "--dump", img); !strings.Contains(dump, "last-lba: 262110") {
		t.Errorf("GPT not moved to the end of the 128 MiB disk:\n%s", dump)
	}
}

// TestGrowInUse refuses a drive a loop device holds.
func TestGrowInUse(t *testing.T) {
	needTools(t)
	if os.Geteuid() != 0 {
		t.Skip("attaching a loop device needs root")
	}
	img := mkfsImage(t, FSExt4, 16*mib, tree(t, true))
	dev := strings.TrimSpace(runTool(t, "losetup", "--find", "--show", "--read-only", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if err := os.Truncate(img, 32*mib); err != nil {
		t.Fatal(err)
	}
	if _, err := Grow(context.Background(), img, nil); !errors.Is(err, ErrInUse) || strings.Contains(err.Error(), "/") {
		t.Errorf("err = %v, want ErrInUse naming no path", err)
	}
}

// TestGrowMounted grows mounted xfs and btrfs roots.
func TestGrowMounted(t *testing.T) {
	needTools(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	for _, fs := range []string{FSXFS, FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			if err := KernelSupports(fs); err != nil {
				t.Skipf("the kernel has no %s: %v", fs, err)
			}
			img := mkfsImage(t, fs, 320*mib, tree(t, true))
			if err := os.Truncate(img, 640*mib); err != nil {
				t.Fatal(err)
			}
			root, err := Grow(context.Background(), img, nil)
			if err != nil || !root.CanGrow() || root.FSSize != 320*mib {
				t.Fatalf("Grow = %+v, %v; want a 320 MiB %s that can grow", root, err, fs)
			}
			dir := t.TempDir()
			runTool(t, "mount", "-t", fs, "-o", "loop,nodev,nosuid", img, dir)
			err = GrowMounted(context.Background(), root, dir)
			runTool(t, "umount", dir)
			if err != nil {
				t.Fatal(err)
			}
			after := findRootOK(t, img)
			if after.FSSize != 640*mib || after.CanGrow() {
				t.Errorf("after GrowMounted: %+v, want 640 MiB", after)
			}
		})
	}
}

func BenchmarkGrowNoop(b *testing.B) {
	needTools(b)
	fs := mkfsImage(b, FSExt4, 24*mib, tree(b, true))
	img := disk(b, "gpt", 64, part{mib: 8, typ: typeESP}, part{typ: typeRootHere, fs: fs})
	if _, err := Grow(context.Background(), img, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Grow(context.Background(), img, nil); err != nil {
			b.Fatal(err)
		}
	}
}

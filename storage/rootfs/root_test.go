package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GPT partition types the tests lay out (sfdisk names them by GUID).
const (
	typeLinux    = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	typeESP      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootHere = "root" // replaced by this architecture's root type
)

func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("needs %s from Debian's %s (./task deps installs it): %v", tool, pkg, err)
	}
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree makes a root-filesystem tree: a Debian-like merged /usr whose
// /sbin/init is a symbolic link, or only /etc when withInit is false.
func tree(t testing.TB, withInit bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !withInit {
		return dir
	}
	for _, d := range []string{"usr/sbin", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/systemd/systemd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"sbin": "usr/sbin", "usr/sbin/init": "../lib/systemd/systemd"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mkfsImage makes a filesystem of type fs, size bytes, holding tree.
func mkfsImage(t testing.TB, fs string, size int64, tree string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), fs+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	switch fs {
	case FSExt4:
		runTool(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, img)
	case FSXFS:
		needTool(t, "mkfs.xfs", "xfsprogs")
		// mkfs.xfs fills a filesystem from a prototype file only; the tests
		// that need its content mount it.
		runTool(t, "mkfs.xfs", "-q", "-f", img)
	case FSBtrfs:
		needTool(t, "mkfs.btrfs", "btrfs-progs")
		runTool(t, "mkfs.btrfs", "-q", "-f", "--rootdir", tree, img)
	}
	return img
}

// part is one partition of a test disk: its size in MiB (0: the rest), its
// type (a GPT GUID, typeRootHere, or an MBR hex type) and the filesystem
// image copied into it ("" for none).
type part struct {
	mib int64
	typ string
	fs  string
}

// disk lays out a disk of sizeMiB with an MBR ("dos") or GPT label and the
// parts (each starting on a MiB) and returns its path.
func disk(t testing.TB, label string, sizeMiB int64, parts ...part) string {
	t.Helper()
	needTool(t, "sfdisk", "fdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(sizeMiB * mib); err != nil {
		t.Fatal(err)
	}
	script := "label: " + label + "\n"
	for _, p := range parts {
		typ := p.typ
		if typ == typeRootHere {
			typ = string(gptRootTypes[runtime.GOARCH])
		}
		size := ""
		if p.mib > 0 {
			size = strconv.FormatInt(p.mib, 10) + "M"
		}
		script += fmt.Sprintf(",%s,%s\n", size, typ)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	starts := partitionStarts(t, img)
	for i, p := range parts {
		if p.fs == "" {
			continue
		}
		data, err := os.ReadFile(p.fs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, starts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// partitionStarts reads the partitions' offsets back from sfdisk --dump.
func partitionStarts(t testing.TB, img string) []int64 {
	t.Helper()
	var starts []int64
	for line := range strings.Lines(runTool(t, "sfdisk", "--dump", img)) {
		_, rest, ok := strings.Cut(line, "start=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.Split(rest, ",")[0]), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, n*sectorSize)
	}
	return starts
}

func findRootOK(t *testing.T, img string) Root {
	t.Helper()
	root, err := FindRoot(context.Background(), img, nil)
	if err != nil {
		t.Fatalf("FindRoot: %v", err)
	}
	return root
}

func TestFindRootBare(t *testing.T) {
	needTools(t)
	for _, fs := range []string{FSExt4, FSXFS, FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			if fs != FSExt4 && !kernelLists(fs) && KernelSupports(fs) != nil {
				t.Skipf("the kernel has no %s: %v", fs, KernelSupports(fs))
			}
			const size = 320 * mib // xfs wants 300 MiB at least
			img := mkfsImage(t, fs, size, tree(t, true))
			root := findRootOK(t, img)
			if root.FS != fs || root.Offset != 0 || root.Size != size || root.Table != "" || root.FSSize != size || root.CanGrow() {
				t.Errorf("root %+v, want %s on the whole %d-byte drive, filling it", root, fs, int64(size))
			}
		})
	}
}

func TestFindRootMBR(t *testing.T) {
	needTools(t)
	fs := mkfsImage(t, FSExt4, 16*mib, tree(t, true))
	img := disk(t, "dos", 64, part{mib: 8, typ: "c"}, part{mib: 24, typ: "83", fs: fs}, part{typ: "82"})
	root := findRootOK(t, img)
	want := Root{FS: FSExt4, Offset: 9 * mib, Size: 24 * mib, FSSize: 16 * mib, Table: "mbr", Partition: 2}
	if root.String() != want.String() || root.Offset != want.Offset || root.Size != want.Size || root.FSSize != want.FSSize {
		t.Errorf("root %+v, want %+v", root, want)
	}
}

func TestFindRootGPT(t *testing.T) {
	needTools(t)
	withInit := mkfsImage(t, FSExt4, 16*mib, tree(t, true))
	without := mkfsImage(t, FSExt4, 16*mib, tree(t, false))
	for _, tc := range []struct {
		name  string
		parts []part
		want  int // partition number
	}{
		// The root type wins over a Linux partition holding init.
		{"root type", []part{{mib: 8, typ: typeESP}, {mib: 16, typ: typeLinux, fs: withInit}, {mib: 16, typ: typeRootHere, fs: without}}, 3},
		// Among Linux data partitions, the one with /sbin/init, though smaller.
		{"holds init", []part{{mib: 8, typ: typeESP}, {mib: 32, typ: typeLinux, fs: without}, {mib: 16, typ: typeLinux, fs: withInit}}, 3},
		// Neither has init: the largest.
		{"largest", []part{{mib: 16, typ: typeLinux, fs: without}, {mib: 32, typ: typeLinux, fs: without}}, 2},
		// The only Linux partition with a filesystem, whatever it holds.
		{"only one", []part{{mib: 16, typ: typeESP, fs: withInit}, {mib: 16, typ: typeLinux, fs: without}, {mib: 8, typ: typeLinux}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := disk(t, "gpt", 64, tc.parts...)
			root := findRootOK(t, img)
			starts := partitionStarts(t, img)
			if root.Table != "gpt" || root.Partition != tc.want || root.FS != FSExt4 || root.Offset != starts[tc.want-1] ||
				root.Size != tc.parts[tc.want-1].mib*mib {
				t.Errorf("root %+v, want ext4 in partition %d at %d", root, tc.want, starts[tc.want-1])
			}
		})
	}
}

// TestFindRootMounts tells xfs and btrfs partitions apart by mounting them.
func TestFindRootMounts(t *testing.T) {
	needTools(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting xfs and btrfs to look for /sbin/init needs root")
	}
	for _, fs := range []string{FSXFS, FSBtrfs} {
		if err := KernelSupports(fs); err != nil {
			t.Skipf("the kernel has no %s: %v", fs, err)
		}
	}
	empty := mkfsImage(t, FSXFS, 300*mib, "")
	withInit := mkfsImage(t, FSBtrfs, 128*mib, tree(t, true))
	img := disk(t, "gpt", 450, part{mib: 310, typ: typeLinux, fs: empty}, part{mib: 130, typ: typeLinux, fs: withInit})
	start := time.Now()
	root := findRootOK(t, img)
	t.Logf("FindRoot mounted the partitions in %v", time.Since(start))
	if root.Partition != 2 || root.FS != FSBtrfs {
		t.Errorf("root %+v, want btrfs in partition 2", root)
	}
	assertNoLoop(t, img)
}

func TestFindRootBadInput(t *testing.T) {
	needTools(t)
	noFS := disk(t, "gpt", 16, part{mib: 8, typ: typeLinux})
	garbled := disk(t, "gpt", 16, part{mib: 8, typ: typeLinux})
	f, err := os.OpenFile(garbled, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Break both GPT headers' checksums (the protective MBR stays).
	for _, off := range []int64{sectorSize + 24, 16*mib - sectorSize + 24} {
		if _, err := f.WriteAt([]byte("garbage"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	cut := disk(t, "gpt", 32, part{mib: 8, typ: typeESP}, part{typ: typeRootHere, fs: mkfsImage(t, FSExt4, 16*mib, tree(t, true))})
	if err := os.Truncate(cut, 24*mib); err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 4*mib)
	for i := range garbage {
		garbage[i] = byte(i*7 + i/4096)
	}
	for _, tc := range []struct {
		name, img, want string
	}{
		{"no filesystem", noFS, "no Linux partition of the gpt partition table holds an ext4, xfs or btrfs filesystem"},
		{"garbled GPT", garbled, "GPT partition table unreadable"},
		{"shrunk", cut, "gpt root partition 2 ends past the end of the drive"},
		{"garbage", writeFile(t, garbage), "no ext4, xfs or btrfs filesystem and no partition table"},
		{"empty", writeFile(t, nil), "no ext4, xfs or btrfs filesystem and no partition table"},
		{"missing", filepath.Join(t.TempDir(), "missing"), "cannot open the drive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FindRoot(context.Background(), tc.img, nil)
			if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNoRoot saying %q", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "/") || strings.Contains(msg, "\n") {
				t.Errorf("err %q names a path or spans lines", msg)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestKernelSupports(t *testing.T) {
	list := []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\n\txfs\n")
	for fs, want := range map[string]bool{"ext4": true, "xfs": true, "tmpfs": true, "btrfs": false, "ext": false} {
		if got := filesystemsList(list, fs); got != want {
			t.Errorf("filesystemsList(%s) = %v, want %v", fs, got, want)
		}
	}
	err := KernelSupports("hearthnosuchfs")
	if !errors.Is(err, ErrNoKernelSupport) || !strings.HasPrefix(err.Error(), "hearthnosuchfs root: ") {
		t.Errorf("err = %v, want ErrNoKernelSupport for hearthnosuchfs", err)
	}
	if err := KernelSupports(FSExt4); err != nil {
		t.Errorf("ext4: %v", err)
	}
}

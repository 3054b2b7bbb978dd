// Package testguest builds the guest root filesystem that Hearth's tests boot:
// Debian's static busybox with a busybox init whose console is an interactive
// shell, packed into an ext4 image by mkfs.ext4 -d. Tests that need it skip
// with a message where busybox-static or e2fsprogs is missing.
// LoopDevicesLeft is how tests check that no loop device of theirs is left.
package testguest

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Busybox is where Debian's busybox-static installs the binary.
const Busybox = "/bin/busybox"

// InitTab makes busybox init run a login-less shell on the console, respawn
// it, and say so when it is asked to power off (SIGTERM, SIGUSR2).
const InitTab = `::sysinit:/bin/mount -t proc proc /proc
::sysinit:/bin/mount -t sysfs sys /sys
::respawn:-/bin/sh
::shutdown:/bin/echo hearth-guest: shutting down
`

// Options change the tree Tree builds.
type Option func(*options)

type options struct {
	noInit     bool
	initTab    string
	initScript string
}

// WithoutInit leaves /sbin/init out, so Hearth must fall back to /bin/sh.
func WithoutInit() Option { return func(o *options) { o.noInit = true } }

// WithInitScript makes /sbin/init this shell script instead of busybox init.
func WithInitScript(script string) Option { return func(o *options) { o.initScript = script } }

// WithInitTab gives busybox init this inittab instead of InitTab.
func WithInitTab(tab string) Option { return func(o *options) { o.initTab = tab } }

// Tree writes the busybox root filesystem into a new directory and returns it.
func Tree(t testing.TB, opts ...Option) string {
	t.Helper()
	o := options{initTab: InitTab}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := os.Stat(Busybox); err != nil {
		t.Skipf("guest image needs busybox-static (%s): %v", Busybox, err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(Busybox, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if (o.noInit || o.initScript != "") && (applet == "sbin/init" || applet == "linuxrc") {
			continue
		}
		link := filepath.Join(root, applet)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	switch {
	case o.initScript != "":
		if err := os.WriteFile(filepath.Join(root, "sbin/init"), []byte(o.initScript), 0o755); err != nil {
			t.Fatal(err)
		}
	case !o.noInit:
		files["etc/inittab"] = o.initTab
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Image packs a busybox tree (Tree's options apply) into a new ext4 image
// file of size bytes and returns its path.
func Image(t testing.TB, size int64, opts ...Option) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skipf("guest image needs e2fsprogs (mkfs.ext4): %v", err)
	}
	root := Tree(t, opts...)
	img := filepath.Join(t.TempDir(), "guest.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", root, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	return img
}

// Tarball writes the busybox tree as an uncompressed tar archive (the form
// `hearth image import` takes) and returns its path.
func Tarball(t testing.TB, opts ...Option) string {
	t.Helper()
	root := Tree(t, opts...)
	path := filepath.Join(t.TempDir(), "guest.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		target := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

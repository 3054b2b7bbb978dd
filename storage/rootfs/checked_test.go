package rootfs

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"
)

// checkedImage is a fresh ext4 image, its root, and a record that has
// seen it pass a check of a writable drive.
func checkedImage(t *testing.T) (string, Root, *Checked) {
	t.Helper()
	img := checkImage(t, FSExt4)
	root, err := FindRoot(context.Background(), img, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(ctimeMargin) // mkfs has just written it
	c := NewChecked()
	c.Passed(img, root, false)
	if !c.Unchanged(img, root, false) || !c.Unchanged(img, root, true) {
		t.Fatal("an image checked clean is not unchanged right after")
	}
	return img, root, c
}

// rewriteByte writes the byte at off of the file at path back as it is.
func rewriteByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCheckedSeesEveryWrite: once anything writes the image — even the
// same byte back, right after the record, with its mtime put back
// afterwards — or another file takes its name, it is no longer unchanged.
func TestCheckedSeesEveryWrite(t *testing.T) {
	needTools(t)
	for name, change := range map[string]func(t *testing.T, img string){
		"write": func(t *testing.T, img string) { rewriteByte(t, img, 4096) },
		"write, mtime put back": func(t *testing.T, img string) {
			info, _ := os.Stat(img)
			rewriteByte(t, img, 4096)
			if err := os.Chtimes(img, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		"grown": func(t *testing.T, img string) {
			info, _ := os.Stat(img)
			if err := os.Truncate(img, info.Size()+1<<20); err != nil {
				t.Fatal(err)
			}
		},
		"replaced by a copy": func(t *testing.T, img string) {
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(img+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(img+".new", img); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			img, root, c := checkedImage(t)
			change(t, img)
			for _, ro := range []bool{true, false} {
				if c.Unchanged(img, root, ro) {
					t.Errorf("read-only %t: unchanged after the change", ro)
				}
			}
		})
	}
}

// TestCheckedRecordsOnlyWhatItCanTellApart: a check that passed just after
// a write is not recorded (a write in the same clock tick would look the
// same); a read-only check, which replays no journal, is good for
// read-only starts only; another root in the same image is not the one
// recorded.
func TestCheckedRecordsOnlyWhatItCanTellApart(t *testing.T) {
	img, root, c := checkedImage(t)
	rewriteByte(t, img, 4096)
	c.Passed(img, root, false)
	if c.Unchanged(img, root, false) {
		t.Error("a check passed within the change time's margin was recorded")
	}
	time.Sleep(ctimeMargin)
	c.Passed(img, root, true)
	if !c.Unchanged(img, root, true) || c.Unchanged(img, root, false) {
		t.Errorf("after a read-only check: read-only %t, writable %t; want true, false",
			c.Unchanged(img, root, true), c.Unchanged(img, root, false))
	}
	other := root
	other.Offset = 1 << 20
	if c.Unchanged(img, other, true) {
		t.Error("another root of the image counts as checked")
	}
}

// TestCheckedUnmounted: an ext4 unmounted clean is recorded good for any
// start, even when the unmount wrote it a moment ago (the record waits out
// the margin); one whose journal needs replaying, or with errors the
// kernel recorded, is not (and forgets what was recorded before).
func TestCheckedUnmounted(t *testing.T) {
	needTools(t)
	img := checkImage(t, FSExt4)
	root, err := FindRoot(context.Background(), img, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecked()
	if err := c.Unmounted(img, root); err != nil || !c.Unchanged(img, root, false) {
		t.Fatalf("clean ext4 just written: Unmounted %v, unchanged %t", err, c.Unchanged(img, root, false))
	}
	for name, set := range map[string]struct {
		off     int
		bits    uint32
		size    int
		wantErr error
	}{
		"journal to replay": {off: ext4FeatureIncompat, bits: ext4NeedsRecovery, size: 4},
		"errors recorded":   {off: ext4State, bits: ext4StateErrors, size: 2, wantErr: ErrDamaged},
		"error count":       {off: ext4ErrorCount, bits: 1, size: 4, wantErr: ErrDamaged},
	} {
		t.Run(name, func(t *testing.T) {
			img := checkImage(t, FSExt4)
			c := NewChecked()
			if err := c.Unmounted(img, root); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, set.size)
			at := int64(ext4SuperblockOffset + set.off)
			if _, err := f.ReadAt(b, at); err != nil {
				t.Fatal(err)
			}
			if set.size == 2 {
				binary.LittleEndian.PutUint16(b, binary.LittleEndian.Uint16(b)|uint16(set.bits))
			} else {
				binary.LittleEndian.PutUint32(b, binary.LittleEndian.Uint32(b)|set.bits)
			}
			if _, err := f.WriteAt(b, at); err != nil {
				t.Fatal(err)
			}
			f.Close()
			err = c.Unmounted(img, root)
			if err == nil || (set.wantErr != nil && !errors.Is(err, set.wantErr)) {
				t.Errorf("Unmounted: %v, want an error (%v)", err, set.wantErr)
			}
			if c.Unchanged(img, root, true) {
				t.Error("recorded clean")
			}
		})
	}
}

// TestCheckedMargin: a change time without nanoseconds (a filesystem that
// keeps whole seconds) needs seconds, not milliseconds, before a later
// change is sure to look different.
func TestCheckedMargin(t *testing.T) {
	if m := margin(int64(1_700_000_000 * time.Second)); m < time.Second {
		t.Errorf("whole-second change time: margin %v, want at least a second", m)
	}
	if m := margin(int64(1_700_000_000*time.Second) + 123_456_789); m != ctimeMargin {
		t.Errorf("nanosecond change time: margin %v, want %v", m, ctimeMargin)
	}
}

package testguest

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LoopDevicesLeft lists the loop devices ("loopN → backing file") whose
// backing file satisfies held, once the kernel has had a moment to let them
// go: it releases a loop device after its last user (autoclear, or a detach
// while the device is still open) in a work item (Linux ≥ 6.4), after the
// umount or close that ended the use has returned. Tests call it to assert
// that nothing of theirs is left.
func LoopDevicesLeft(held func(backing string) bool) []string {
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			backing := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
			if backing != "" && held(backing) {
				left = append(left, filepath.Base(filepath.Dir(filepath.Dir(f)))+" → "+backing)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

package vmmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// DataDir is a new data directory for a Hearth whose guests are
// unprivileged: runc mounts a guest's root below it from inside the
// guest's user namespace, so every directory above it must be searchable
// by others (the test's own temporary parent is 0700).
func DataDir(t testing.TB) string {
	t.Helper()
	data := t.TempDir()
	if err := os.Chmod(filepath.Dir(data), 0o711); err != nil {
		t.Fatal(err)
	}
	return data
}

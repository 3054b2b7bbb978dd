// Package hostpath keeps host paths out of what clients see: an error that
// reaches an API answer, a page or a server's recorded reason names the
// drive or file, never where it lives on the host (the log keeps the
// detail). A host path is an absolute path of two or more components under
// one of the host's top-level directories (/var, /run, /tmp, …) or under
// one registered with Register (Hearth's DATA); paths of the API (/servers/…,
// a page asked for) and of a guest's devices (/dev/…) are left alone.
package hostpath

import (
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

var pathPattern = regexp.MustCompile(`/(?:[A-Za-z0-9._+@~-]+/)+[A-Za-z0-9._+@~-]*`)

var (
	mu    sync.RWMutex
	roots = map[string]bool{
		"bin": true, "boot": true, "etc": true, "home": true, "lib": true, "lib64": true, "media": true,
		"mnt": true, "opt": true, "proc": true, "root": true, "run": true, "sbin": true, "srv": true,
		"sys": true, "tmp": true, "usr": true, "var": true,
	}
)

// Register makes paths under dir's top-level directory host paths too
// (DATA may be anywhere, e.g. /data/hearth).
func Register(dir string) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(abs, "/"), "/")
	if first != "" && first != "servers" && first != "drives" && first != "resources" && first != "users" && first != "dev" {
		mu.Lock()
		roots[first] = true
		mu.Unlock()
	}
}

// Redact replaces each host path in s by "…/" and its last component.
func Redact(s string) string {
	if !strings.Contains(s, "/") {
		return s
	}
	mu.RLock()
	defer mu.RUnlock()
	return pathPattern.ReplaceAllStringFunc(s, func(p string) string {
		first, _, _ := strings.Cut(p[1:], "/")
		if !roots[first] {
			return p
		}
		return "…/" + p[strings.LastIndex(p, "/")+1:]
	})
}

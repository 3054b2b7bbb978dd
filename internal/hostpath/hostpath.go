// Package hostpath keeps host paths out of what clients see: an error that
// reaches an API answer, a page or a server's recorded reason names the
// drive or file, never where it lives on the host (the log keeps the
// detail). A path is any absolute path of two or more components, except
// those that name API resources (/servers/…, /drives/…) or a guest's own
// devices (/dev/…).
package hostpath

import (
	"regexp"
	"strings"
)

var pathPattern = regexp.MustCompile(`/(?:[A-Za-z0-9._+@~-]+/)+[A-Za-z0-9._+@~-]*`)

// notHost are first components of paths that are not host paths.
var notHost = map[string]bool{
	"servers": true, "drives": true, "resources": true, "users": true, "ui": true, "dev": true,
}

// Redact replaces each host path in s by "…/" and its last component.
func Redact(s string) string {
	if !strings.Contains(s, "/") {
		return s
	}
	return pathPattern.ReplaceAllStringFunc(s, func(p string) string {
		first, _, _ := strings.Cut(p[1:], "/")
		if notHost[first] {
			return p
		}
		last := p[strings.LastIndex(p, "/")+1:]
		return "…/" + last
	})
}

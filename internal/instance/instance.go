// Package instance names one Hearth among several on a host. Everything a
// Hearth names on the host outside its data directory is derived from its
// instance name, so that two Hearths never take, reap or tear down each
// other's guests:
//
//   - containerd namespace and the guests' cgroup parent: Prefixed(name),
//     "hearth" for the instance "hearth", else "hearth-NAME" (the
//     nftables tables of its firewall are named the same);
//   - runc's state: DATA/run/runc/NAMESPACE (inside DATA, so per instance
//     anyway);
//   - bridges and veths: see hearth/vmm/network.Names;
//   - host ids of its guests: a window of its own (hearth/vmm/containerd,
//     hostids.go), recorded in its database.
//
// The default name is derived from DATA (FromData) at the first serve and
// then recorded in DATA's database, so moving DATA keeps the names. The
// instance "hearth" (DATA /var/lib/hearth, and every database from before
// instances) keeps the names Hearth always used, so an upgrade re-adopts
// its running guests. Claim makes sure no two running Hearths share a name.
package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"syscall"
)

// Legacy is the name of the instance whose names are those Hearth used
// before instances: the default for DefaultData.
const Legacy = "hearth"

// DefaultData is Hearth's default data directory.
const DefaultData = "/var/lib/hearth"

// MaxLen bounds a name: with "hearth-" it stays a valid containerd
// namespace, cgroup and nftables table name with room to spare.
const MaxLen = 32

// ErrInvalid marks a name that breaks the rules of Check.
var ErrInvalid = errors.New("invalid instance name")

// ErrInUse marks a name another running Hearth on the host has claimed.
var ErrInUse = errors.New("instance in use")

var pattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Check accepts lower-case letters and digits in words joined by single
// dashes, at most MaxLen characters.
func Check(name string) error {
	if len(name) > MaxLen || !pattern.MatchString(name) {
		return fmt.Errorf("%w: %q (want lower-case letters and digits, words joined by '-', at most %d characters)", ErrInvalid, name, MaxLen)
	}
	return nil
}

// FromData is the default name of the instance serving dir: Legacy for
// DefaultData, else 8 hex digits of the SHA-256 of dir's absolute path
// (short, stable, and different for every directory on the host).
func FromData(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if abs == DefaultData {
		return Legacy, nil
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:4]), nil
}

// Prefixed is the name the instance's containerd namespace, cgroup parent
// and firewall tables have: "hearth" for Legacy, else "hearth-" + name.
func Prefixed(name string) string {
	if name == Legacy {
		return Legacy
	}
	return "hearth-" + name
}

// Claim makes name this process's until the returned Closer is closed or
// the process ends (however it ends): it binds the abstract unix socket
// "@hearth/instance/NAME" (abstract sockets are host-wide within a network
// namespace and leave no file behind). A name another running Hearth holds
// gives ErrInUse.
func Claim(name string) (io.Closer, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@hearth/instance/" + name, Net: "unixgram"})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: another Hearth on this host runs as instance %q; give each its own --instance", ErrInUse, name)
	}
	if err != nil {
		return nil, fmt.Errorf("claim instance %q: %w", name, err)
	}
	return c, nil
}

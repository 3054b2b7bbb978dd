package guest

import "errors"

// Sentinel errors. Every error a backend or the Manager returns about a guest wraps one of
// them, so callers (web/api) map them to an API answer with errors.Is.
var (
	// ErrUnavailable: no guest runtime (containerd unreachable or not configured).
	ErrUnavailable = errors.New("guest runtime unavailable")
	// ErrNotFound: no guest with this id.
	ErrNotFound = errors.New("no such guest")
	// ErrRunning: the guest exists already, or is running where it must not be.
	ErrRunning = errors.New("guest is running")
	// ErrNotRunning: the guest is not running (or not paused for Resume).
	ErrNotRunning = errors.New("guest is not running")
	// ErrBusy: a drive the guest needs is in use elsewhere, or the guest is
	// powering off.
	ErrBusy = errors.New("busy")
	// ErrInvalid: the guest specification is wrong (a key or value named in the message).
	ErrInvalid = errors.New("invalid guest specification")
	// ErrBootDrive: the boot drive is missing or holds no root filesystem
	// Hearth can mount.
	ErrBootDrive = errors.New("unusable boot drive")
)

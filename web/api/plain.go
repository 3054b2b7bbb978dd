package api

import (
	"context"
	"strings"

	"hearth/storage"
	"hearth/vmm"
	"hearth/web/eh"
)

// sentinels are the class errors storage and vmm wrap their refusals
// around. Their words are for code (errors.Is), not for the person reading
// the refusal: plain takes them off the end of the message.
var sentinels = []error{
	storage.ErrNotFound, storage.ErrExists, storage.ErrBusy, storage.ErrInvalid, storage.ErrFull,
	storage.ErrAuth, storage.ErrTooLarge, storage.ErrLimit,
	vmm.ErrUnavailable, vmm.ErrNotFound, vmm.ErrRunning, vmm.ErrNotRunning, vmm.ErrBusy,
	vmm.ErrInvalid, vmm.ErrBootDrive,
}

// plain is err's text as a person reads it: storage and vmm word their
// refusals as sentences ending in ": " and the sentinel they wrap ("web1
// boot is attached to running server web1 — stop web1 first: busy"); plain
// drops that tail, which the API says with its X-Elastic-Error word instead.
// A message that is nothing but a sentinel stays as it is.
func plain(err error) string {
	msg := err.Error()
	for trimmed := true; trimmed; {
		trimmed = false
		for _, s := range sentinels {
			if rest, ok := strings.CutSuffix(msg, ": "+s.Error()); ok && rest != "" {
				msg, trimmed = rest, true
			}
		}
	}
	return msg
}

// classed is err as an API error of the class made by newf (eh.Busyf, ...),
// with plain's text and err kept as the cause for errors.Is.
func classed(newf func(format string, args ...any) *eh.Error, err error) *eh.Error {
	e := newf("%s", plain(err))
	e.Err = err
	return e
}

// serverLabel names server id in a message (its name), by UUID when it
// cannot be read.
func (s *Service) serverLabel(ctx context.Context, id string) string {
	srv, err := s.store.Server(ctx, id)
	if err != nil {
		return id
	}
	return srv.Label()
}

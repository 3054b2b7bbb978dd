package api

import (
	"context"
	"strings"

	"hearth/storage"
	"hearth/vmm"
	"hearth/web/eh"
)

// tails is the message table's one rule: what the text of each sentinel
// that storage and vmm wrap their refusals around becomes at the end of a
// message. Most say nothing a person needs — the X-Elastic-Error word says
// it — and go ("web1 boot is attached to running server web1 — stop web1
// first: busy"); "not found" and "already exists" finish the sentence
// ("drive x: not found" → "drive x not found"). Sentinels not listed (no
// capacity left, bad credentials, no guest runtime) stay as they read.
var tails = []struct {
	err     error
	becomes string
}{
	{storage.ErrNotFound, " not found"}, {storage.ErrExists, " already exists"},
	{storage.ErrBusy, ""}, {storage.ErrInvalid, ""}, {storage.ErrTooLarge, ""}, {storage.ErrLimit, ""},
	{vmm.ErrRunning, ""}, {vmm.ErrNotRunning, ""}, {vmm.ErrBusy, ""}, {vmm.ErrInvalid, ""}, {vmm.ErrBootDrive, ""},
}

// plain is err's text as a person reads it: tails applied to its end, as
// often as wrapping repeated them. A message that is nothing but a sentinel
// stays as it is.
func plain(err error) string {
	msg := err.Error()
	for again := true; again; {
		again = false
		for _, t := range tails {
			if rest, ok := strings.CutSuffix(msg, ": "+t.err.Error()); ok && rest != "" {
				msg, again = rest+t.becomes, t.becomes == ""
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

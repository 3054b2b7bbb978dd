// Package api implements the ElasticHosts API of Hearth: an operations layer
// (Service, one method per operation, scoped to the calling user, errors as
// *eh.Error) and a thin HTTP layer over it (Handler). The dashboard calls the
// same Service, so both answer with the same validation and messages.
//
// Guests are run by whatever implements Guests (vmm.Manager); without one,
// lifecycle calls answer 500 system and everything else works.
package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"hearth/storage"
	"hearth/vmm"
	"hearth/web/eh"
)

// Guests runs servers. Every method takes the server UUID; errors wrap vmm
// sentinels (ErrUnavailable → 500 system, ErrNotFound → 404 missing,
// ErrBusy, ErrRunning, ErrNotRunning → 409 busy, ErrInvalid → 400 usage,
// ErrBootDrive → 500 failed) or storage's (ErrNotFound → 404: the server is
// gone), or are *eh.Error values, passed on as they are.
//
// The Service checks a server's status before it calls, but calls race with
// each other: an implementation runs the calls of one server one at a time
// and checks the server's row and state again once it is its turn, answering
// a call that lost a race with one of the errors above (never a runtime
// failure), and never leaves a guest running without its row.
type Guests interface {
	Start(ctx context.Context, server string) error    // stopped/dead → active (or dead with error)
	Stop(ctx context.Context, server string) error     // SIGKILL; then persistent → stopped, else destroyed
	Shutdown(ctx context.Context, server string) error // power-off signal, SIGKILL after the grace period
	Reset(ctx context.Context, server string) error    // kill and start again, same configuration
	Pause(ctx context.Context, server string) error    // active → paused
	Resume(ctx context.Context, server string) error   // paused → active
	// Set changes a server's configuration in one step no lifecycle call of
	// the server runs within: it calls update with whether the server is
	// active (its guest runs, paused or not), which validates — any key when
	// stopped, only live keys when active — stores the change and returns
	// the keys it changed; on an active server it then makes the live keys
	// (cpu, password, name) take effect on the guest, storing the old values
	// again if that fails. update's error is returned as it is.
	Set(ctx context.Context, server string, update func(ctx context.Context, active bool) (changed map[string]string, err error)) error
	// Observe describes a running server's guest (rendered as the runtime
	// keys); false when it has none.
	Observe(ctx context.Context, server string) (vmm.Observation, bool)
	// Destroy removes a server (any status), stopping its guest first if it
	// has one, in one step no other call of the server runs between.
	Destroy(ctx context.Context, server string) error
	// Transient reports what is happening to a server between two
	// statuses (starting, shutting down until a deadline); false when
	// nothing is.
	Transient(server string) (vmm.Transient, bool)
}

// ConsoleLog gives what a server's guest printed on its console.
type ConsoleLog interface {
	// ConsoleOutput returns the last 64 KiB of the server's console output:
	// of its running guest, or of the last one after it ended (why it died).
	ConsoleOutput(ctx context.Context, server string) ([]byte, error)
}

// Caller is the authenticated user an operation runs for.
type Caller struct {
	ID    string
	Name  string
	Admin bool
}

// asking returns ctx whose changes the activity log attributes to the caller.
func (c Caller) asking(ctx context.Context) context.Context {
	who := c.Name
	if who == "" {
		who = c.ID
	}
	return storage.WithActor(ctx, who)
}

// Service is the API's operations layer.
type Service struct {
	store   *storage.Store
	guests  Guests
	console ConsoleLog
	log     *slog.Logger
}

// Option configures a Service.
type Option func(*Service)

// WithGuests sets the guest runtime lifecycle calls go to.
func WithGuests(g Guests) Option { return func(s *Service) { s.guests = g } }

// WithConsoleLog sets where GET /servers/SERVER/console reads from.
func WithConsoleLog(c ConsoleLog) Option { return func(s *Service) { s.console = c } }

// WithLogger sets where the service reports failures it does not return.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// New returns the operations layer over store.
func New(store *storage.Store, opts ...Option) *Service {
	s := &Service{store: store, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Store is the state the service works on.
func (s *Service) Store() *storage.Store { return s.store }

type callerKey struct{}

// WithCaller returns ctx carrying the authenticated caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// apiError turns a storage or guest error into the API's: errors that are
// already *eh.Error pass unchanged; the sentinels of storage and vmm map to
// their words, with the plain text of the refusal (see plain); anything else
// is 500 failed with its text.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var e *eh.Error
	if errors.As(err, &e) {
		return e
	}
	if ke := (*storage.KeyError)(nil); errors.As(err, &ke) {
		return atKey(ke.Key, apiError(ke.Err).(*eh.Error))
	}
	switch {
	case errors.Is(err, vmm.ErrUnavailable):
		return eh.Systemf("no guest runtime: %w", err)
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, vmm.ErrNotFound):
		return classed(eh.Missingf, err)
	case errors.Is(err, storage.ErrBusy), errors.Is(err, vmm.ErrBusy),
		errors.Is(err, vmm.ErrRunning), errors.Is(err, vmm.ErrNotRunning):
		return classed(eh.Busyf, err)
	case errors.Is(err, storage.ErrInvalid), errors.Is(err, storage.ErrTooLarge), errors.Is(err, vmm.ErrInvalid):
		return classed(eh.Usagef, err)
	case errors.Is(err, storage.ErrLimit):
		return classed(eh.Billingf, err)
	case errors.Is(err, storage.ErrFull):
		return classed(eh.Fullf, err)
	case errors.Is(err, storage.ErrAuth):
		return eh.Authf("bad credentials")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return eh.Failedf("request ended before the operation did: %w", err)
	}
	return classed(eh.Failedf, err)
}

// errNoGuests is the answer to a lifecycle call when no runtime is wired.
func errNoGuests(action string) error {
	return eh.Systemf("no guest runtime: cannot %s servers (containerd is not available to this Hearth)", action)
}

func missing(kind, id string) error { return eh.Missingf("%s %s not found", kind, id) }

// checkID refuses ids that are not UUIDs as missing, like unknown ones.
func checkID(kind, id string) error {
	if !eh.IsUUID(id) {
		return missing(kind, id)
	}
	return nil
}

func ownerCheck(c Caller, owner string) bool { return c.Admin || c.ID == owner }

// Events returns the latest events (newest first, at most limit) of a server
// or drive the caller may see; anything else is missing.
func (s *Service) Events(ctx context.Context, c Caller, object string, limit int) ([]storage.Event, error) {
	if _, err := s.server(ctx, c, object); err != nil {
		if _, derr := s.drive(ctx, c, object, false); derr != nil {
			return nil, missing("object", object)
		}
	}
	events, err := s.store.Events(ctx, strings.ToLower(object), limit)
	if err != nil {
		return nil, apiError(err)
	}
	return events, nil
}

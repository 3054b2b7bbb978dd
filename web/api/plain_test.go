package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"hearth/storage"
	"hearth/vmm"
	"hearth/web/eh"
)

// TestPlainMessages: refusals of storage and vmm reach a person (the API's
// body, the dashboard's field) as the sentence they were worded as, with the
// status and X-Elastic-Error word of their class and without the sentinel
// words Go's wrapping appends.
func TestPlainMessages(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		word   string
		want   string
	}{
		{fmt.Errorf("web1 boot is attached to running server web1 — stop web1 first: %w", storage.ErrBusy),
			http.StatusConflict, "busy", "web1 boot is attached to running server web1 — stop web1 first"},
		{fmt.Errorf("size 16 TiB is more than the largest file the host's filesystem can hold: %w", storage.ErrInvalid),
			http.StatusBadRequest, "usage", "size 16 TiB is more than the largest file the host's filesystem can hold"},
		{fmt.Errorf("drive x: %w", storage.ErrNotFound), http.StatusNotFound, "missing", "drive x not found"},
		{fmt.Errorf("offset 9 is past the end of d (8 B): %w", storage.ErrTooLarge), http.StatusBadRequest, "usage", "offset 9 is past the end of d (8 B)"},
		{fmt.Errorf("server web1 is already active: %w", vmm.ErrRunning), http.StatusConflict, "busy", "server web1 is already active"},
		{fmt.Errorf("server web1 is stopped, not active: %w", vmm.ErrNotRunning), http.StatusConflict, "busy", "server web1 is stopped, not active"},
		{fmt.Errorf("server web1 has no boot drive: %w", vmm.ErrBootDrive), http.StatusInternalServerError, "failed", "server web1 has no boot drive"},
		{fmt.Errorf("address pool 10.0.0.0/30: %w", storage.ErrFull), http.StatusInsufficientStorage, "full", "address pool 10.0.0.0/30: no capacity left"},
		// a wrapped sentinel twice over loses both; a bare sentinel keeps its word
		{fmt.Errorf("%w: %w", fmt.Errorf("imaging stopped: %w", storage.ErrBusy), storage.ErrBusy), http.StatusConflict, "busy", "imaging stopped"},
		{storage.ErrBusy, http.StatusConflict, "busy", "busy"},
		{&storage.KeyError{Key: "nic:0:mac", Err: fmt.Errorf("key nic:0:mac: MAC 02:00:00:00:00:01 is already used by another server: %w", storage.ErrBusy)},
			http.StatusConflict, "busy", "key nic:0:mac: MAC 02:00:00:00:00:01 is already used by another server"},
	} {
		e := eh.AsError(apiError(tc.err))
		if e.Status != tc.status || e.Word != tc.word || e.Message != tc.want {
			t.Errorf("%v: %d %s %q, want %d %s %q", tc.err, e.Status, e.Word, e.Message, tc.status, tc.word, tc.want)
		}
		for _, tail := range tails {
			if errors.Is(tc.err, tail.err) && !errors.Is(e, tail.err) {
				t.Errorf("%v: the cause %v is lost (errors.Is)", tc.err, tail.err)
			}
		}
		for _, tail := range []string{": busy", ": invalid argument", ": not found", ": beyond the end of the drive", ": guest is running"} {
			if strings.HasSuffix(e.Message, tail) {
				t.Errorf("%q ends in the Go error tail %q", e.Message, tail)
			}
		}
	}
}

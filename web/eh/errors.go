package eh

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hearth/internal/hostpath"
)

// Error is an API error: an HTTP status, the X-Elastic-Error word naming its
// class and a one-line message naming the key or value at fault.
type Error struct {
	Status  int    // HTTP status code
	Word    string // X-Elastic-Error word: usage, auth, billing, missing, method, busy, failed, system, full
	Message string // one line for humans; the response body
	Key     string // the request key at fault, when there is one (for forms)
	Err     error  // optional cause, reachable through errors.Unwrap
	// RetryAfter, when set, is sent as Retry-After (seconds, rounded up).
	RetryAfter time.Duration
}

// Error returns "word: message".
func (e *Error) Error() string { return e.Word + ": " + e.Message }

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same word, so that
// errors.Is(err, eh.ErrBusy) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Word == e.Word && (t.Message == "" || t.Message == e.Message)
}

// Sentinels for errors.Is, one per word; their Message is empty.
var (
	ErrUsage   = &Error{Status: http.StatusBadRequest, Word: "usage"}
	ErrAuth    = &Error{Status: http.StatusUnauthorized, Word: "auth"}
	ErrBilling = &Error{Status: http.StatusPaymentRequired, Word: "billing"}
	ErrMissing = &Error{Status: http.StatusNotFound, Word: "missing"}
	ErrMethod  = &Error{Status: http.StatusMethodNotAllowed, Word: "method"}
	ErrBusy    = &Error{Status: http.StatusConflict, Word: "busy"}
	ErrFailed  = &Error{Status: http.StatusInternalServerError, Word: "failed"}
	ErrSystem  = &Error{Status: http.StatusInternalServerError, Word: "system"}
	ErrFull    = &Error{Status: http.StatusInsufficientStorage, Word: "full"}
)

func newf(kind *Error, format string, args []any) *Error {
	formatted := fmt.Errorf(format, args...)
	e := &Error{Status: kind.Status, Word: kind.Word, Message: oneLine(hostpath.Redact(formatted.Error()))}
	if strings.Contains(format, "%w") {
		e.Err = formatted // keeps the %w causes reachable for errors.Is/As
	}
	return e
}

// usageKey is a usage error about one request key, named in Error.Key.
func usageKey(key, format string, args ...any) *Error {
	e := newf(ErrUsage, format, args)
	e.Key = key
	return e
}

// Usagef is a 400 usage error: malformed request, unknown or invalid key or value.
func Usagef(format string, args ...any) *Error { return newf(ErrUsage, format, args) }

// Authf is a 401 auth error: missing or wrong credentials.
func Authf(format string, args ...any) *Error { return newf(ErrAuth, format, args) }

// Forbiddenf is a 403 auth error: the credentials do not matter, the
// request is refused (a browser sending it on behalf of another site).
func Forbiddenf(format string, args ...any) *Error {
	e := newf(ErrAuth, format, args)
	e.Status = http.StatusForbidden
	return e
}

// TooManyf is a 429 auth error: too many failed authentications; the
// answer says when to try again (Retry-After, from wait).
func TooManyf(wait time.Duration, format string, args ...any) *Error {
	e := newf(ErrAuth, format, args)
	e.Status = http.StatusTooManyRequests
	e.RetryAfter = wait
	return e
}

// Billingf is a 402 billing error: the account may not have what it asked for.
func Billingf(format string, args ...any) *Error { return newf(ErrBilling, format, args) }

// Missingf is a 404 missing error: no such command or object (or not the caller's).
func Missingf(format string, args ...any) *Error { return newf(ErrMissing, format, args) }

// Methodf is a 405 method error: the command needs another HTTP method.
func Methodf(format string, args ...any) *Error { return newf(ErrMethod, format, args) }

// Busyf is a 409 busy error: the object is in use, imaging, running, ...
func Busyf(format string, args ...any) *Error { return newf(ErrBusy, format, args) }

// Failedf is a 500 failed error: the command itself failed.
func Failedf(format string, args ...any) *Error { return newf(ErrFailed, format, args) }

// Systemf is a 500 system error: an internal fault, such as no guest runtime.
func Systemf(format string, args ...any) *Error { return newf(ErrSystem, format, args) }

// Fullf is a 507 full error: no capacity left for the request.
func Fullf(format string, args ...any) *Error { return newf(ErrFull, format, args) }

// AsError returns err as an *Error: itself (or the *Error it wraps), or a 500
// system error carrying err's text for anything else.
func AsError(err error) *Error {
	if err == nil { // a caller's bug; still answer something sensible
		return &Error{Status: ErrSystem.Status, Word: ErrSystem.Word, Message: "internal error"}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: ErrSystem.Status, Word: ErrSystem.Word, Message: oneLine(hostpath.Redact(err.Error())), Err: err}
}

// WriteError answers with err's status, X-Elastic-Error word and one-line text
// body (never JSON, whatever the Accept header says). An auth error also asks
// for Basic credentials, so that curl and browsers can prompt.
func WriteError(w http.ResponseWriter, err error) {
	e := AsError(err)
	h := w.Header()
	h.Set("Content-Type", textType)
	h.Set("X-Elastic-Error", e.Word)
	h.Del("X-Elastic-Output")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="hearth"`)
	}
	body := e.Message + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(body))
}

// oneLine folds a message onto one line: an error body is one line by contract.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

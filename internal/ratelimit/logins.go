package ratelimit

import (
	"context"
	"strings"
	"time"
)

// Logins limits failed logins — the dashboard's form and the API's Basic
// auth share one — per client address and login name, and per login name
// from anywhere. Never per address alone: one user's failures must not
// lock out another user behind the same address (an office's NAT).
type Logins struct {
	fromAddr *Failures
	perLogin *Failures
}

// Failed logins allowed by default per client address and login name
// within LoginWindow.
const (
	LoginMaxFailures = 5
	LoginWindow      = 5 * time.Minute
)

// NewLogins allows max failures per client address and login name within
// LoginWindow, and four times as many per login name from anywhere,
// reading the time from now.
func NewLogins(max int, now func() time.Time) *Logins {
	return &Logins{fromAddr: New(max, LoginWindow, now), perLogin: New(4*max, LoginWindow, now)}
}

// Begin starts a login attempt of login from addr, as BeginAll does.
func (l *Logins) Begin(ctx context.Context, addr, login string) (Attempts, time.Duration, bool) {
	login = strings.ToLower(login)
	return BeginAll(ctx, Limit{l.fromAddr, addr + " " + login}, Limit{l.perLogin, login})
}

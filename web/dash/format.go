package dash

import (
	"fmt"
	"strconv"
	"time"

	"hearth/internal/units"
	"hearth/web/eh"
)

// humanBytes renders a byte count with binary units, as sizes are given.
func humanBytes(n uint64) string { return units.Bytes(n) }

// humanSize renders a decimal byte string ("10737418240") as "10 GiB"; other
// text is returned as it is.
func humanSize(s string) string {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return s
	}
	return humanBytes(n)
}

// humanMB renders a memory size in MB ("1024") as "1 GiB".
func humanMB(s string) string {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s == "" {
		return s
	}
	return humanBytes(n << 20)
}

// humanDuration renders an uptime as "3d 4h", "2h 5m", "4m 10s".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	days := d / (24 * time.Hour)
	h := (d % (24 * time.Hour)) / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// uptime renders the time since a `started` value (Unix seconds); "" when unset.
func uptime(started string, now time.Time) string {
	sec, err := strconv.ParseInt(started, 10, 64)
	if err != nil {
		return ""
	}
	return humanDuration(now.Sub(time.Unix(sec, 0)))
}

// percent renders a 0..1 share as "42%".
func percent(f float64) string {
	return strconv.Itoa(int(f*100+0.5)) + "%"
}

// errMessage is the one-line message of an operation's error.
func errMessage(err error) string { return eh.AsError(err).Message }

// sizeInput renders a size the way a user would type it ("10G", "512M").
func sizeInput(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n > 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func itoa(n int) string { return strconv.Itoa(n) }

// describedBy lists a field's hint (when it has one) and its message
// (error or warning) for aria-describedby.
func describedBy(id string, hint bool, message string) string {
	if hint {
		return id + "-hint " + id + "-" + message
	}
	return id + "-" + message
}

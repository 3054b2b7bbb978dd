// Package units writes quantities the way a person reads them: byte counts
// in binary units ("10 GiB", "1.5 TiB"), as the API and the dashboard show
// sizes in messages and pages alike.
package units

import "fmt"

// Bytes renders a byte count with binary units: whole numbers without a
// decimal ("10 GiB"), others with one ("1.5 GiB"); below 1 KiB in bytes ("512 B").
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 100 || v == float64(uint64(v)) {
		return fmt.Sprintf("%.0f %ciB", v, "KMGTP"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[exp])
}

// Size is Bytes for a signed count (sizes are int64 in storage and the API);
// a negative count is written as it is.
func Size(n int64) string {
	if n < 0 {
		return fmt.Sprintf("%d B", n)
	}
	return Bytes(uint64(n))
}

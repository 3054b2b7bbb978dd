package eh

import (
	"math"
	"strings"
)

// ParseSize reads a size in bytes: plain digits, or digits followed by K, M, G
// or T (powers of 1024, either case, optionally followed by B: "160G", "4m",
// "8GB", "512B"). Negative, fractional, empty and overflowing sizes are refused with a
// usage error naming the value.
func ParseSize(s string) (int64, error) {
	digits := s
	shift := 0
	if n := len(digits); n > 1 && (digits[n-1] == 'b' || digits[n-1] == 'B') {
		digits = digits[:n-1]
	}
	if n := len(digits); n > 0 {
		switch digits[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			digits = digits[:n-1]
		}
	}
	if digits == "" {
		return 0, Usagef("%q is not a size: expected bytes or a number with K, M, G or T (10G, 512M)", s)
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !isDigit(c) {
			if strings.HasPrefix(digits, "-") {
				return 0, Usagef("%q: a size must not be negative", s)
			}
			return 0, Usagef("%q is not a size: expected bytes or a number with K, M, G or T (10G, 512M)", s)
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, Usagef("%q is too large a size", s)
		}
		n = n*10 + int64(c-'0')
	}
	if n > math.MaxInt64>>shift {
		return 0, Usagef("%q is too large a size", s)
	}
	return n << shift, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

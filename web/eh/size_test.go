package eh

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"10000000", 10000000},
		{"512B", 512},
		{"1k", 1024},
		{"1K", 1024},
		{"4M", 4 << 20},
		{"4m", 4 << 20},
		{"8G", 8 << 30},
		{"160G", 160 << 30},
		{"10g", 10737418240},
		{"2T", 2 << 40},
		{"8GB", 8 << 30},
		{"8gb", 8 << 30},
		{"1Kb", 1024},
		{"007", 7},
		{"9223372036854775807", 9223372036854775807},
		{"8388607T", 8388607 << 40},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeRefuses(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "expected bytes"},
		{"G", "expected bytes"},
		{"B", "expected bytes"},
		{"GB", "expected bytes"},
		{"-1", "must not be negative"},
		{"-1G", "must not be negative"},
		{"+1", "expected bytes"},
		{"1.5G", "expected bytes"},
		{"1e9", "expected bytes"},
		{" 1G", "expected bytes"},
		{"1G ", "expected bytes"},
		{"1 G", "expected bytes"},
		{"1P", "expected bytes"},
		{"1GiB", "expected bytes"},
		{"1BB", "expected bytes"},
		{"0x10", "expected bytes"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999999", "too large"},
		{"8388608T", "too large"},
		{"9007199254740992K", "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", tt.in, got)
			continue
		}
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParseSize(%q) error %q, want a usage error quoting the value and saying %q", tt.in, err, tt.msg)
		}
	}
}

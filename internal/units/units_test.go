package units

import "testing"

func TestBytes(t *testing.T) {
	for in, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 10 << 30: "10 GiB", 150 << 20: "150 MiB",
		1 << 44: "16 TiB", 108851651149824: "99 TiB", 3 << 50: "3 PiB",
	} {
		if got := Bytes(in); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := Size(-5); got != "-5 B" {
		t.Errorf("Size(-5) = %q", got)
	}
}

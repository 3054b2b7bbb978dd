package eh

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
)

// withoutEmpty drops empty values: rendering leaves them out by design.
func withoutEmpty(p Props) Props {
	out := Props{}
	for k, v := range p {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// checkUsage fails unless err is a usage *Error with a one-line message.
func checkUsage(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Word != "usage" || e.Status != 400 {
		t.Fatalf("error %v (%T) is not a usage *Error", err, err)
	}
	if e.Message == "" || strings.ContainsAny(e.Message, "\r\n") {
		t.Fatalf("error message %q is empty or not one line", e.Message)
	}
}

// FuzzParseProps feeds arbitrary bodies (text and JSON) to ParseProps: it
// never panics, refuses with a one-line usage error, and whatever it accepts
// renders as text and as JSON that parse back to the same object.
func FuzzParseProps(f *testing.F) {
	for _, s := range []string{
		"", "name foo\ncpu 2000\n", "name a\r\nblock:0\r\n\r\n", `install_notes a\nb\\c`, "a 1\na 2", " x",
		`{"cpu": 2000, "persistent": true, "boot": ["ide:0:0"], "x": null}`, `{"a": {"b": 1}}`, `[1]`, `{"a":"b"} x`,
		"{\"a\":\"\\u2028\\\\n\"}", "k \xff", "k \x01", `{"":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseProps(bytes.NewReader(body), int64(len(body))+1)
		if err != nil {
			checkUsage(t, err)
			if p != nil {
				t.Fatalf("Props %q returned with error %v", p, err)
			}
			return
		}
		want := withoutEmpty(p)
		text := p.AppendText(nil)
		got, err := ParseProps(bytes.NewReader(text), int64(len(text))+1)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("text round trip of %q: %q, %v; want %q", text, got, err, want)
		}
		js := p.AppendJSON(nil)
		if !json.Valid(js) {
			t.Fatalf("invalid JSON %s", js)
		}
		got, err = ParseProps(bytes.NewReader(js), int64(len(js))+1)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("JSON round trip of %s: %q, %v; want %q", js, got, err, want)
		}
	})
}

// FuzzParseSize: never panics, refuses with a usage error quoting the input,
// and an accepted size is non-negative and agrees with its plain-byte form.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "8G", "160g", "4M", "1k", "2T", "8GB", "512B", "-1", "1.5G", "9223372036854775807", "8388608T", "G", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			checkUsage(t, err)
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("error %q does not quote %q", err, s)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if m, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("ParseSize(%q) = %d, but its byte form reads %d, %v", s, n, m, err)
		}
	})
}

// FuzzNewServer validates arbitrary bodies as server configurations: never a
// panic, only usage errors, and an accepted configuration is a fixed point
// (validating it again changes nothing) that survives both renderings.
func FuzzNewServer(f *testing.F) {
	f.Add([]byte("name n\ncpu 2000\nmem 1024\nide:0:0 " + drive1 + "\nboot ide:0:0\nnic:0:model e1000\nnic:0:dhcp auto\nvnc:ip auto\nvnc:password pw\n"))
	f.Add([]byte(`{"cpu": 500, "mem": 256, "smp": 2, "block:7": "` + drive2 + `", "block:7:media": "cdrom", "nic:1:model": "virtio", "nic:1:mac": "02-00-00-00-00-01"}`))
	f.Add([]byte("cpu 1000\nmem 512\nnic:0:model e1000\nnic:0:firewall:accept tcp/22 udp/1-5 icmp\ntags a b\nuser:x y"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseProps(bytes.NewReader(body), int64(len(body))+1)
		if err != nil {
			return
		}
		cfg, err := NewServer(in)
		if err != nil {
			checkUsage(t, err)
			return
		}
		again, err := NewServer(cfg)
		if err != nil || !maps.Equal(again, cfg) {
			t.Fatalf("NewServer(%q) = %q, but validating that gives %q, %v", in, cfg, again, err)
		}
		next, changed, err := UpdateServer(cfg, cfg, true)
		if err != nil || len(changed) != 0 || !maps.Equal(next, cfg) {
			t.Fatalf("setting a configuration onto itself: %q, %q, %v", next, changed, err)
		}
		text := cfg.AppendText(nil)
		if got, err := ParseProps(bytes.NewReader(text), int64(len(text))+1); err != nil || !maps.Equal(got, cfg) {
			t.Fatalf("text round trip of %q: %q, %v", text, got, err)
		}
	})
}

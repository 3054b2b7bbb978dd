package eh

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseProps(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Props
	}{
		{"empty", "", Props{}},
		{"blank lines only", "\n\r\n  \n", Props{}},
		{"one line no newline", "name foo", Props{"name": "foo"}},
		{"value keeps inner and trailing spaces", "name a  b ", Props{"name": "a  b "}},
		{"crlf", "name foo\r\ncpu 2000\r\n", Props{"name": "foo", "cpu": "2000"}},
		{"blank lines skipped", "\n\nname foo\n\n\ncpu 2000\n\n", Props{"name": "foo", "cpu": "2000"}},
		{"bare key is empty value", "block:0\nname x", Props{"block:0": "", "name": "x"}},
		{"key and one space is empty value", "block:0 \n", Props{"block:0": ""}},
		{"escaped newline", `install_notes line1\nline2`, Props{"install_notes": "line1\nline2"}},
		{"escaped backslash", `description a\\nb`, Props{"description": `a\nb`}},
		{"other backslashes stay", `description C:\temp\x\`, Props{"description": `C:\temp\x\`}},
		{"tab inside value", "name a\tb", Props{"name": "a\tb"}},
		{"utf-8", "name Zürich ☃", Props{"name": "Zürich ☃"}},
		{"text that looks like a form", "name=foo", Props{"name=foo": ""}},
		{"json", `{"name": "foo", "cpu": 2000}`, Props{"name": "foo", "cpu": "2000"}},
		{"json leading blanks", " \r\n\t{\"a\":\"b\"}\n", Props{"a": "b"}},
		{"json booleans", `{"persistent": true, "x": false}`, Props{"persistent": "true", "x": "false"}},
		{"json number forms kept", `{"size": 12345678, "f": 1.5, "e": 1e3, "n": -4}`, Props{"size": "12345678", "f": "1.5", "e": "1e3", "n": "-4"}},
		{"json null is empty", `{"vnc": null}`, Props{"vnc": ""}},
		{"json array joined", `{"boot": ["ide:0:0", "ide:1:0"], "nic:0:dhcp:ip": ["1.2.3.4"]}`, Props{"boot": "ide:0:0 ide:1:0", "nic:0:dhcp:ip": "1.2.3.4"}},
		{"json array of scalars", `{"tags": ["a", 1, true, null]}`, Props{"tags": "a 1 true"}},
		{"json empty array", `{"tags": []}`, Props{"tags": ""}},
		{"json empty object", `{}`, Props{}},
		{"json escapes", `{"description": "a\nb\u00e9\"\\"}`, Props{"description": "a\nbé\"\\"}},
		{"byte-order mark, text", "\ufeffname foo\n", Props{"name": "foo"}},
		{"byte-order mark, json", "\ufeff{\"name\": \"foo\"}", Props{"name": "foo"}},
		{"json value with newline", `{"name":"x"}` + "\n\n", Props{"name": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProps(strings.NewReader(tt.body), 0)
			if err != nil {
				t.Fatalf("ParseProps(%q): %v", tt.body, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseProps(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestParsePropsRefuses(t *testing.T) {
	tests := []struct {
		name, body, msg string
	}{
		{"duplicate text key", "name a\ncpu 1\nname b", "line 3: duplicate key name"},
		{"duplicate json key", `{"name":"a","name":"b"}`, "duplicate key name"},
		{"line starting with a space", "name a\n cpu 1", "line 2: starts with a space"},
		{"control character in key", "na\x01me a", "line 1: key"},
		{"tab in key", "na\tme a", "blank or control character"},
		{"control character in value", "name a\x07b", "line 1: key name: value contains a control character"},
		{"carriage return inside value", "name a\rb\n", "control character"},
		{"invalid utf-8 value", "name \xff", "not valid UTF-8"},
		{"invalid utf-8 key", "n\xffame a", "not valid UTF-8"},
		{"nested object", `{"a": {"b": 1}}`, "key a: nested objects are not allowed"},
		{"nested array", `{"a": [[1]]}`, "key a: arrays may hold only"},
		{"object in array", `{"a": [{}]}`, "key a: arrays may hold only"},
		{"json array body", `[{"a":"b"}]`, "one object, not an array"},
		{"truncated json", `{"a": "b"`, "unexpected end"},
		{"trailing garbage", `{"a": "b"} {"c": 1}`, "unexpected data after the object"},
		{"json syntax", `{"a" "b"}`, "malformed"},
		{"json empty key", `{"": "b"}`, "empty key"},
		{"json key with space", `{"a b": "c"}`, "blank or control character"},
		{"text key starting with a bracket", "name x\n[0 y", "line 2: key \"[0\" starts with ["},
		{"text key starting with a brace", "name x\n{ y", "line 2: key \"{\" starts with {"},
		{"json key starting with a brace", `{"{a": "b"}`, "starts with {"},
		{"json control char in value", `{"a": "x\u0000"}`, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProps(strings.NewReader(tt.body), 0)
			if err == nil {
				t.Fatalf("ParseProps(%q) = %q, want an error", tt.body, got)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error %v is not a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.ContainsAny(AsError(err).Message, "\r\n") {
				t.Errorf("error message %q is not one line", AsError(err).Message)
			}
		})
	}
}

func TestParsePropsLimit(t *testing.T) {
	body := "name " + strings.Repeat("x", 95) // 100 bytes
	if _, err := ParseProps(strings.NewReader(body), 100); err != nil {
		t.Fatalf("body of exactly the limit: %v", err)
	}
	_, err := ParseProps(strings.NewReader(body+"y"), 100)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Fatalf("body over the limit: %v, want usage error naming the limit", err)
	}
	// The limit holds for JSON too, and without reading the whole body.
	_, err = ParseProps(strings.NewReader(`{"a":"`+strings.Repeat("x", 1<<20)+`"}`), 1024)
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("JSON over the limit: %v", err)
	}
}

func TestParsePropsReadError(t *testing.T) {
	_, err := ParseProps(iotest.ErrReader(errors.New("connection reset")), 0)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("read error: %v", err)
	}
}

package eh

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// DefaultLimit is a sensible body limit for ParseProps: 1 MiB, far above any
// real configuration body.
const DefaultLimit = 1 << 20

// ParseProps reads one object from body: a JSON object when the first
// non-blank byte is '{', else KEY VALUE lines; the Content-Type is never
// consulted (clients send text as octet-stream, form or even JSON). A body
// larger than limit bytes, malformed syntax, a duplicate key, a key with
// blanks or control characters, a value with control characters other than
// newline and tab, or invalid UTF-8 are refused with a usage error naming the
// line or key. An empty body is an empty Props.
func ParseProps(body io.Reader, limit int64) (Props, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, Usagef("reading request body: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, Usagef("request body is larger than %d bytes", limit)
	}
	return parseBytes(data)
}

func parseBytes(data []byte) (Props, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte-order mark from Windows editors
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 {
		switch trimmed[0] {
		case '{':
			return parseJSON(trimmed)
		case '[':
			return nil, Usagef("a JSON body must be one object, not an array")
		}
	}
	return parseText(data)
}

// parseText parses KEY VALUE lines (reference §1.5).
func parseText(data []byte) (Props, error) {
	p := Props{}
	line := 0
	for len(data) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		raw = bytes.TrimSuffix(raw, []byte{'\r'})
		if len(bytes.Trim(raw, " \t")) == 0 {
			continue
		}
		s := string(raw)
		key, value, _ := strings.Cut(s, " ")
		if key == "" {
			return nil, Usagef("line %d: starts with a space, expected KEY VALUE", line)
		}
		value = unescapeValue(value)
		if err := checkKey(key); err != nil {
			return nil, Usagef("line %d: %s", line, err)
		}
		if err := checkValue(value); err != nil {
			return nil, usageKey(key, "line %d: key %s: %s", line, key, err)
		}
		if _, dup := p[key]; dup {
			return nil, usageKey(key, "line %d: duplicate key %s", line, key)
		}
		p[key] = value
	}
	return p, nil
}

// parseJSON parses one JSON object whose values are strings, numbers, booleans,
// null (an empty value) or arrays of those (joined with single spaces, as
// libcloud sends boot and address lists).
func parseJSON(data []byte) (Props, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' seen by the caller
		return nil, jsonError(dec, err)
	}
	p := Props{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, jsonError(dec, err)
		}
		key, _ := t.(string) // inside an object the decoder only yields string keys
		if err := checkKey(key); err != nil {
			return nil, Usagef("JSON body: %s", err)
		}
		value, err := jsonValue(dec, key)
		if err != nil {
			return nil, err
		}
		if err := checkValue(value); err != nil {
			return nil, usageKey(key, "JSON body: key %s: %s", key, err)
		}
		if _, dup := p[key]; dup {
			return nil, usageKey(key, "JSON body: duplicate key %s", key)
		}
		p[key] = value
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, jsonError(dec, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Usagef("JSON body: unexpected data after the object at byte %d", dec.InputOffset())
	}
	return p, nil
}

func jsonValue(dec *json.Decoder, key string) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", jsonError(dec, err)
	}
	if d, ok := t.(json.Delim); ok {
		if d != '[' {
			return "", usageKey(key, "JSON body: key %s: nested objects are not allowed", key)
		}
		var items []string
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return "", jsonError(dec, err)
			}
			if _, nested := t.(json.Delim); nested {
				return "", usageKey(key, "JSON body: key %s: arrays may hold only strings, numbers and booleans", key)
			}
			if s := scalar(t); s != "" {
				items = append(items, s)
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return "", jsonError(dec, err)
		}
		return strings.Join(items, " "), nil
	}
	return scalar(t), nil
}

func scalar(t json.Token) string {
	switch v := t.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return "" // null
}

func jsonError(dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Usagef("JSON body: unexpected end of input")
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return Usagef("JSON body: malformed at byte %d: %s", syn.Offset, syn.Error())
	}
	return Usagef("JSON body: malformed at byte %d: %v", dec.InputOffset(), err)
}

// checkKey refuses keys a text body could not carry back: empty, with blanks,
// control characters or invalid UTF-8, or starting with { or [ (as the first
// line of a text body such a key would read as JSON).
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if key[0] == '{' || key[0] == '[' {
		return errors.New("key " + quote(key) + " starts with " + key[:1])
	}
	if !utf8.ValidString(key) {
		return errors.New("key is not valid UTF-8")
	}
	for _, r := range key {
		if r <= ' ' || r == 0x7f {
			return errors.New("key " + quote(key) + " contains a blank or control character")
		}
	}
	return nil
}

// checkValue refuses values with invalid UTF-8 or control characters other than
// newline and tab: they have no text rendering.
func checkValue(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("value is not valid UTF-8")
	}
	for _, r := range v {
		if (r < ' ' && r != '\n' && r != '\t') || r == 0x7f {
			return errors.New("value contains a control character")
		}
	}
	return nil
}

// unescapeValue undoes the text escaping of appendValue: \n is a newline, \\ a
// backslash, any other backslash stays as it is (Windows paths survive).
func unescapeValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			switch v[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

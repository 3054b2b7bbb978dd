package eh

import (
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	textType = "text/plain; charset=utf-8"
	jsonType = "application/json"
)

// WantsJSON reports whether the client asked for JSON output: Accept names
// application/json with a non-zero quality that text/plain does not beat
// (ties go to the one listed first). Absent, */*, text/plain and anything else
// mean text, the API's default.
func WantsJSON(r *http.Request) bool {
	jsonQ, textQ := -1.0, -1.0
	jsonAt, textAt := 0, 0
	for i, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		media, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				q = f
			}
		}
		switch media {
		case "application/json":
			if q > jsonQ {
				jsonQ, jsonAt = q, i
			}
		case "text/plain":
			if q > textQ {
				textQ, textAt = q, i
			}
		}
	}
	return jsonQ > 0 && (jsonQ > textQ || (jsonQ == textQ && jsonAt < textAt))
}

// WriteProps answers 200 with one object: KEY VALUE lines sorted by key
// (X-Elastic-Output: properties) or a JSON object, as WantsJSON(r) decides.
func WriteProps(w http.ResponseWriter, r *http.Request, p Props) {
	if WantsJSON(r) {
		write(w, jsonType, "", p.AppendJSON(nil))
		return
	}
	write(w, textType, "properties", p.AppendText(nil))
}

// WriteBlocks answers 200 with several whole objects: text blocks separated by
// one blank line, or a JSON array (always an array, [] when empty).
func WriteBlocks(w http.ResponseWriter, r *http.Request, objs []Props) {
	if WantsJSON(r) {
		write(w, jsonType, "", AppendJSONArray(nil, objs))
		return
	}
	write(w, textType, "properties", AppendBlocks(nil, objs))
}

// WriteList answers 200 with one row per object holding the values of keys:
// in text the values separated by single spaces (X-Elastic-Output: list), in
// JSON an array of objects with just those keys.
func WriteList(w http.ResponseWriter, r *http.Request, objs []Props, keys ...string) {
	if WantsJSON(r) {
		rows := make([]Props, len(objs))
		for i, o := range objs {
			rows[i] = make(Props, len(keys))
			for _, k := range keys {
				rows[i][k] = o[k]
			}
		}
		write(w, jsonType, "", AppendJSONArray(nil, rows))
		return
	}
	write(w, textType, "list", AppendList(nil, objs, keys...))
}

func write(w http.ResponseWriter, contentType, output string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	if output != "" {
		h.Set("X-Elastic-Output", output)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// AppendText appends p as KEY VALUE lines sorted by key, newlines in values
// written as \n; keys with empty values are left out (they mean "absent").
func (p Props) AppendText(b []byte) []byte {
	b, _ = p.appendText(b, nil)
	return b
}

func (p Props) appendText(b []byte, keys []string) ([]byte, []string) {
	keys = p.appendKeys(keys)
	for _, k := range keys {
		v := p[k]
		if v == "" {
			continue
		}
		b = append(b, k...)
		b = append(b, ' ')
		b = appendTextValue(b, v)
		b = append(b, '\n')
	}
	return b, keys
}

// AppendBlocks appends objs as text blocks separated by one blank line.
func AppendBlocks(b []byte, objs []Props) []byte {
	var keys []string
	for i, o := range objs {
		if i > 0 {
			b = append(b, '\n')
		} else {
			b = growFor(b, len(objs), func(b []byte) []byte { b, keys = o.appendText(b, keys); return b })
			continue
		}
		b, keys = o.appendText(b, keys)
	}
	return b
}

// growFor renders the first of n similar objects and makes room for the
// other n-1, so a large answer is not built by repeated doubling.
func growFor(b []byte, n int, first func([]byte) []byte) []byte {
	start := len(b)
	b = first(b)
	if n > 1 {
		b = slices.Grow(b, (len(b)-start+2)*(n-1)*9/8)
	}
	return b
}

// AppendList appends one text line per object: the values of keys separated
// by single spaces (absent values left out).
func AppendList(b []byte, objs []Props, keys ...string) []byte {
	for _, o := range objs {
		sep := false
		for _, k := range keys {
			v := o[k]
			if v == "" {
				continue
			}
			if sep {
				b = append(b, ' ')
			}
			b = appendTextValue(b, v)
			sep = true
		}
		b = append(b, '\n')
	}
	return b
}

// appendTextValue escapes a newline as \n, and a backslash as \\ where it
// would otherwise read back as the start of an escape.
func appendTextValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\n':
			b = append(b, '\\', 'n')
		case '\\':
			if i+1 < len(v) && (v[i+1] == 'n' || v[i+1] == '\\' || v[i+1] == '\n') {
				b = append(b, '\\', '\\')
			} else {
				b = append(b, '\\')
			}
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendJSON appends p as one JSON object, keys sorted, values typed as real
// ElasticHosts output has them (JSONType); empty values are left out.
func (p Props) AppendJSON(b []byte) []byte {
	b, _ = p.appendJSON(b, nil)
	return b
}

func (p Props) appendJSON(b []byte, keys []string) ([]byte, []string) {
	keys = p.appendKeys(keys)
	b = append(b, '{')
	first := true
	for _, k := range keys {
		v := p[k]
		if v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		if JSONNumber(k, v) {
			b = append(b, v...)
		} else {
			b = appendJSONString(b, v)
		}
	}
	return append(b, '}'), keys
}

// MarshalJSON renders p as AppendJSON does, so json.Marshal of a Props (or of
// a slice of them) gives the typed form.
func (p Props) MarshalJSON() ([]byte, error) { return p.AppendJSON(nil), nil }

// AppendJSONArray appends objs as a JSON array of objects ([] when empty).
func AppendJSONArray(b []byte, objs []Props) []byte {
	b = append(b, '[')
	var keys []string
	for i, o := range objs {
		if i > 0 {
			b = append(b, ',')
		} else {
			b = growFor(b, len(objs), func(b []byte) []byte { b, keys = o.appendJSON(b, keys); return b })
			continue
		}
		b, keys = o.appendJSON(b, keys)
	}
	return append(b, ']')
}

// JSONNumber reports whether key's value is a JSON number in output (reference
// §1.7): cpu, mem, size, started, smp:cores, rx, tx, rx:packets, tx:packets,
// the seed's rx:bytes and tx:bytes, nic:N:{rx,tx}:{bytes,packets}, and smp
// when it is a count — provided value is a plain decimal integer. Anything
// else (drive and device I/O counters, persistent, ...) is a string.
func JSONNumber(key, value string) bool {
	switch key {
	case "cpu", "mem", "size", "started", "smp:cores", "smp", KeyDeadline,
		"rx", "tx", "rx:bytes", "tx:bytes", "rx:packets", "tx:packets":
	default:
		if !isNICCounter(key) {
			return false
		}
	}
	return isDecimal(value)
}

func isNICCounter(key string) bool {
	rest, ok := strings.CutPrefix(key, "nic:")
	if !ok {
		return false
	}
	n, counter, ok := strings.Cut(rest, ":")
	if !ok || !isDecimal(n) {
		return false
	}
	switch counter {
	case "rx:bytes", "rx:packets", "tx:bytes", "tx:packets":
		return true
	}
	return false
}

// isDecimal reports whether s is a JSON-valid non-negative integer.
func isDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

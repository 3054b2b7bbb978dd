package storage

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeProps decodes a JSON object of string values, as json.Marshal writes
// a map[string]string. Listing a thousand servers decodes a thousand of
// these, so the common shape is parsed by hand; anything unexpected goes to
// encoding/json, which has the last word.
func decodeProps(s string) (map[string]string, error) {
	if m, ok := decodeFlat(s); ok {
		return m, nil
	}
	var m map[string]string
	err := json.Unmarshal([]byte(s), &m)
	return m, err
}

func decodeFlat(s string) (map[string]string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	m := make(map[string]string, strings.Count(s, `":"`))
	i := 1
	if s[i] == '}' {
		return m, i == len(s)-1
	}
	for {
		k, n, ok := flatString(s, i)
		if !ok || n >= len(s) || s[n] != ':' {
			return nil, false
		}
		v, n2, ok := flatString(s, n+1)
		if !ok || n2 >= len(s) {
			return nil, false
		}
		m[k] = v
		switch s[n2] {
		case ',':
			i = n2 + 1
		case '}':
			return m, n2 == len(s)-1
		default:
			return nil, false
		}
	}
}

// flatString reads a JSON string starting at s[i] and returns it and the
// index after its closing quote.
func flatString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			if v := s[i+1 : j]; utf8.ValidString(v) {
				return v, j + 1, true
			}
			v, err := unquoteJSON(s[i : j+1]) // invalid UTF-8 becomes U+FFFD, as encoding/json does
			return v, j + 1, err == nil
		case c == '\\':
			// Escapes: find the end, then let strconv undo them.
			for k := j; k < len(s); k++ {
				if s[k] == '\\' {
					k++
					continue
				}
				if s[k] == '"' {
					v, err := unquoteJSON(s[i : k+1])
					return v, k + 1, err == nil
				}
			}
			return "", 0, false
		case c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

func unquoteJSON(q string) (string, error) {
	var v string
	err := json.Unmarshal([]byte(q), &v)
	return v, err
}

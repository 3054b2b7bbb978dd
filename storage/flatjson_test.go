package storage

import (
	"encoding/json"
	"maps"
	"testing"
)

func FuzzDecodeProps(f *testing.F) {
	for _, seed := range []map[string]string{
		{}, {"name": "web", "cpu": "2000"}, {"user:x": "a \"quoted\" \\ <b> & \u00e9\n\ttab"}, {"": ""},
	} {
		b, _ := json.Marshal(seed)
		f.Add(string(b))
	}
	f.Add(`{"a":"b",}`)
	f.Add(`{"a":1}`)
	f.Add(`{"a":"b"}x`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeProps(s)
		var want map[string]string
		wantErr := json.Unmarshal([]byte(s), &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/json says %v", s, err, wantErr)
		}
		if err == nil && !maps.Equal(got, want) {
			t.Fatalf("%q: %v, encoding/json says %v", s, got, want)
		}
	})
}

package eh

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWantsJSON(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"application/json"}, true},
		{[]string{"Application/JSON"}, true},
		{[]string{"application/json; charset=utf-8"}, true},
		{[]string{"text/plain"}, false},
		{[]string{"*/*"}, false},
		{[]string{"*/*; q=0.5, application/xml"}, false}, // rest-client's default
		{[]string{"application/json;q=0"}, false},
		{[]string{"text/plain, application/json"}, false},
		{[]string{"application/json, text/plain, */*"}, true}, // axios
		{[]string{"text/plain;q=0.5, application/json"}, true},
		{[]string{"application/json;q=0.4, text/plain;q=0.9"}, false},
		{[]string{"text/plain", "application/json;q=2"}, true}, // two header lines
		{[]string{"garbage;;;", "application/json"}, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/servers/info", nil)
		for _, a := range tt.accept {
			r.Header.Add("Accept", a)
		}
		if got := WantsJSON(r); got != tt.want {
			t.Errorf("WantsJSON(Accept %q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestAppendText(t *testing.T) {
	p := Props{"name": "a b", "cpu": "2000", "boot": "ide:0:0", "empty": "", "notes": "l1\nl2", "path": `C:\n\x`}
	want := "boot ide:0:0\ncpu 2000\nname a b\nnotes l1\\nl2\npath C:\\\\n\\x\n"
	if got := string(p.AppendText(nil)); got != want {
		t.Errorf("AppendText = %q, want %q", got, want)
	}
	if got := string(Props{}.AppendText(nil)); got != "" {
		t.Errorf("empty Props renders %q", got)
	}
}

func TestAppendBlocksAndList(t *testing.T) {
	objs := []Props{
		{"server": "s1", "cpu": "2000", "mem": "1024"},
		{"server": "s2", "cpu": "500", "mem": "256"},
	}
	if got, want := string(AppendBlocks(nil, objs)), "cpu 2000\nmem 1024\nserver s1\n\ncpu 500\nmem 256\nserver s2\n"; got != want {
		t.Errorf("AppendBlocks = %q, want %q", got, want)
	}
	if got, want := string(AppendList(nil, objs, "server", "cpu", "mem")), "s1 2000 1024\ns2 500 256\n"; got != want {
		t.Errorf("AppendList = %q, want %q", got, want)
	}
	// Objects of the same size but other keys are sorted on their own.
	mixed := []Props{{"b": "1", "a": "2"}, {"c": "3", "a": "4"}, {"a": "5", "c": "6"}, {"z": "7"}, {}, {"y": "8", "x": "9"}}
	if got, want := string(AppendBlocks(nil, mixed)), "a 2\nb 1\n\na 4\nc 3\n\na 5\nc 6\n\nz 7\n\n\nx 9\ny 8\n"; got != want {
		t.Errorf("AppendBlocks(mixed) = %q, want %q", got, want)
	}
	if got, want := string(AppendJSONArray(nil, mixed)), `[{"a":"2","b":"1"},{"a":"4","c":"3"},{"a":"5","c":"6"},{"z":"7"},{},{"x":"9","y":"8"}]`; got != want {
		t.Errorf("AppendJSONArray(mixed) = %s, want %s", got, want)
	}
	if got := string(AppendBlocks(nil, nil)); got != "" {
		t.Errorf("no blocks renders %q", got)
	}
	if got := string(AppendJSONArray(nil, nil)); got != "[]" {
		t.Errorf("empty JSON array renders %q", got)
	}
}

func TestAppendJSONTyping(t *testing.T) {
	p := Props{
		"cpu": "2000", "mem": "1024", "size": "10737418240", "started": "1291493868",
		"rx": "455530", "tx": "2550", "rx:packets": "7583", "tx:packets": "31",
		"rx:bytes": "455530", "tx:bytes": "2550",
		"nic:0:rx:bytes": "1", "nic:0:rx:packets": "2", "nic:1:tx:bytes": "3", "nic:1:tx:packets": "4",
		"smp:cores": "1", "smp": "2",
		"read:bytes": "4096", "ide:0:0:read:bytes": "45686784", "block:0:write:requests": "1",
		"persistent": "true", "name": "2000", "nic:0:model": "e1000", "nic:0:dhcp:ip": "1.2.3.4",
		"nic:0:mac": "aa:bb:cc:dd:ee:ff", "nic:x:rx:bytes": "5",
	}
	var got map[string]any
	if err := json.Unmarshal(p.AppendJSON(nil), &got); err != nil {
		t.Fatalf("AppendJSON is not JSON: %v", err)
	}
	numbers := []string{"cpu", "mem", "size", "started", "rx", "tx", "rx:packets", "tx:packets", "rx:bytes", "tx:bytes",
		"nic:0:rx:bytes", "nic:0:rx:packets", "nic:1:tx:bytes", "nic:1:tx:packets", "smp:cores", "smp"}
	for _, k := range numbers {
		if _, ok := got[k].(float64); !ok {
			t.Errorf("%s = %#v, want a JSON number", k, got[k])
		}
	}
	for _, k := range []string{"read:bytes", "ide:0:0:read:bytes", "block:0:write:requests", "persistent", "name",
		"nic:0:model", "nic:0:dhcp:ip", "nic:0:mac", "nic:x:rx:bytes"} {
		if _, ok := got[k].(string); !ok {
			t.Errorf("%s = %#v, want a JSON string", k, got[k])
		}
	}
	// smp is a string when auto, and a number key whose value is not a plain
	// integer stays a string rather than producing invalid JSON.
	for _, p := range []Props{{"smp": "auto"}, {"cpu": "01"}, {"mem": "-5"}, {"size": "1e3"}, {"started": ""}} {
		b := p.AppendJSON(nil)
		if !json.Valid(b) {
			t.Errorf("%q renders invalid JSON %s", p, b)
		}
		if strings.Contains(string(b), ":") && !strings.Contains(string(b), `":"`) {
			t.Errorf("%q renders %s, want a string value", p, b)
		}
	}
}

func TestAppendJSONEscaping(t *testing.T) {
	values := []string{"plain", `quote " backslash \ slash /`, "nl\ncr\rtab\t", "\x00\x1f\x7f", "é ☃ 𝄞", "\u2028\u2029", "bad \xff utf8", "<script>&"}
	for _, v := range values {
		b := Props{"k": v}.AppendJSON(nil)
		var got map[string]string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("value %q renders invalid JSON %s: %v", v, b, err)
			continue
		}
		want := strings.ToValidUTF8(v, "\uFFFD")
		if got["k"] != want {
			t.Errorf("value %q renders %s, reads back %q", v, b, got["k"])
		}
	}
	if b, _ := json.Marshal([]Props{{"cpu": "5"}, {}}); string(b) != `[{"cpu":5},{}]` {
		t.Errorf("json.Marshal([]Props) = %s", b)
	}
}

func TestWriteProps(t *testing.T) {
	p := Props{"drive": "d1", "size": "1024"}
	for _, tt := range []struct {
		accept, contentType, output, body string
	}{
		{"", "text/plain; charset=utf-8", "properties", "drive d1\nsize 1024\n"},
		{"application/json", "application/json", "", `{"drive":"d1","size":1024}`},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/drives/d1/info", nil)
		r.Header.Set("Accept", tt.accept)
		WriteProps(w, r, p)
		checkResponse(t, w, http.StatusOK, tt.contentType, tt.output, tt.body)
	}
}

func TestWriteBlocksAndList(t *testing.T) {
	objs := []Props{{"type": "ip", "resource": "1.2.3.4", "user": "u"}, {"type": "ip", "resource": "1.2.3.5", "user": "u"}}
	for _, tt := range []struct {
		accept, contentType, output, body string
		write                             func(w http.ResponseWriter, r *http.Request)
	}{
		{"", "text/plain; charset=utf-8", "list", "ip 1.2.3.4\nip 1.2.3.5\n",
			func(w http.ResponseWriter, r *http.Request) { WriteList(w, r, objs, "type", "resource") }},
		{"application/json", "application/json", "", `[{"resource":"1.2.3.4","type":"ip"},{"resource":"1.2.3.5","type":"ip"}]`,
			func(w http.ResponseWriter, r *http.Request) { WriteList(w, r, objs, "type", "resource") }},
		{"", "text/plain; charset=utf-8", "properties", "resource 1.2.3.4\ntype ip\nuser u\n\nresource 1.2.3.5\ntype ip\nuser u\n",
			func(w http.ResponseWriter, r *http.Request) { WriteBlocks(w, r, objs) }},
		{"application/json", "application/json", "", `[{"resource":"1.2.3.4","type":"ip","user":"u"},{"resource":"1.2.3.5","type":"ip","user":"u"}]`,
			func(w http.ResponseWriter, r *http.Request) { WriteBlocks(w, r, objs) }},
		{"", "text/plain; charset=utf-8", "list", "",
			func(w http.ResponseWriter, r *http.Request) { WriteList(w, r, nil, "drive") }},
		{"application/json", "application/json", "", "[]",
			func(w http.ResponseWriter, r *http.Request) { WriteBlocks(w, r, nil) }},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/resources/ip/list", nil)
		r.Header.Set("Accept", tt.accept)
		tt.write(w, r)
		checkResponse(t, w, http.StatusOK, tt.contentType, tt.output, tt.body)
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err          error
		status       int
		word, body   string
		authenticate bool
	}{
		{Usagef("unknown server key %s", "foo"), 400, "usage", "unknown server key foo\n", false},
		{Authf("no credentials"), 401, "auth", "no credentials\n", true},
		{Billingf("over quota"), 402, "billing", "over quota\n", false},
		{Missingf("server %s could not be found", "x"), 404, "missing", "server x could not be found\n", false},
		{Methodf("use POST"), 405, "method", "use POST\n", false},
		{Busyf("drive d is imaging"), 409, "busy", "drive d is imaging\n", false},
		{Failedf("drive d vanished"), 500, "failed", "drive d vanished\n", false},
		{Systemf("no guest runtime"), 500, "system", "no guest runtime\n", false},
		{Fullf("disk full"), 507, "full", "disk full\n", false},
		{fmt.Errorf("starting: %w", Busyf("server s is active")), 409, "busy", "server s is active\n", false},
		{errors.New("database is locked\nsecond line"), 500, "system", "database is locked second line\n", false},
		{Usagef("multi\nline\r\nmessage"), 400, "usage", "multi line message\n", false},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		w.Header().Set("X-Elastic-Output", "properties") // set before the failure; must not leak
		WriteError(w, tt.err)
		checkResponse(t, w, tt.status, "text/plain; charset=utf-8", "", tt.body)
		if got := w.Header().Get("X-Elastic-Error"); got != tt.word {
			t.Errorf("%v: X-Elastic-Error %q, want %q", tt.err, got, tt.word)
		}
		if got := w.Header().Get("WWW-Authenticate") != ""; got != tt.authenticate {
			t.Errorf("%v: WWW-Authenticate present = %v", tt.err, got)
		}
	}
}

func TestErrorIs(t *testing.T) {
	cause := errors.New("disk on fire")
	err := fmt.Errorf("create: %w", Failedf("writing drive %s: %w", "d", cause))
	if !errors.Is(err, ErrFailed) || errors.Is(err, ErrSystem) || errors.Is(err, ErrUsage) {
		t.Errorf("errors.Is against the sentinels is wrong for %v", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("the %%w cause of %v is not reachable", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 500 || e.Word != "failed" || e.Message != "writing drive d: disk on fire" {
		t.Errorf("errors.As gives %+v", e)
	}
	if got := e.Error(); got != "failed: writing drive d: disk on fire" {
		t.Errorf("Error() = %q", got)
	}
}

func TestAsErrorNil(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, nil)
	checkResponse(t, w, 500, "text/plain; charset=utf-8", "", "internal error\n")
}

func checkResponse(t *testing.T, w *httptest.ResponseRecorder, status int, contentType, output, body string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d", w.Code, status)
	}
	if got := w.Header().Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type %q, want %q", got, contentType)
	}
	if got := w.Header().Get("X-Elastic-Output"); got != output {
		t.Errorf("X-Elastic-Output %q, want %q", got, output)
	}
	if got := w.Body.String(); got != body {
		t.Errorf("body %q, want %q", got, body)
	}
	if got, want := w.Header().Get("Content-Length"), fmt.Sprint(len(body)); got != want {
		t.Errorf("Content-Length %s, want %s", got, want)
	}
}

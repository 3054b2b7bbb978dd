package api

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/web/eh"
)

// TestDriveCallsUnderContention has clients write, read, resize, image, clone
// and rename the same drives over HTTP, destroying them among the calls.
// Every answer must be success, 409 busy, 404, or a 400 the caller caused (a
// read past an end that moved); a 200 read carries every byte it promised; a
// destroy is busy only while the drive is imaged (to or from), and succeeds
// once the clients stop.
func TestDriveCallsUnderContention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, store := newService(t)
	root := Caller{Admin: true}
	alice, _, err := s.CreateUser(ctx, root, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Handler().ServeHTTP(w, r.WithContext(WithCaller(r.Context(), alice)))
	}))
	defer srv.Close()
	type answer struct {
		status int
		body   string
		err    error
	}
	call := func(method, path, body string) answer {
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body) // a body short of its Content-Length is an error
		return answer{resp.StatusCode, string(b), err}
	}
	create := func(props string) string {
		p, err := s.CreateDrive(ctx, alice, parseProps(t, props))
		if err != nil {
			t.Fatal(err)
		}
		return p["drive"]
	}
	src := create("name src\nsize 4194304")
	if a := call("POST", "/drives/"+src+"/write/0", strings.Repeat("s", 4<<20)); a.status != 204 {
		t.Fatalf("write source: %+v", a)
	}
	var ids []string
	for range 3 {
		ids = append(ids, create("name d\nsize 8388608"))
	}

	var mu sync.Mutex
	var clones []string
	destroyed := map[string]bool{}
	check := func(id, action string, a answer) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case action == "destroy" && a.status == 204:
			destroyed[id] = true
		case action == "destroy" && a.status == 409 && (strings.Contains(a.body, " is being imaged — ") || strings.Contains(a.body, " is being imaged into ")):
		case action == "destroy":
			t.Errorf("destroy %s: %d %q %v (busy only while imaging to or from it)", id, a.status, a.body, a.err)
		case a.err != nil:
			t.Errorf("%s %s: %d, %v", action, id, a.status, a.err)
		case a.status == 200, a.status == 204, a.status == 409, a.status == 404:
		case action == "read" && a.status == 400 && strings.Contains(a.body, "past the end"):
		default:
			t.Errorf("%s %s: %d %q", action, id, a.status, a.body)
		}
		if action == "clone" && a.status == 200 {
			clones = append(clones, parseProps(t, a.body)["drive"])
		}
	}
	do := func(id, action string, rng *rand.Rand) {
		var a answer
		switch action {
		case "write":
			a = call("POST", fmt.Sprintf("/drives/%s/write/%d", id, rng.IntN(4)<<20), strings.Repeat("w", 1<<20))
		case "read":
			a = call("GET", fmt.Sprintf("/drives/%s/read/%d/1M", id, rng.IntN(8)<<20), "")
		case "resize":
			a = call("POST", "/drives/"+id+"/set", fmt.Sprintf("size %dM", 4+rng.IntN(8)))
		case "image":
			a = call("POST", "/drives/"+id+"/image/"+src, "")
		case "clone":
			a = call("POST", "/drives/"+id+"/clone", "name c")
		case "rename":
			a = call("POST", "/drives/"+id+"/set", "name r")
		case "destroy":
			a = call("POST", "/drives/"+id+"/destroy", "")
		}
		check(id, action, a)
	}
	actions := []string{"write", "read", "resize", "image", "clone", "rename"}
	race := func(d time.Duration) {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) {
					do(ids[rng.IntN(len(ids))], actions[rng.IntN(len(actions))], rng)
				}
			}()
		}
		wg.Wait()
	}
	race(2 * time.Second)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); do(id, "destroy", nil) }()
	}
	race(time.Second)
	wg.Wait()

	for _, id := range append(append([]string{}, ids...), clones...) {
		if _, err := store.WaitImaging(ctx, id); err != nil && !destroyed[id] {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if !destroyed[id] {
			if a := call("POST", "/drives/"+id+"/destroy", ""); a.status != 204 {
				t.Errorf("destroy %s after the clients stopped: %d %q", id, a.status, a.body)
			}
		}
	}
	// A job a call started must not fail for what another call did later.
	for _, id := range append(ids, clones...) {
		events, err := store.Events(ctx, id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Kind == "drive.image" && strings.Contains(e.Message, "failed") {
				t.Errorf("drive %s: %s", id, e.Message)
			}
		}
	}
	t.Logf("%d clones", len(clones))
}

func parseProps(t *testing.T, text string) eh.Props {
	t.Helper()
	p, err := eh.ParseProps(strings.NewReader(text), 1<<20)
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return p
}

package dash

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"hearth/web/eh"
)

// BenchmarkServerRows measures the live servers table an open servers page
// fetches every 2 s: 200 servers read through the API service from SQLite
// and rendered, over real HTTP.
func BenchmarkServerRows(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := range 200 {
		if _, err := e.service.CreateServer(ctx, e.admin, eh.Props{"name": fmt.Sprintf("server-%03d", i), "cpu": "1000", "mem": "512",
			"nic:0:model": "virtio", "nic:0:dhcp": "auto", "persistent": "true"}, false); err != nil {
			b.Fatal(err)
		}
	}
	br := e.browser()
	if r := br.tryLogin("root", e.secret); r.status != http.StatusSeeOther {
		b.Fatalf("login: %d", r.status)
	}
	req := httptest.NewRequest(http.MethodGet, e.srv.URL+"/ui/servers/rows", nil)
	req.RequestURI = ""
	b.ResetTimer()
	for b.Loop() {
		res, err := br.c.Do(req.Clone(ctx))
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("rows: %v %v", err, res)
		}
		res.Body.Close()
	}
}

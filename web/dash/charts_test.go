package dash

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"hearth/storage"
)

// The server page draws the history the store keeps: the last hour by
// default, the last day on ?range=24h; units, peak, axis and each slot's
// value for the readout are in the page.
func TestServerPageGraphsHistory(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("root", e.secret)
	id := b.createStarted("web1")["server"]
	now := e.clock.now()
	var readings []storage.ServerSample
	for ago := 2 * time.Hour; ago >= 0; ago -= sampleEvery {
		rx := 1024.0
		if ago == 20*time.Minute {
			rx = 3 << 20 // a burst, twenty minutes ago
		}
		readings = append(readings, storage.ServerSample{Server: id, Sample: storage.Sample{Time: now.Add(-ago), Rx: rx, Tx: 10}})
	}
	if err := e.store.RecordSamples(context.Background(), readings); err != nil {
		t.Fatal(err)
	}
	burst := now.Add(-20 * time.Minute).Truncate(sampleEvery)

	hour := b.get("/ui/servers/" + id + "/live")
	if hour.status != http.StatusOK {
		t.Fatalf("live: %d", hour.status)
	}
	// The axis ends at the page's now, which may be a minute past the test's.
	if end := clockUTC(e.clock.now()) + " UTC</span>"; !strings.Contains(hour.body, clockUTC(now)+" UTC</span>") && !strings.Contains(hour.body, end) {
		t.Errorf("last hour's axis does not end now (%s)", end)
	}
	for _, want := range []string{
		`<span class="unit">bytes/s</span>`,
		`<div class="value">1 KiB/s</div>`, // the last interval, not 0 B/s after the burst
		"peak 3 MiB/s at " + clockUTC(burst),
		`aria-label="Network in, last hour"`,
		`aria-current="true">Last hour</a>`,
		`data-step="10"`,
	} {
		if !strings.Contains(hour.body, want) {
			t.Errorf("last hour lacks %q", want)
		}
	}
	day := b.get("/ui/servers/" + id + "/live?range=24h")
	if !strings.Contains(day.body, `aria-label="Network in, last 24 hours"`) || !strings.Contains(day.body, `data-step="300"`) ||
		!strings.Contains(day.body, `aria-current="true">Last 24 hours</a>`) {
		t.Fatalf("24 h range not shown: %s", day.body)
	}
	// The burst is averaged into its 5-minute step: 30 readings, one of 3 MiB/s.
	if want := "peak " + rateText((3<<20+29*1024)/30.0) + " at " + clockUTC(burst.Truncate(5*time.Minute)); !strings.Contains(day.body, want) {
		t.Errorf("24 h peak: want %q", want)
	}
}

// BenchmarkServerLive measures the server page's live fragment an open page
// fetches every 2.5 s, for a running server with a full history: the last
// hour's 360 readings per graph from SQLite, drawn and rendered, over real
// HTTP.
func BenchmarkServerLive(b *testing.B) {
	e := newEnv(b)
	br := e.browser()
	if r := br.tryLogin("root", e.secret); r.status != http.StatusSeeOther {
		b.Fatalf("login: %d", r.status)
	}
	br.get("/ui/servers")
	id := br.createStarted("web1")["server"]
	now := e.clock.now()
	var readings []storage.ServerSample
	for ago := 25 * time.Hour; ago >= 0; ago -= sampleEvery {
		readings = append(readings, storage.ServerSample{Server: id, Sample: storage.Sample{Time: now.Add(-ago), Rx: float64(ago % 7919),
			Tx: 10, Read: 5, Write: 1, Usage: true, CPU: 1e8, Memory: 1 << 20}})
	}
	if err := e.store.RecordSamples(context.Background(), readings); err != nil {
		b.Fatal(err)
	}
	for _, rng := range chartRanges {
		b.Run(rng.Name, func(b *testing.B) {
			for b.Loop() {
				if r := br.get("/ui/servers/" + id + "/live?range=" + rng.Name); r.status != http.StatusOK {
					b.Fatalf("live: %d", r.status)
				}
			}
		})
	}
}

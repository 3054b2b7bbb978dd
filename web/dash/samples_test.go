package dash

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"hearth/storage"
	"hearth/web/api"
)

func TestRatesOverTheSampleInterval(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	prev := reading{at: t0, counters: api.ServerCounters{RxBytes: 1000, ReadBytes: 10, CPUNanos: 1e9, UsageKnown: true, MemoryBytes: 1}}
	cur := reading{at: t0.Add(10 * time.Second), counters: api.ServerCounters{RxBytes: 1000 + 50<<20, TxBytes: 100, ReadBytes: 10,
		CPUNanos: 6e9, UsageKnown: true, MemoryBytes: 64 << 20}}
	smp, ok := rates(prev, cur)
	if !ok || smp.Rx != 5<<20 || smp.Tx != 10 || smp.Read != 0 || !smp.Usage || smp.CPU != 5e8 || smp.Memory != 64<<20 || !smp.Time.Equal(cur.at) {
		t.Fatalf("rates = %+v, %v; want 5 MiB/s in, 10 B/s out, half a core, 64 MiB", smp, ok)
	}
	if _, ok := rates(cur, prev); ok {
		t.Error("an interval going back in time gave rates")
	}
	restarted := cur
	restarted.at = cur.at.Add(10 * time.Second)
	restarted.counters.RxBytes = 10
	if _, ok := rates(cur, restarted); ok {
		t.Error("a counter that went back (guest restarted) gave a rate")
	}
	late := cur
	late.at = cur.at.Add(time.Minute)
	late.counters.RxBytes += 60 << 20
	if _, ok := rates(cur, late); ok {
		t.Error("a stalled sampler's long interval gave a rate (a burst smeared over a minute)")
	}
	noUsage := cur
	noUsage.at = cur.at.Add(10 * time.Second)
	noUsage.counters.UsageKnown = false
	if smp, ok := rates(cur, noUsage); !ok || smp.Usage {
		t.Errorf("usage not reported: %+v %v", smp, ok)
	}
}

// memHistory is a HistoryStore in memory, for the sampler's tests.
type memHistory struct{ got []storage.ServerSample }

func (m *memHistory) RecordSamples(_ context.Context, r []storage.ServerSample) error {
	m.got = append(m.got, r...)
	return nil
}
func (m *memHistory) Samples(context.Context, string, int, time.Time) ([]storage.Sample, error) {
	return nil, nil
}
func (m *memHistory) PruneSamples(context.Context, time.Time) error { return nil }

func TestSamplerKeepsRatesAfterABurst(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := &memHistory{}
	s := newSampler(h, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	rx := uint64(0)
	for _, burst := range []uint64{0, 100 << 20, 0, 0} {
		rx += burst
		s.record(ctx, []api.ServerCounters{{Server: "a", Active: true, RxBytes: rx}, {Server: "b"}})
		now = now.Add(sampleEvery)
	}
	if len(h.got) != 3 {
		t.Fatalf("recorded %d samples, want 3 (one per interval after the first reading; none for a stopped server)", len(h.got))
	}
	if got := h.got[0].Rx; got != float64(100<<20)/sampleEvery.Seconds() {
		t.Fatalf("burst interval rate %v B/s", got)
	}
	// The server stops: its baseline goes, and after a restart the first
	// reading gives no rate.
	s.record(ctx, []api.ServerCounters{{Server: "a"}})
	now = now.Add(sampleEvery)
	s.record(ctx, []api.ServerCounters{{Server: "a", Active: true, RxBytes: 5}})
	if len(h.got) != 3 {
		t.Fatalf("a restart gave a sample: %+v", h.got[3:])
	}
}

func TestLiveStats(t *testing.T) {
	tier := storage.SampleTiers[0]
	now := time.Unix(1_800_000_000, 0).Add(5 * time.Second)
	from := now.Truncate(tier.Step).Add(tier.Step - tier.Keep)
	at := func(ago time.Duration) time.Time { return now.Truncate(tier.Step).Add(-ago) }
	hist := []storage.Sample{
		{Time: at(40 * time.Second), Rx: 3 << 20, Usage: true, CPU: 2.5e9, Memory: 100 << 20},
		{Time: at(30 * time.Second), Rx: 1 << 20, Usage: true, CPU: 5e8, Memory: 120 << 20},
		// a gap: the server was paused
		{Time: at(10 * time.Second), Rx: 0, Usage: true, CPU: 5e8, Memory: 120 << 20},
		{Time: at(0), Rx: 1 << 20, Usage: true, CPU: 5e8, Memory: 120 << 20},
	}
	stats := liveStats(hist, chartRanges[0], from, now, api.ServerCounters{RxBytes: 5 << 20, CPUNanos: 25e8, MemoryBytes: 125 << 20, UsageKnown: true})
	got := map[string]liveStat{}
	for _, s := range stats {
		got[s.Label] = s
	}
	in := got["Network in"]
	if in.Now != "1 MiB/s" || in.Total != "5 MiB total" || in.Unit != "bytes/s" || in.Spark.Empty {
		t.Errorf("network in: %+v", in)
	}
	if in.Spark.Peak != "peak 3 MiB/s at "+clockUTC(at(40*time.Second)) {
		t.Errorf("network in peak %q", in.Spark.Peak)
	}
	if n := strings.Count(in.Spark.Line, "M"); n != 2 {
		t.Errorf("network in line has %d segments, want 2 around the gap: %s", n, in.Spark.Line)
	}
	values := strings.Split(in.Spark.Values, "|")
	if len(values) != tier.Rows() || values[len(values)-1] != "1 MiB/s" || values[len(values)-2] != "0 B/s" || values[len(values)-3] != "" {
		t.Errorf("network in values: %d, ends %q", len(values), values[len(values)-3:])
	}
	if want := clockUTC(from); in.Spark.Axis[0] != want || in.Spark.Axis[2] != clockUTC(now)+" UTC" {
		t.Errorf("axis %q, want from %s to now", in.Spark.Axis, want)
	}
	if s := got["CPU"]; s.Now != "50%" || s.Unit != "% of one core" || s.Spark.Peak != "peak 250% at "+clockUTC(at(40*time.Second)) {
		t.Errorf("cpu: %+v", s)
	}
	if s := got["Memory used"]; s.Now != "125 MiB" || s.Total != "in use now" || s.Spark.Empty {
		t.Errorf("memory: %+v", s)
	}
	// The latest row is stale (the sampler stopped): no value for now.
	if s := liveStats(hist, chartRanges[0], from, now.Add(time.Minute), api.ServerCounters{}); s[0].Now != "—" {
		t.Errorf("stale history shows %q now", s[0].Now)
	}
	if stats := liveStats(nil, chartRanges[0], from, now, api.ServerCounters{}); len(stats) != 4 || !stats[0].Spark.Empty || stats[0].Now != "—" {
		t.Errorf("without cpu and memory reported and no history: %+v", stats)
	}
}

func TestSparklineOfNothing(t *testing.T) {
	from := time.Unix(1_800_000_000, 0)
	sp := newSparkline("Disk read", "last hour", []float64{0, 0, 0}, from, 10*time.Second, rateText)
	if sp.Empty || sp.Peak != "0 B/s throughout" || !strings.Contains(sp.Label, "Disk read: 0 B/s throughout") {
		t.Fatalf("an idle graph: %+v", sp)
	}
	if sp := newSparkline("Disk read", "last hour", []float64{math.NaN(), 5, math.NaN()}, from, 10*time.Second, rateText); !sp.Empty {
		t.Fatalf("one reading drew a graph: %+v", sp)
	}
}

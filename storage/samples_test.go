package storage

import (
	"context"
	"testing"
	"time"
)

func TestSamplesDownsampleAndPrune(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	u := mustUser(t, s, "alice", false)
	srv, err := s.CreateServer(ctx, u.ID, map[string]string{"name": "web"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0) // a multiple of 5 minutes
	// 25 hours of readings every 10 s: rx is 100 B/s in the first half of
	// each 5-minute step and 300 B/s in the second; memory 1 MiB; usage
	// not reported in the very first step.
	const n = 25 * 360
	var batch []ServerSample
	for i := range n {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		rx := 100.0
		if i%30 >= 15 {
			rx = 300
		}
		batch = append(batch, ServerSample{Server: srv.ID, Sample: Sample{Time: at, Rx: rx, Usage: i >= 30, CPU: 5e8, Memory: 1 << 20}})
		if len(batch) == 500 || i == n-1 {
			if err := s.RecordSamples(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	end := t0.Add((n - 1) * 10 * time.Second)
	fine, err := s.Samples(ctx, srv.ID, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fine) != SampleTiers[0].Rows() {
		t.Fatalf("fine tier keeps %d rows, want the budget %d", len(fine), SampleTiers[0].Rows())
	}
	if last := fine[len(fine)-1]; !last.Time.Equal(end) || last.Rx != 300 || !last.Usage || last.CPU != 5e8 {
		t.Fatalf("newest fine row %+v", last)
	}
	if first := fine[0]; end.Sub(first.Time) >= time.Hour {
		t.Fatalf("fine tier reaches back to %v, an hour before %v", first.Time, end)
	}
	coarse, err := s.Samples(ctx, srv.ID, 1, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(coarse) != SampleTiers[1].Rows() {
		t.Fatalf("coarse tier keeps %d rows, want %d", len(coarse), SampleTiers[1].Rows())
	}
	for _, c := range coarse {
		if c.Rx != 200 || c.Time.Unix()%300 != 0 || !c.Usage || c.Memory != 1<<20 {
			t.Fatalf("coarse row %+v: want the 5-minute average 200 B/s on a 5-minute boundary", c)
		}
	}
	if span := end.Sub(coarse[0].Time); span < 23*time.Hour+55*time.Minute || span > 24*time.Hour {
		t.Fatalf("coarse tier spans %v", span)
	}
	since, _ := s.Samples(ctx, srv.ID, 0, end.Add(-time.Minute))
	if len(since) != 7 {
		t.Fatalf("rows in the last minute: %d, want 7", len(since))
	}

	// A reading in the same step replaces the first.
	if err := s.RecordSamples(ctx, []ServerSample{{Server: srv.ID, Sample: Sample{Time: end.Add(3 * time.Second), Rx: 7}}}); err != nil {
		t.Fatal(err)
	}
	fine, _ = s.Samples(ctx, srv.ID, 0, end)
	if len(fine) != 1 || fine[0].Rx != 7 || fine[0].Usage {
		t.Fatalf("replaced row %+v", fine)
	}

	// A day later PruneSamples empties both tiers of a server no longer sampled.
	if err := s.PruneSamples(ctx, end.Add(24*time.Hour+5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for tier := range SampleTiers {
		if left, _ := s.Samples(ctx, srv.ID, tier, time.Time{}); len(left) != 0 {
			t.Fatalf("tier %d kept %d rows after its window", tier, len(left))
		}
	}
}

func TestSamplesGoWithTheServer(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	u := mustUser(t, s, "alice", false)
	srv, _ := s.CreateServer(ctx, u.ID, map[string]string{"name": "web"})
	now := time.Unix(1_800_000_000, 0)
	if err := s.RecordSamples(ctx, []ServerSample{{Server: srv.ID, Sample: Sample{Time: now, Tx: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServer(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.db.QueryRow(`SELECT count(*) FROM samples`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d sample rows left after the server was destroyed (%v)", left, err)
	}
	// A late reading of the destroyed server is dropped, not an error.
	if err := s.RecordSamples(ctx, []ServerSample{{Server: srv.ID, Sample: Sample{Time: now.Add(10 * time.Second)}}}); err != nil {
		t.Fatal(err)
	}
}

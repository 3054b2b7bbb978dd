package dash

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"hearth/web/api"
)

// How often counters are sampled and how many samples are kept per server
// (10 minutes of history).
const (
	sampleEvery = 5 * time.Second
	sampleKeep  = 120
)

// counterSample is one reading of a running server's cumulative counters.
type counterSample struct {
	at     time.Time
	values map[string]uint64 // metric name → cumulative value
}

// metric is one live counter the server page shows.
type metric struct {
	Name     string // "rx", "tx", "read", "write", "cpu", "mem"
	Label    string
	Kind     metricKind
	Optional bool // shown only when the guest layer reports it
}

type metricKind int

const (
	byteRate  metricKind = iota // cumulative bytes, shown per second
	cpuShare                    // cumulative CPU nanoseconds, shown as % of one core
	byteGauge                   // bytes in use, shown as they are
)

var metrics = []metric{
	{Name: "cpu", Label: "CPU", Kind: cpuShare, Optional: true},
	{Name: "mem", Label: "Memory used", Kind: byteGauge, Optional: true},
	{Name: "rx", Label: "Network in", Kind: byteRate},
	{Name: "tx", Label: "Network out", Kind: byteRate},
	{Name: "read", Label: "Disk read", Kind: byteRate},
	{Name: "write", Label: "Disk write", Kind: byteRate},
}

// counterValues are a server's cumulative counters by metric name; cpu and
// mem only when the guest layer reports them.
func counterValues(c api.ServerCounters) map[string]uint64 {
	v := map[string]uint64{"rx": c.RxBytes, "tx": c.TxBytes, "read": c.ReadBytes, "write": c.WriteBytes}
	if c.UsageKnown {
		v["cpu"], v["mem"] = c.CPUNanos, c.MemoryBytes
	}
	return v
}

// sampler keeps recent counter readings of running servers, so the server
// page can draw rates over the last minutes. It samples in the background on
// behalf of the users who have a live session (nobody logged in, nothing to
// show), and also records every reading a page fetched anyway.
type sampler struct {
	mu      sync.Mutex
	byID    map[string][]counterSample
	callers map[string]User // users seen recently, by ID
	seen    map[string]time.Time
	now     func() time.Time
}

func newSampler(now func() time.Time) *sampler {
	return &sampler{byID: map[string][]counterSample{}, callers: map[string]User{}, seen: map[string]time.Time{}, now: now}
}

// noteCaller remembers a user to sample for.
func (s *sampler) noteCaller(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callers[u.ID] = u
	s.seen[u.ID] = s.now()
}

// record stores a reading of each running server; readings closer together
// than half the sampling period are skipped. Servers that are not running
// lose their history, so a restart starts a fresh graph.
func (s *sampler) record(servers []api.ServerCounters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, c := range servers {
		id := c.Server
		if !c.Active {
			delete(s.byID, id)
			continue
		}
		hist := s.byID[id]
		if n := len(hist); n > 0 && now.Sub(hist[n-1].at) < sampleEvery/2 {
			continue
		}
		hist = append(hist, counterSample{at: now, values: counterValues(c)})
		if len(hist) > sampleKeep {
			hist = hist[len(hist)-sampleKeep:]
		}
		s.byID[id] = hist
	}
}

// history returns a copy of a server's readings, oldest first.
func (s *sampler) history(id string) []counterSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]counterSample(nil), s.byID[id]...)
}

// run samples every sampleEvery until ctx ends, for the users seen within
// the idle window; one admin covers everyone.
func (s *sampler) run(ctx context.Context, b Servers, log *slog.Logger) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, u := range s.activeCallers() {
			servers, err := b.ServersCounters(ctx, u)
			if err != nil {
				log.Warn("sampling counters", "user", u.Name, "err", err)
				continue
			}
			s.record(servers)
		}
		s.forgetStale()
	}
}

// forgetStale drops the history of servers not sampled for as long as a
// history lasts (destroyed, or nobody looks at them any more).
func (s *sampler) forgetStale() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, hist := range s.byID {
		if now.Sub(hist[len(hist)-1].at) > sampleKeep*sampleEvery {
			delete(s.byID, id)
		}
	}
}

// activeCallers returns the users to sample for: one admin if any was seen,
// else every user seen in the last 30 minutes.
func (s *sampler) activeCallers() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []User
	for id, u := range s.callers {
		if now.Sub(s.seen[id]) > 30*time.Minute {
			delete(s.callers, id)
			delete(s.seen, id)
			continue
		}
		if u.Admin {
			return []User{u}
		}
		out = append(out, u)
	}
	return out
}

// liveStat is one counter tile of the server page.
type liveStat struct {
	Label string
	Rate  string // latest rate, e.g. "1.2 KiB/s"
	Total string // cumulative total
	Spark sparkline
}

// liveStats computes the tiles from a server's history and current counters.
func liveStats(hist []counterSample, current api.ServerCounters) []liveStat {
	cur := counterValues(current)
	out := make([]liveStat, 0, len(metrics))
	for _, m := range metrics {
		total, reported := cur[m.Name]
		if m.Optional && !reported {
			continue
		}
		st := liveStat{Label: m.Label, Rate: "—"}
		var values []float64
		switch m.Kind {
		case byteGauge:
			for _, h := range hist {
				values = append(values, float64(h.values[m.Name]))
			}
			st.Rate = humanBytes(total)
		default:
			for i := 1; i < len(hist); i++ {
				dt := hist[i].at.Sub(hist[i-1].at).Seconds()
				a, b := hist[i-1].values[m.Name], hist[i].values[m.Name]
				if dt <= 0 || b < a {
					values = append(values, 0)
					continue
				}
				values = append(values, float64(b-a)/dt)
			}
		}
		switch m.Kind {
		case byteRate:
			st.Total = humanBytes(total) + " total"
			if n := len(values); n > 0 {
				st.Rate = humanBytes(uint64(values[n-1])) + "/s"
			}
			st.Spark = newSparkline(values, func(v float64) string { return humanBytes(uint64(v)) + "/s" })
		case cpuShare:
			st.Total = humanDuration(time.Duration(total)) + " CPU time"
			if n := len(values); n > 0 {
				st.Rate = fmt.Sprintf("%.0f%% of a core", values[n-1]/1e7) // ns per s → %
			}
			st.Spark = newSparkline(values, func(v float64) string { return fmt.Sprintf("%.0f%% of a core", v/1e7) })
		case byteGauge:
			st.Total = "in use now"
			st.Spark = newSparkline(values, func(v float64) string { return humanBytes(uint64(v)) })
		}
		out = append(out, st)
	}
	return out
}

// sparkline is a small SVG line chart in a 100×30 box, drawn server-side.
type sparkline struct {
	Line  string // polyline points
	Area  string // polygon points (the line closed along the bottom)
	Label string // accessible description
	Empty bool
}

func newSparkline(values []float64, format func(float64) string) sparkline {
	if len(values) < 2 {
		return sparkline{Empty: true, Label: "collecting samples"}
	}
	peak := 0.0
	for _, v := range values {
		peak = max(peak, v)
	}
	var line strings.Builder
	step := 100.0 / float64(len(values)-1)
	for i, v := range values {
		y := 29.0
		if peak > 0 {
			y = 29 - v/peak*27
		}
		fmt.Fprintf(&line, "%.1f,%.1f ", float64(i)*step, y)
	}
	pts := strings.TrimSpace(line.String())
	return sparkline{
		Line:  pts,
		Area:  "0,30 " + pts + " 100,30",
		Label: fmt.Sprintf("peak %s over the last %d samples", format(peak), len(values)),
	}
}

package dash

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"hearth/storage"
	"hearth/web/api"
)

// HistoryStore keeps the servers' activity history (storage.Store): the
// sampler writes it, the server page draws it.
type HistoryStore interface {
	RecordSamples(ctx context.Context, readings []storage.ServerSample) error
	Samples(ctx context.Context, server string, tier int, since time.Time) ([]storage.Sample, error)
	PruneSamples(ctx context.Context, now time.Time) error
}

// sampleEvery is how often the sampler reads every running server's
// counters: the finest tier's step, so each reading fills one row.
var sampleEvery = storage.SampleTiers[0].Step

// pruneEvery is how often the history of servers no longer sampled is cut
// to the tiers' windows (a running server's is cut as it is written).
const pruneEvery = time.Hour

// samplerCaller is the appliance itself reading every server's counters:
// the history is kept whether anyone looks or not.
var samplerCaller = User{Name: "dashboard sampler", Admin: true}

// reading is a running server's cumulative counters at one moment.
type reading struct {
	at       time.Time
	counters api.ServerCounters
}

// sampler turns the running servers' cumulative counters into rates over
// each sampling interval and records them in the history store.
type sampler struct {
	mu    sync.Mutex
	last  map[string]reading // the previous reading of each running server
	store HistoryStore
	now   func() time.Time
	log   *slog.Logger
}

func newSampler(store HistoryStore, now func() time.Time, log *slog.Logger) *sampler {
	return &sampler{last: map[string]reading{}, store: store, now: now, log: log}
}

// rates returns the sample for the interval between two readings; false
// when there is none to tell: the interval is empty, too long (the sampler
// stalled: a burst would be smeared over it) or a counter went back (the
// guest restarted).
func rates(prev, cur reading) (storage.Sample, bool) {
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 || cur.at.Sub(prev.at) > 3*sampleEvery {
		return storage.Sample{}, false
	}
	p, c := prev.counters, cur.counters
	usage := p.UsageKnown && c.UsageKnown
	if c.RxBytes < p.RxBytes || c.TxBytes < p.TxBytes || c.ReadBytes < p.ReadBytes || c.WriteBytes < p.WriteBytes ||
		(usage && c.CPUNanos < p.CPUNanos) {
		return storage.Sample{}, false
	}
	per := func(a, b uint64) float64 { return float64(b-a) / dt }
	smp := storage.Sample{Time: cur.at,
		Rx: per(p.RxBytes, c.RxBytes), Tx: per(p.TxBytes, c.TxBytes),
		Read: per(p.ReadBytes, c.ReadBytes), Write: per(p.WriteBytes, c.WriteBytes)}
	if usage {
		smp.Usage, smp.CPU, smp.Memory = true, per(p.CPUNanos, c.CPUNanos), float64(c.MemoryBytes)
	}
	return smp, true
}

// record takes one reading of every server and writes the rates since the
// previous one. A server that stops loses its baseline: its graph has a gap
// and resumes one interval after it runs again.
func (s *sampler) record(ctx context.Context, servers []api.ServerCounters) {
	s.mu.Lock()
	now := s.now()
	var out []storage.ServerSample
	seen := make(map[string]bool, len(servers))
	for _, c := range servers {
		if !c.Active {
			continue
		}
		seen[c.Server] = true
		cur := reading{at: now, counters: c}
		if prev, ok := s.last[c.Server]; ok {
			if smp, ok := rates(prev, cur); ok {
				out = append(out, storage.ServerSample{Server: c.Server, Sample: smp})
			}
		}
		s.last[c.Server] = cur
	}
	for id := range s.last {
		if !seen[id] {
			delete(s.last, id)
		}
	}
	s.mu.Unlock()
	if err := s.store.RecordSamples(ctx, out); err != nil {
		s.log.Warn("recording counter samples", "servers", len(out), "err", err)
	}
}

// run samples every sampleEvery until ctx ends.
func (s *sampler) run(ctx context.Context, b Servers) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	lastPrune := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		servers, err := b.ServersCounters(ctx, samplerCaller)
		if err != nil {
			s.log.Warn("sampling counters", "err", err)
			continue
		}
		s.record(ctx, servers)
		if now := s.now(); now.Sub(lastPrune) >= pruneEvery {
			lastPrune = now
			if err := s.store.PruneSamples(ctx, now); err != nil {
				s.log.Warn("pruning counter history", "err", err)
			}
		}
	}
}

// chartRange is a span of history the server page can show.
type chartRange struct {
	Name  string // the ?range= value
	Label string
	Tier  int // storage.SampleTiers index
}

var chartRanges = []chartRange{
	{Name: "1h", Label: "Last hour", Tier: 0},
	{Name: "24h", Label: "Last 24 hours", Tier: 1},
}

// chartRangeNamed returns the range called name, the first by default.
func chartRangeNamed(name string) chartRange {
	for _, r := range chartRanges {
		if r.Name == name {
			return r
		}
	}
	return chartRanges[0]
}

// metric is one counter tile of the server page.
type metric struct {
	Label    string
	Unit     string // what the graph's values are in
	Optional bool   // shown only when the guest layer reports it
	value    func(storage.Sample) float64
	format   func(float64) string
	// total says what the current counters add up to; a gauge's is its
	// value now, which is also the tile's headline.
	total func(api.ServerCounters) string
	gauge bool
}

func rateText(v float64) string  { return humanBytes(uint64(math.Round(v))) + "/s" }
func cpuText(v float64) string   { return fmt.Sprintf("%.0f%%", v/1e7) } // ns per s → % of one core
func bytesText(v float64) string { return humanBytes(uint64(v)) }

func byteTotal(n func(api.ServerCounters) uint64) func(api.ServerCounters) string {
	return func(c api.ServerCounters) string { return humanBytes(n(c)) + " total" }
}

var metrics = []metric{
	{Label: "CPU", Unit: "% of one core", Optional: true, value: func(s storage.Sample) float64 { return s.CPU }, format: cpuText,
		total: func(c api.ServerCounters) string { return humanDuration(time.Duration(c.CPUNanos)) + " CPU time" }},
	{Label: "Memory used", Unit: "bytes", Optional: true, value: func(s storage.Sample) float64 { return s.Memory }, format: bytesText,
		total: func(c api.ServerCounters) string { return humanBytes(c.MemoryBytes) }, gauge: true},
	{Label: "Network in", Unit: "bytes/s", value: func(s storage.Sample) float64 { return s.Rx }, format: rateText,
		total: byteTotal(func(c api.ServerCounters) uint64 { return c.RxBytes })},
	{Label: "Network out", Unit: "bytes/s", value: func(s storage.Sample) float64 { return s.Tx }, format: rateText,
		total: byteTotal(func(c api.ServerCounters) uint64 { return c.TxBytes })},
	{Label: "Disk read", Unit: "bytes/s", value: func(s storage.Sample) float64 { return s.Read }, format: rateText,
		total: byteTotal(func(c api.ServerCounters) uint64 { return c.ReadBytes })},
	{Label: "Disk write", Unit: "bytes/s", value: func(s storage.Sample) float64 { return s.Write }, format: rateText,
		total: byteTotal(func(c api.ServerCounters) uint64 { return c.WriteBytes })},
}

// liveStat is one counter tile of the server page.
type liveStat struct {
	Label string
	Unit  string
	Now   string // the latest interval's value, e.g. "1.2 MiB/s"; "—" before the first
	Total string // cumulative total, or "in use now" for a gauge
	Spark sparkline
}

// liveStats builds the tiles of a server from its history over a range
// (the tier's rows from from to now) and its current counters.
func liveStats(hist []storage.Sample, rng chartRange, from, now time.Time, current api.ServerCounters) []liveStat {
	tier := storage.SampleTiers[rng.Tier]
	// A latest row older than a few steps is no news of now (the
	// sampler is not running).
	fresh := len(hist) > 0 && now.Sub(hist[len(hist)-1].Time) <= 3*tier.Step
	out := make([]liveStat, 0, len(metrics))
	for _, m := range metrics {
		if m.Optional && !current.UsageKnown {
			continue
		}
		st := liveStat{Label: m.Label, Unit: m.Unit, Now: "—", Total: m.total(current)}
		if m.gauge {
			st.Now, st.Total = st.Total, "in use now"
		}
		values := make([]float64, slots(tier.Step, from, now))
		for j := range values {
			values[j] = math.NaN()
		}
		for _, h := range hist {
			if m.Optional && !h.Usage {
				continue
			}
			if j := int(h.Time.Sub(from) / tier.Step); j >= 0 && j < len(values) {
				values[j] = m.value(h)
			}
		}
		if last := len(hist) - 1; !m.gauge && fresh && (!m.Optional || hist[last].Usage) {
			st.Now = m.format(m.value(hist[last]))
		}
		st.Spark = newSparkline(m.Label, strings.ToLower(rng.Label), values, from, tier.Step, m.format)
		out = append(out, st)
	}
	return out
}

// slots is how many steps a chart from from to now has.
func slots(step time.Duration, from, now time.Time) int {
	return int(now.Sub(from)/step) + 1
}

// sparkline is a small SVG chart in a 100×30 box, drawn server-side, with
// what the script needs to read values out under the pointer or the arrow
// keys: the first slot's time, the step and each slot's value as text.
type sparkline struct {
	Line, Area string // SVG path data; a gap in the history breaks the line
	Name       string // "Network in, last hour"
	Label      string // accessible description: peak and range
	Slots      int
	Peak       string // "peak 3.1 MiB/s at 12:04 UTC"
	From       string // Unix seconds of the first slot
	Step       string // seconds per slot
	Values     string // each slot's value as text, "|"-separated, empty where none
	Axis       []string
	Empty      bool
}

func newSparkline(name, span string, values []float64, from time.Time, step time.Duration, format func(float64) string) sparkline {
	n := len(values)
	sp := sparkline{Name: name + ", " + span, Slots: n, From: strconv.FormatInt(from.Unix(), 10), Step: strconv.Itoa(int(step / time.Second))}
	end := from.Add(time.Duration(n-1) * step)
	sp.Axis = []string{clockUTC(from), clockUTC(from.Add(end.Sub(from) / 2)), clockUTC(end) + " UTC"}
	peak, peakAt, known := 0.0, -1, 0
	texts := make([]string, n)
	for i, v := range values {
		if math.IsNaN(v) {
			continue
		}
		known++
		texts[i] = format(v)
		if peakAt < 0 || v > peak {
			peak, peakAt = v, i
		}
	}
	sp.Values = strings.Join(texts, "|")
	if known < 2 {
		sp.Empty = true
		sp.Label = name + ": collecting samples"
		return sp
	}
	sp.Peak = "peak " + format(peak) + " at " + clockUTC(from.Add(time.Duration(peakAt)*step))
	sp.Label = fmt.Sprintf("%s: %s UTC, from %s to %s", name, sp.Peak, sp.Axis[0], sp.Axis[2])
	if peak == 0 {
		sp.Peak = format(0) + " throughout"
		sp.Label = fmt.Sprintf("%s: %s, from %s to %s", name, sp.Peak, sp.Axis[0], sp.Axis[2])
	}
	var line, area strings.Builder
	x := func(i int) float64 { return float64(i) * 100 / float64(max(n-1, 1)) }
	y := func(v float64) float64 {
		if peak <= 0 {
			return 29
		}
		return 29 - v/peak*27
	}
	for i := 0; i < n; {
		if math.IsNaN(values[i]) {
			i++
			continue
		}
		start := i
		fmt.Fprintf(&line, "M%.2f %.2f", x(i), y(values[i]))
		fmt.Fprintf(&area, "M%.2f 30L%.2f %.2f", x(i), x(i), y(values[i]))
		for i++; i < n && !math.IsNaN(values[i]); i++ {
			fmt.Fprintf(&line, "L%.2f %.2f", x(i), y(values[i]))
			fmt.Fprintf(&area, "L%.2f %.2f", x(i), y(values[i]))
		}
		if i-start == 1 { // a lone reading: a short dash, so it shows
			fmt.Fprintf(&line, "h%.2f", 100/float64(max(n-1, 1)))
		}
		fmt.Fprintf(&area, "L%.2f 30Z", x(i-1))
	}
	sp.Line, sp.Area = line.String(), area.String()
	return sp
}

func clockUTC(t time.Time) string { return t.UTC().Format("15:04") }

package main

import (
	"errors"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: hearth/web/api
cpu: Test CPU @ 2.00GHz
BenchmarkServerInfo/clients=8-2   	   51234	     23400 ns/op	     10200 hearth-req/s	      5000 target-req/s	    4096 B/op	      40 allocs/op
BenchmarkServerInfo/clients=8-2   	   50000	     24000 ns/op	      9800 hearth-req/s	      5000 target-req/s	    4096 B/op	      40 allocs/op
BenchmarkServerInfo/clients=8-2   	   50000	     24000 ns/op	     10000 hearth-req/s	      5000 target-req/s	    4096 B/op	      40 allocs/op
--- BENCH: a log line that is not a result
PASS
ok  	hearth/web/api	12.3s
pkg: hearth/storage
BenchmarkDriveWrite-2   	      10	 100000000 ns/op	       410.5 hearth-MB/s	       500.0 dd-MB/s	       450.0 baseline-MB/s	 1.2 p99-ms
BenchmarkDriveWrite-2   	      10	 100000000 ns/op	       390.5 hearth-MB/s	       480.0 dd-MB/s	       450.0 baseline-MB/s	 1.4 p99-ms
BenchmarkParseSize-2   	 5000000	       250.5 ns/op
BenchmarkLatency-2   	 100	       1000000 ns/op	3 p50-ms
BenchmarkLatency-2   	 100	       3000000 ns/op	5 p50-ms
BenchmarkNoTime-2   	 100	       7 widgets
BenchmarkParseSize-2   	 5000000	       249.5 ns/op
BenchmarkCopy-2   	    1000	   1500000 ns/op	  700.00 MB/s
ok  	hearth/storage	5.0s
`

func TestTableFollowsTheNamingConvention(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := writeTable(&out, res); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| figure | value | compared against | ratio | noise (min–max, runs) |",
		"| web/api ServerInfo/clients=8 | 10,000 req/s | target 5,000 req/s | 2.00× | 9,800–10,200 (3) |",
		"| storage DriveWrite | 400 MB/s | dd 490 MB/s | 0.82× | 390–410 (2) |",
		"| storage DriveWrite | 400 MB/s | baseline 450 MB/s | 0.89× | 390–410 (2) |",
		"| storage DriveWrite | 1.30 p99-ms | — | — | 1.20–1.40 (2) |",
		"| storage Latency | 4.00 p50-ms | — | — | 3.00–5.00 (2) |",
		"| storage Latency | 2.00 ms/op | — | — | 1.00–3.00 (2) |",
		"| storage ParseSize | 250 ns/op | — | — | 250–250 (2) |",
		"| storage Copy | 700 MB/s | — | — | one run |",
		"| storage NoTime | 7.00 widgets | — | — | one run |",
		"CPU: Test CPU @ 2.00GHz.",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("table lacks the line\n%s\ngot:\n%s", want, got)
		}
	}
	if strings.Contains(got, "allocs") || strings.Contains(got, "B/op") {
		t.Errorf("standard metrics of a benchmark with custom ones leaked into the table:\n%s", got)
	}
	if n := strings.Count(got, "\n| "); n != 9 {
		t.Errorf("%d table rows, want 9:\n%s", n, got)
	}
}

func TestTimeIsShownInAReadableUnit(t *testing.T) {
	res, err := parse(strings.NewReader("BenchmarkSlow-2 1 2500000 ns/op\nBenchmarkSlow-2 1 3500000 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	writeTable(&out, res)
	if want := "| Slow | 3.00 ms/op | — | — | 2.50–3.50 (2) |\n"; !strings.Contains(out.String(), want) {
		t.Errorf("got\n%s\nwant the line %s", out.String(), want)
	}
}

func TestParseRefusesInputWithoutBenchmarks(t *testing.T) {
	if _, err := parse(strings.NewReader("PASS\nok  \thearth/web\t0.1s\n")); !errors.Is(err, errNoBenchmarks) {
		t.Errorf("err = %v, want errNoBenchmarks", err)
	}
	if _, err := parse(strings.NewReader("BenchmarkX-2 10 abc ns/op\n")); err == nil || !strings.Contains(err.Error(), `"abc"`) {
		t.Errorf("err = %v, want one naming the bad value", err)
	}
}

// Command benchtable reads `go test -bench` output (from stdin or the files
// named) and prints one Markdown table of the figures it measured: the
// median of each figure over the repeated runs (-count), what it is compared
// against, the ratio, and the noise (min–max over the runs).
//
// The convention a benchmark follows to appear (see usage below):
//
//   - Its name says what it measures: BenchmarkServerInfo/clients=8.
//   - Its headline figure is reported with b.ReportMetric(v, "hearth-UNIT"),
//     e.g. "hearth-req/s", "hearth-ms/p50", "hearth-MB/s".
//   - Each thing it is compared against is reported in the same UNIT under
//     another one-word label: "baseline-req/s", "dd-MB/s", "target-req/s".
//     The label is what the "compared against" column names; the ratio is
//     hearth ÷ that value.
//   - Other custom metrics get a row of their own without a comparison.
//   - A benchmark without a hearth- metric also gets a row with its MB/s
//     (when it calls b.SetBytes) or its time per operation; report
//     b.ReportMetric(0, "ns/op") to leave that out.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const usage = `usage: go test -bench . -count 5 ./... | benchtable [FILE...]

Prints one Markdown table of the benchmark figures. A benchmark reports its
headline figure as b.ReportMetric(v, "hearth-UNIT") and what it is compared
against in the same UNIT under another label (b.ReportMetric(w, "baseline-UNIT"),
"dd-MB/s", "target-req/s", ...). Values are medians over -count runs.
`

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var inputs []io.Reader
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		inputs = append(inputs, f)
	}
	if len(inputs) == 0 {
		inputs = append(inputs, os.Stdin)
	}
	results, err := parse(io.MultiReader(inputs...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if err := writeTable(os.Stdout, results); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// errNoBenchmarks is returned when the input holds no benchmark line.
var errNoBenchmarks = errors.New("no benchmark results in the input (did go test -bench run?)")

// benchmark is every run of one benchmark: its values per unit, in the
// order the units first appeared.
type benchmark struct {
	figure string
	units  []string
	values map[string][]float64
}

// results are the benchmarks in the order they first appeared, plus the
// machine line go test printed.
type results struct {
	benchmarks []*benchmark
	cpu        string
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads go test output. Lines that are not benchmark results (test
// logs, ok/FAIL lines) are skipped.
func parse(r io.Reader) (*results, error) {
	res := &results{}
	byFigure := map[string]*benchmark{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
			continue
		case strings.HasPrefix(line, "cpu: "):
			res.cpu = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		fields := strings.Fields(line)
		// name, iterations, then value-unit pairs.
		if len(fields) < 4 || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			continue
		}
		figure := figureName(pkg, fields[0])
		b := byFigure[figure]
		if b == nil {
			b = &benchmark{figure: figure, values: map[string][]float64{}}
			byFigure[figure] = b
			res.benchmarks = append(res.benchmarks, b)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: value %q of %s is not a number", figure, fields[i], fields[i+1])
			}
			unit := fields[i+1]
			if _, seen := b.values[unit]; !seen {
				b.units = append(b.units, unit)
			}
			b.values[unit] = append(b.values[unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(res.benchmarks) == 0 {
		return nil, errNoBenchmarks
	}
	return res, nil
}

// figureName turns "hearth/web/api" and "BenchmarkServerInfo/clients=8-2"
// into "web/api ServerInfo/clients=8".
func figureName(pkg, name string) string {
	name = strings.TrimPrefix(procsSuffix.ReplaceAllString(name, ""), "Benchmark")
	if _, rest, ok := strings.Cut(pkg, "/"); ok {
		pkg = rest
	}
	if pkg == "" {
		return name
	}
	return pkg + " " + name
}

// standardUnits are the metrics the testing package reports by itself.
var standardUnits = []string{"ns/op", "MB/s", "B/op", "allocs/op"}

const hearthLabel = "hearth"

// row is one line of the table.
type row struct {
	figure     string
	unit       string
	values     []float64
	against    string // label of the comparison, empty when none
	comparison []float64
}

// rows applies the naming convention to one benchmark.
func (b *benchmark) rows() []row {
	var rows []row
	used := map[string]bool{}
	for _, unit := range b.units {
		label, base, ok := strings.Cut(unit, "-")
		if !ok || label != hearthLabel {
			continue
		}
		used[unit] = true
		var compared bool
		for _, other := range b.units {
			otherLabel, otherBase, ok := strings.Cut(other, "-")
			if !ok || otherLabel == hearthLabel || otherBase != base {
				continue
			}
			used[other] = true
			compared = true
			rows = append(rows, row{figure: b.figure, unit: base, values: b.values[unit], against: otherLabel, comparison: b.values[other]})
		}
		if !compared {
			rows = append(rows, row{figure: b.figure, unit: base, values: b.values[unit]})
		}
	}
	for _, unit := range b.units {
		if used[unit] || slices.Contains(standardUnits, unit) {
			continue
		}
		rows = append(rows, row{figure: b.figure, unit: unit, values: b.values[unit]})
	}
	if len(used) > 0 {
		return rows // a hearth- figure is the headline; time per op is a by-product
	}
	if v, ok := b.values["MB/s"]; ok {
		return append(rows, row{figure: b.figure, unit: "MB/s", values: v})
	}
	if v, ok := b.values["ns/op"]; ok {
		return append(rows, row{figure: b.figure, unit: "ns/op", values: v})
	}
	return rows
}

func writeTable(w io.Writer, res *results) error {
	var sb strings.Builder
	sb.WriteString("| figure | value | compared against | ratio | noise (min–max, runs) |\n")
	sb.WriteString("|---|---|---|--:|---|\n")
	for _, b := range res.benchmarks {
		for _, r := range b.rows() {
			value := median(r.values)
			div, unit := displayUnit(r.unit, value)
			against, ratio := "—", "—"
			if r.against != "" {
				other := median(r.comparison)
				against = r.against + " " + formatNumber(other/div) + " " + unit
				if other != 0 {
					ratio = strconv.FormatFloat(value/other, 'f', 2, 64) + "×"
				}
			}
			noise := "one run"
			if len(r.values) > 1 {
				noise = fmt.Sprintf("%s–%s (%d)", formatNumber(slices.Min(r.values)/div), formatNumber(slices.Max(r.values)/div), len(r.values))
			}
			fmt.Fprintf(&sb, "| %s | %s %s | %s | %s | %s |\n", r.figure, formatNumber(value/div), unit, against, ratio, noise)
		}
	}
	if res.cpu != "" {
		fmt.Fprintf(&sb, "\nValues are medians over the runs; ratio = value ÷ compared value. CPU: %s.\n", res.cpu)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func median(values []float64) float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// displayUnit picks how values near ref are shown: ns/op becomes µs/op,
// ms/op or s/op where that reads better; other units stay as they are.
func displayUnit(unit string, ref float64) (div float64, shown string) {
	if unit != "ns/op" {
		return 1, unit
	}
	switch {
	case ref < 1e3:
		return 1, "ns/op"
	case ref < 1e6:
		return 1e3, "µs/op"
	case ref < 1e9:
		return 1e6, "ms/op"
	default:
		return 1e9, "s/op"
	}
}

// formatNumber prints three significant digits at least, grouping
// thousands: 12,345 · 123 · 12.3 · 1.23 · 0.0123.
func formatNumber(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1000:
		return groupThousands(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	case abs >= 100 || abs == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case abs >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case abs >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func groupThousands(digits string) string {
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	var sb strings.Builder
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(d)
	}
	return sign + sb.String()
}

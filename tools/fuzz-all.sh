#!/bin/sh
# Runs every Go fuzz target in the main module for the given time each
# (default 3s): each `func FuzzXxx(f *testing.F)` in a *_test.go file is found
# by name, so a new target is fuzzed without being listed anywhere.
# A failure leaves its input in the package's testdata/fuzz/ and fails the run.
set -eu
fuzztime=${1:-3s}
cd "$(dirname "$0")/.."
targets=$(grep -rHoE --include='*_test.go' --exclude-dir=node_modules --exclude-dir=tools --exclude-dir=.git \
	'^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | sort -u)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found"
	exit 0
fi
# fuzz_once DIR NAME: one run; its output also goes to $log.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fuzz_once() {
	rc=0
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1" >"$log" 2>&1 || rc=$?
	cat "$log"
	return "$rc"
}
# Go 1.26's fuzz coordinator can report "context deadline exceeded" when
# -fuzztime ends while a worker is busy (go.dev/issue/75804, fixed in Go
# 1.27): no input is written and nothing failed. Such a run is tried again
# once, and said out loud if it happens again; any other failure fails.
deadline_race() { grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; }
echo "$targets" | while read -r dir name; do
	echo "fuzz: $name in $dir for $fuzztime"
	fuzz_once "$dir" "$name" && continue
	deadline_race || exit 1
	echo "fuzz: $name ended in Go's fuzztime deadline race (go.dev/issue/75804, no failing input): again"
	fuzz_once "$dir" "$name" && continue
	deadline_race || exit 1
	echo "fuzz: WARNING: $name hit Go's fuzztime deadline race twice (no failing input was found)"
done
echo "fuzz: done ($(echo "$targets" | wc -l) targets, $fuzztime each)"

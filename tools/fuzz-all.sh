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
echo "$targets" | while read -r dir name; do
	echo "fuzz: $name in $dir for $fuzztime"
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$dir"
done
echo "fuzz: done ($(echo "$targets" | wc -l) targets, $fuzztime each)"

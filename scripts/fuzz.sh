#!/usr/bin/env bash
# fuzz.sh [FUZZTIME [PATTERN]]: run every fuzz target of the module (or only
# those whose name matches the regular expression PATTERN, e.g.
# FuzzDifferential, checkwire's decoder against proto.Unmarshal) for FUZZTIME
# each (default 10s). Targets are discovered with `go test -list`, so new
# ones are picked up without editing this script. A crash fails the run and
# leaves its input under the package's testdata/fuzz/ for `go test` to
# replay.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${1:-10s}"
pattern="${2:-^Fuzz}"
found=0
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do
	for target in $(go test -list "$pattern" "$pkg" | grep '^Fuzz' || true); do
		found=$((found + 1))
		echo "== fuzz $pkg $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
if ((found == 0)); then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz.sh: $found targets ran for $fuzztime each without a failure"

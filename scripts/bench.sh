#!/usr/bin/env bash
# bench.sh: the Go benchmarks behind `make bench`: the decision core, the
# caches, route matching, the ext_authz adapter and one Check over loopback
# gRPC, and the whole server against a real Redis (bench/e2e), each
# -count 6 with -benchmem, summarised with benchstat.
#
# Raw output goes to bin/bench/bench.txt (keep one to compare a later run
# with: benchstat old.txt bin/bench/bench.txt). BENCHTIME (default 500ms)
# and COUNT (default 6) tune the run; the default takes about 6 minutes on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
BENCHTIME="${BENCHTIME:-500ms}"
COUNT="${COUNT:-6}"
# benchstat from golang.org/x/perf, pinned; `go run` fetches it through the
# module proxy into the module cache, without touching go.mod.
BENCHSTAT="${BENCHSTAT:-golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da}"

out=bin/bench
mkdir -p "$out"
scripts/ensure-deps.sh >/dev/null # bench/e2e runs a real redis-server
{
	"$GO" test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" -timeout 20m \
		./authz ./authz/extauthz ./authz/routes ./userstore ./internal/boundedcache
	# bench/ is its own module, built against this repository's gatehouse.
	(cd bench && "$GO" test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" -timeout 20m ./e2e)
} | tee "$out/bench.txt"
echo
"$GO" run "$BENCHSTAT" "$out/bench.txt" | tee "$out/benchstat.txt"

#!/usr/bin/env bash
# chaos.sh: the bounded chaos run behind `make chaos` (docs/chaos.md).
#
# Builds gatehouse as the image does and the chaos driver (bench/chaos) into
# bin/, makes sure redis-server is installed, and runs the driver: it starts
# a standalone Redis, a Sentinel set-up and a Cluster on loopback ports, a
# gatehouse against each, loads them through both listeners while it breaks
# Redis phase by phase, prints a per-phase table and exits 1 on any wrongful
# allow or unexpected 503. At most 2 minutes; CHAOS_SHORT=1 (or -short) runs
# the CI version in at most 40 s. Flags are passed through
# (scripts/chaos.sh -h lists them). On exit, also on Ctrl-C, every process
# the run started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
scripts/ensure-deps.sh >/dev/null
mkdir -p bin
# The same build as scripts/load.sh, so that the two share the build cache.
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o bin/gatehouse ./cmd/gatehouse
# bench/ is its own module, built against this repository's gatehouse.
(cd bench && "$GO" build -trimpath -o ../bin/bench-chaos ./chaos)

driver=""
cleanup() {
	if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
		# The driver stops its children on SIGTERM; the kernel kills them
		# anyway if it dies (PR_SET_PDEATHSIG).
		kill -TERM "$driver" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$driver" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/bench-chaos -gatehouse bin/gatehouse "$@" &
driver=$!
wait "$driver"

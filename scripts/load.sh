#!/usr/bin/env bash
# load.sh: the side-by-side load benchmark behind `make load`.
#
# Builds gatehouse, the do-nothing ext_authz server (bench/noop) and the load
# driver (bench/load) into bin/, makes sure redis-server is installed, and
# runs the driver, which starts a private Redis and both servers on loopback,
# drives them in alternation and writes docs/bench/results.{json,png}.
#
# Parameters come from the environment (LOAD_DURATION, LOAD_WARMUP,
# LOAD_ROUNDS, LOAD_CONCURRENCY, LOAD_SCENARIOS, LOAD_USERS, LOAD_CONNS,
# LOAD_CACHE_USERS) or from flags passed through: scripts/load.sh -h lists
# them. Every run is bounded; on exit, also on Ctrl-C, every process the run
# started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
scripts/ensure-deps.sh >/dev/null
mkdir -p bin
# Both servers are built as the container image builds gatehouse (Dockerfile):
# static, without cgo, symbols stripped. Memory is measured on what ships.
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o bin/gatehouse ./cmd/gatehouse
# bench/ is its own module (it needs what the product does not: a PNG
# chart's font); it builds against this repository's gatehouse.
(cd bench && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o ../bin/bench-noop ./noop)
(cd bench && "$GO" build -trimpath -o ../bin/bench-load ./load)

driver=""
cleanup() {
	if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
		# The driver stops its servers on SIGTERM; the kernel kills them
		# anyway if it dies (PR_SET_PDEATHSIG).
		kill -TERM "$driver" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$driver" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/bench-load -gatehouse bin/gatehouse -noop bin/bench-noop "$@" &
driver=$!
wait "$driver"

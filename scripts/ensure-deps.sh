#!/usr/bin/env bash
# ensure-deps.sh: make sure the tools the test suite needs are installed.
#
# The Redis tests start a real redis-server on a random loopback port, so
# redis-server must be on PATH. When a tool is missing and this runs as root
# with apt-get (a fresh Debian machine, CI), it is installed; otherwise the
# script stops with a message saying what to install.
#
# Used by `make test` and by .ci/run.
set -euo pipefail

# command -> Debian package
declare -A needed=(
	[redis-server]=redis-server
	[make]=make
)

missing=()
for cmd in "${!needed[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("${needed[$cmd]}")
	fi
done

if ((${#missing[@]} > 0)); then
	if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "ensure-deps: installing ${missing[*]} with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q </dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	else
		echo "ensure-deps: missing ${missing[*]}; install it (Debian/Ubuntu: sudo apt-get install ${missing[*]}; macOS: brew install redis) and run again" >&2
		exit 1
	fi
fi

for cmd in "${!needed[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "ensure-deps: $cmd is still not on PATH after installing ${needed[$cmd]}" >&2
		exit 1
	fi
done
echo "ensure-deps: $(redis-server --version)"

#!/usr/bin/env bash
# ensure-deps.sh: make sure the tools the test suite needs are installed.
#
# The Redis tests start a real redis-server on a random loopback port, and
# the forward-auth tests real nginx and Caddy, so they must be on PATH.
# When a tool is missing and this runs as root
# with apt-get (a fresh Debian machine, CI), it is installed; otherwise the
# script stops with a message saying what to install.
#
# Used by `make test` and by .ci/run.
set -euo pipefail

# command -> Debian package
declare -A needed=(
	[redis-server]=redis-server
	[nginx]=nginx
	[caddy]=caddy
	[make]=make
)

# PostgreSQL, for the directory origin's tests (internal/testkit/pgtest runs initdb
# and postgres): Debian keeps them in /usr/lib/postgresql/<version>/bin, off
# PATH, so they are looked for there too.
have_postgres() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
for cmd in "${!needed[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("${needed[$cmd]}")
	fi
done
have_postgres || missing+=(postgresql)

if ((${#missing[@]} > 0)); then
	if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "ensure-deps: installing ${missing[*]} with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q </dev/null
		# The tests start their own servers on loopback ports: keep the
		# packages' init scripts from starting system-wide daemons.
		rc_guard=""
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			rc_guard=/usr/sbin/policy-rc.d
		fi
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
		[[ -n "$rc_guard" ]] && rm -f "$rc_guard"
	else
		echo "ensure-deps: missing ${missing[*]}; install it (Debian/Ubuntu: sudo apt-get install ${missing[*]}; macOS: brew install redis postgresql) and run again" >&2
		exit 1
	fi
fi

for cmd in "${!needed[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "ensure-deps: $cmd is still not on PATH after installing ${needed[$cmd]}" >&2
		exit 1
	fi
done
if ! have_postgres; then
	echo "ensure-deps: initdb is still not found after installing postgresql" >&2
	exit 1
fi
# helm, for the chart tests in deploycheck/: built from its module
# (go install puts it in GOPATH/bin, where the tests look too).
if ! command -v helm >/dev/null 2>&1 && [[ ! -x "$(go env GOPATH)/bin/helm" ]]; then
	echo "ensure-deps: installing helm v3.22.0 with go install (a few minutes)" >&2
	go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
# Every module of go.mod, so that the Dockerfile test's offline build finds
# them in the module cache.
go mod download
echo "ensure-deps: $(redis-server --version)"

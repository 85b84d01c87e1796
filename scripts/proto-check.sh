#!/usr/bin/env bash
# proto-check.sh: fail when the protocols in proto/ do not pass `buf lint`,
# are not formatted as `buf format` writes them, or when the generated Go code
# committed beside them is not what `make proto` generates from them (someone
# edited a .proto file and forgot `make proto`, or edited generated code).
#
# Used by .ci/run. Generates into a temporary directory: the tree is left as
# it is.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

scripts/proto.sh "$tmp/gen"
buf="$PWD/bin/buf"

status=0
echo "proto-check: buf lint"
(cd proto && "$buf" lint) || status=1
echo "proto-check: buf format"
(cd proto && "$buf" format --diff --exit-code) || {
	echo "proto-check: run 'bin/buf format -w' in proto/" >&2
	status=1
}

echo "proto-check: generated code"
# Every generated file must be committed unchanged, and no committed
# generated file may be left over from a removed .proto file.
while IFS= read -r f; do
	rel="${f#"$tmp/gen/"}"
	if [[ ! -f "proto/$rel" ]]; then
		echo "proto-check: proto/$rel is missing: run 'make proto'" >&2
		status=1
	elif ! diff -u "proto/$rel" "$f"; then
		echo "proto-check: proto/$rel is stale: run 'make proto'" >&2
		status=1
	fi
done < <(find "$tmp/gen" -type f -name '*.go' | sort)
while IFS= read -r f; do
	rel="${f#proto/}"
	if [[ ! -f "$tmp/gen/$rel" ]]; then
		echo "proto-check: $f is not generated from any .proto file: remove it" >&2
		status=1
	fi
done < <(find proto -type f -name '*.pb.go' | sort)

if ((status == 0)); then
	echo "proto-check: ok"
fi
exit "$status"

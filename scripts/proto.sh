#!/usr/bin/env bash
# proto.sh: regenerate the Go code of the protocols in proto/ (`make proto`).
#
# buf, protoc-gen-go and protoc-gen-go-grpc are Go tools pinned in
# tools/go.mod: they are built into bin/ (through the Go module proxy, the
# first time) and put first on PATH, where proto/buf.gen.yaml's local plugins
# find them. Nothing else is fetched: the buf module has no dependencies and
# no remote plugins.
#
# Usage: scripts/proto.sh [OUTDIR]
# With OUTDIR the code is generated there (as OUTDIR/gatehouse/...) instead
# of beside the .proto files: scripts/proto-check.sh compares the two.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
bin="$PWD/bin"
mkdir -p "$bin"
"$GO" build -C tools -o "$bin/" \
	github.com/bufbuild/buf/cmd/buf \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc

out="${1:-}"
if [[ -n "$out" ]]; then
	mkdir -p "$out"
	out="$(cd "$out" && pwd)"
fi
cd proto
PATH="$bin:$PATH" "$bin/buf" generate ${out:+--output "$out"}

#!/bin/sh
# Regenerates the Rust types of proto/grpc_predict_v2.proto with prost-build
# and compares them with the committed src/kserve_grpc/generated.rs.
#   tools/proto-gen.sh          compare (exit 1 on a difference)
#   tools/proto-gen.sh --write  replace the committed file
# Needs protoc (Debian: apt-get install protobuf-compiler); the gateway's
# own build never does.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --quiet --release --manifest-path "$root/tools/proto-gen/Cargo.toml" -- "$root/proto" "$out"
if [ "${1:-}" = "--write" ]; then
    cp "$out/inference.rs" "$root/src/kserve_grpc/generated.rs"
    echo "wrote src/kserve_grpc/generated.rs"
elif diff -u "$root/src/kserve_grpc/generated.rs" "$out/inference.rs"; then
    echo "src/kserve_grpc/generated.rs is prost-build's output for proto/grpc_predict_v2.proto"
else
    echo "src/kserve_grpc/generated.rs differs from prost-build's output: run tools/proto-gen.sh --write" >&2
    exit 1
fi

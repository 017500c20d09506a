#!/usr/bin/env bash
# gRPC load benchmark: KServe V2 `ModelInfer` (unary, one message each way,
# h2c), one fast upstream, measured three ways in one run.
#
#   direct   h2load -> upstream
#   nginx    h2load -> nginx (grpc_pass, keepalive pool) -> upstream
#   govgate  h2load -> govgate (a `kserve_v2_grpc` model, full governance:
#            an approved and activated version, every call's decision and
#            stream end in the ledger before its trailers leave) -> upstream
#
# The upstream is examples/grpc_upstream (one thread): every ModelInfer is
# answered with one fixed ModelInferResponse (4 FP32 scores, raw) and
# grpc-status 0. The request is a ModelInferRequest of 4 rows x 8 FP32
# features (examples/grpc_upstream --write-request). Everything listens on
# 127.0.0.1, on ports picked here, and everything started here is stopped
# on exit.
#
# Two measurements per target, each after a warm-up:
#   1. saturation: h2load -c$BENCH_CONNECTIONS -m$BENCH_STREAMS (streams
#      per connection) for $BENCH_SECONDS; throughput, mean latency, and
#      the machine's CPU time per request (all processes, h2load included);
#   2. one stream: h2load -c1 -m1 for $BENCH_SECONDS: the latency of one
#      call at a time (mean), and what each proxy adds to direct.
# Each target is first checked with curl: its answer must end with
# grpc-status 0 (h2load counts any HTTP 200 as a success).
#
# Usage: benches/grpc_load.sh       (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS      measured seconds per run                    (default 10)
#   BENCH_CONNECTIONS  h2load connections at saturation            (default 16)
#   BENCH_STREAMS      concurrent streams per connection           (default 8)
#   BENCH_WARMUP       warm-up seconds before each run             (default 2)
#   BENCH_PIN          1: h2load on the first CPU, the servers on the
#                      others (default with taskset and 2+ CPUs); 0: none
#   BENCH_BUILD        0: do not run `cargo build --release` first
#   BENCH_BIN          a govgate binary to measure instead (no build)
#
# Needs nginx (with its gRPC module, as Debian's), h2load (Debian:
# nghttp2-client) and curl. Run it on a machine nobody else is measuring on.
set -euo pipefail

die() {
    echo "grpc_load.sh: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib/shared.sh
source "$ROOT/benches/lib/shared.sh"
# shellcheck source=benches/lib/nginx.sh
source "$ROOT/benches/lib/nginx.sh"

DURATION=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
STREAMS=${BENCH_STREAMS:-8}
WARMUP=${BENCH_WARMUP:-2}
for value in "$DURATION" "$CONNECTIONS" "$STREAMS" "$WARMUP"; do
    is_uint "$value" || die "BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_STREAMS, BENCH_WARMUP: whole numbers"
done
NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
[[ -n $NGINX ]] || die "missing nginx (Debian: apt-get install -y nginx)"
command -v h2load >/dev/null || die "missing h2load (Debian: apt-get install -y nghttp2-client)"
command -v curl >/dev/null || die "missing curl"

set_pinning "the upstream, nginx and govgate" h2load
build_release "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    (cd "$ROOT" && cargo build --release --example grpc_upstream) || die "building examples/grpc_upstream failed"
fi
UPSTREAM_BIN=$TARGET/release/examples/grpc_upstream
[[ -x $UPSTREAM_BIN ]] || die "no $UPSTREAM_BIN (cargo build --release --example grpc_upstream)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/govgate-grpc-load.XXXXXX")
# nginx workers drop root privileges: let them reach their directories.
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_group "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

METHOD_PATH=/inference.GRPCInferenceService/ModelInfer
"$UPSTREAM_BIN" --write-request "$WORK/request.bin"

# grpc_ok PORT: one ModelInfer through PORT ends with grpc-status 0.
grpc_ok() {
    curl -s --max-time 5 --http2-prior-knowledge -H 'content-type: application/grpc' \
        -H 'te: trailers' --data-binary @"$WORK/request.bin" -D - -o /dev/null \
        "http://127.0.0.1:$1$METHOD_PATH" 2>/dev/null | tr -d '\r' | grep -qx 'grpc-status: 0'
}

# wait_grpc NAME PORT PID: until a call through PORT succeeds (10 s).
wait_grpc() {
    local i
    for ((i = 0; i < 100; i++)); do
        grpc_ok "$2" && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "grpc_load.sh: $1 does not answer ModelInfer with grpc-status 0" >&2
    return 1
}

# ---- the upstream ----
free_port UPSTREAM_PORT
setsid "${PIN_SERVER[@]}" "$UPSTREAM_BIN" --listen "127.0.0.1:$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=("$!")
wait_grpc upstream "$UPSTREAM_PORT" "$!" || die "the upstream did not start"

# ---- nginx: grpc_pass with a keepalive pool ----
grpc_proxy_conf() {
    local dir=$1 port=$2
    nginx_common "$dir"
    cat <<EOF
worker_processes 1;
http {
$(nginx_http_common "$dir")
    http2_max_requests 1000000;
    upstream grpc_backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive $CONNECTIONS;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port http2;
        location / {
            grpc_pass grpc://grpc_backend;
        }
    }
}
EOF
}
# ready_grpc NAME PORT PATH PID: start_nginx's readiness check.
ready_grpc() { wait_grpc "$1" "$2" "$4"; }
WAIT_PATH=$METHOD_PATH
start_nginx nginx grpc_proxy_conf ready_grpc

# ---- govgate: one kserve_v2_grpc model, approved and activated ----
BENCH_MODEL_TOML='[[models]]
name = "credit"
protocol = "kserve_v2_grpc"'
write_govgate_config govgate.bench/grpc
govgate_version_section "$UPSTREAM_PORT" >>"$WORK/govgate/govgate.toml"
start_govgate "" credit
wait_grpc govgate "$GOVGATE_PORT" "$GOVGATE_PID" || die "govgate does not serve ModelInfer"

# ---- measuring ----
CLK_TCK=$(getconf CLK_TCK)

# run PORT CONNECTIONS STREAMS: h2load for $DURATION s after a warm-up;
# prints "req/s mean_us cpu_us_per_request". The CPU time is the whole
# machine's busy time over the run (warm-up included) divided by every
# request h2load sent (warm-up included).
run() {
    local port=$1 conns=$2 streams=$3 out idle0 idle1 t0 t1 rps mean total
    idle0=$(idle_ticks)
    t0=$(date +%s%N)
    out=$("${PIN_LOAD[@]}" h2load -c "$conns" -m "$streams" -t 1 -D "$DURATION" --warm-up-time="$WARMUP" \
        -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$port$METHOD_PATH")
    t1=$(date +%s%N)
    idle1=$(idle_ticks)
    grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" || {
        echo "$out" >&2
        die "h2load saw failures"
    }
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    mean=$(awk '/^time for request:/ {
        v = $6
        if (v ~ /us$/) { sub(/us$/, "", v) }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); v *= 1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000000 }
        print v }' <<<"$out")
    total=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' <<<"$out")
    awk -v wall="$(((t1 - t0) / 1000))" -v idle="$((idle1 - idle0))" -v tck="$CLK_TCK" \
        -v cpus="$ONLINE_CPUS" -v n="$total" -v rps="$rps" -v mean="$mean" 'BEGIN {
        busy_us = wall * cpus - idle * 1000000 / tck
        printf "%.0f %.0f %.0f\n", rps, mean, (n > 0 ? busy_us / n : 0)
    }'
}

declare -A SAT_RPS SAT_MEAN SAT_CPU ONE_MEAN
for target in direct nginx govgate; do
    case $target in
        direct) port=$UPSTREAM_PORT ;;
        nginx) port=$NGINX_PORT ;;
        govgate) port=$GOVGATE_PORT ;;
    esac
    echo "measuring $target (saturation: $CONNECTIONS connections x $STREAMS streams)..." >&2
    read -r "SAT_RPS[$target]" "SAT_MEAN[$target]" "SAT_CPU[$target]" < <(run "$port" "$CONNECTIONS" "$STREAMS")
    echo "measuring $target (one stream)..." >&2
    read -r _ "ONE_MEAN[$target]" _ < <(run "$port" 1 1)
done

# Every govgate call is a decision and a stream end in the ledger.
entries=$(curl -s --max-time 5 "http://127.0.0.1:$GOVGATE_PORT/govgate/log/checkpoint" | sed -n 2p)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
rows=()
for target in direct nginx govgate; do
    rows+=("$target|${SAT_RPS[$target]}|$(ratio "${SAT_RPS[$target]}" "${SAT_RPS[nginx]}")|${SAT_MEAN[$target]}|${SAT_CPU[$target]}|${ONE_MEAN[$target]}|$((ONE_MEAN[$target] - ONE_MEAN[direct]))")
done
header="target|req/s|x nginx|mean us|CPU us/req|one stream mean us|added us"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); $PIN_NOTE"
echo "h2load -c$CONNECTIONS -m$STREAMS -D$DURATION (warm-up ${WARMUP} s); one stream: -c1 -m1; ledger after the runs: ${entries:-?} entries"
table "$header" "${rows[@]}"
echo
md_table "$header" "${rows[@]}"

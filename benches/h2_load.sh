#!/usr/bin/env bash
# HTTP/2 load benchmark: REST requests over HTTP/2, measured three ways in
# one run with h2load (Debian: nghttp2-client):
#
#   direct   h2load -> upstream (nginx, HTTP/2 without TLS)
#   nginx    h2load -> nginx (HTTP/2; proxy_pass over HTTP/1.1 with a
#            keepalive pool) -> upstream
#   govgate  h2load -> govgate (HTTP/2; release build, `http` model, the
#            governed path with its ledger; HTTP/1.1 pool) -> upstream
#
# The upstream is its own nginx process (one worker) that answers every
# request with 200 {"ok":true}: over HTTP/1.1 for the proxies, over h2c
# (prior knowledge) on a second port for the direct run. Clients and
# proxies speak h2c with prior knowledge, or with BENCH_TLS=1 HTTP/2 over
# TLS 1.3 chosen by ALPN (nginx and govgate terminate it; a P-256
# certificate from a CA made for the run). Everything listens on
# 127.0.0.1 and is stopped on exit.
#
# One measurement per target: saturation, h2load -c$BENCH_CONNECTIONS
# clients with -m$BENCH_STREAMS concurrent streams each, for
# $BENCH_SECONDS after a warm-up: throughput, mean latency, errors, and the
# proxy's CPU per request (its process group's CPU time over the run).
#
# Usage: benches/h2_load.sh            (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS      measured seconds per run                  (default 10)
#   BENCH_CONNECTIONS  h2load clients (connections)              (default 16)
#   BENCH_STREAMS      concurrent streams per connection         (default 8)
#   BENCH_WARMUP       warm-up seconds before each run           (default 2)
#   BENCH_PIN          1: h2load on the first CPU, upstream and proxy on
#                      the others (default with taskset and >= 2 CPUs)
#   BENCH_BUILD        0: do not run `cargo build --release` first
#   BENCH_BIN          a govgate binary to measure instead (no build)
#   BENCH_TLS          1: HTTP/2 over TLS 1.3 (ALPN h2) to nginx and
#                      govgate; the direct run stays h2c; default 0
#
# Needs nginx, h2load and curl (with HTTP/2); with BENCH_TLS=1 openssl.
#
# Output: a table on stdout, the same as markdown in bench-out/h2_load.md,
# and h2load's own output of every run in bench-out/h2_load.log.

set -Eeuo pipefail
trap 'echo "h2_load.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
STREAMS=${BENCH_STREAMS:-8}
WARMUP=${BENCH_WARMUP:-2}
TLS=${BENCH_TLS:-0}

die() {
    echo "h2_load.sh: $*" >&2
    exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/lib/shared.sh
source "$HERE/lib/shared.sh"
# shellcheck source=benches/lib/nginx.sh
source "$HERE/lib/nginx.sh"

if ! is_uint "$SECONDS_PER_RUN" || ((SECONDS_PER_RUN == 0)); then die "BENCH_SECONDS must be a positive integer"; fi
if ! is_uint "$CONNECTIONS" || ((CONNECTIONS == 0)); then die "BENCH_CONNECTIONS must be a positive integer"; fi
if ! is_uint "$STREAMS" || ((STREAMS == 0)); then die "BENCH_STREAMS must be a positive integer"; fi
is_uint "$WARMUP" || die "BENCH_WARMUP must be an integer"
[[ $TLS == 0 || $TLS == 1 ]] || die "BENCH_TLS must be 0 or 1"

ROOT=$(cd "$HERE/.." && pwd)
require_tools timeout setsid awk curl h2load
curl -V | grep -qw HTTP2 || die "curl without HTTP/2 support"

set_pinning "upstream, nginx and govgate" h2load
PROXY_WORKERS=$((BENCH_PIN == 1 ? NCPU - 1 : NCPU))
build_release "$ROOT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/govgate-h2load.XXXXXX")
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

# ---- servers ----

if [[ $TLS == 1 ]]; then
    make_bench_tls
    SCHEME=https
    PROXY_LISTEN="ssl http2"
    PROXY_TLS_LINES="ssl_certificate $WORK/tls/server.crt; ssl_certificate_key $WORK/tls/server.key; ssl_protocols TLSv1.3;"
    GOVGATE_SERVER_EXTRA=$(printf '[server.public_tls]\ncert_file = "%s"\nkey_file = "%s"\n' \
        "$WORK/tls/server.crt" "$WORK/tls/server.key")
else
    SCHEME=http
    PROXY_LISTEN="http2"
    PROXY_TLS_LINES=""
fi

upstream_conf() {
    local dir=$1 port=$2
    nginx_common "$dir"
    cat <<EOF
worker_processes 1;
http {
$(nginx_http_common "$dir")
    http2_max_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$UPSTREAM_H2_PORT http2;
        default_type application/json;
        location / {
            return 200 '{"ok":true}';
        }
    }
}
EOF
}

proxy_conf() {
    local dir=$1 port=$2
    nginx_common "$dir"
    cat <<EOF
worker_processes $PROXY_WORKERS;
http {
$(nginx_http_common "$dir")
    # h2load keeps its connections for the whole run.
    http2_max_requests 1000000;
    upstream backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive $((CONNECTIONS * STREAMS));
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port $PROXY_LISTEN;
        $PROXY_TLS_LINES
        location /m/ {
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# h2_answer SCHEME PORT PATH: status and body of one HTTP/2 request.
h2_answer() {
    local how=(--http2-prior-knowledge)
    [[ $1 == https ]] && how=(--http2 --cacert "$WORK/tls/ca.crt")
    curl -s --max-time 5 "${how[@]}" -o /dev/stdout -w ' %{http_code} %{http_version}' "$1://127.0.0.1:$2$3" 2>/dev/null || true
}

# wait_h2 NAME PORT PATH PID: until PATH answers 200 {"ok":true} over
# HTTP/2 ($SCHEME) (10 s).
wait_h2() {
    local name=$1 port=$2 path=$3 pid=$4 i answer=
    for ((i = 0; i < 100; i++)); do
        answer=$(h2_answer "$SCHEME" "$port" "$path")
        [[ $answer == '{"ok":true} 200 2' ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    echo "$SCRIPT: $name: GET $path over HTTP/2 answered: ${answer:-nothing}" >&2
    return 1
}

free_port UPSTREAM_H2_PORT
WAIT_PATH=/
start_nginx upstream upstream_conf
UPSTREAM_PORT=$NGINX_PORT
[[ $(h2_answer http "$UPSTREAM_H2_PORT" /) == '{"ok":true} 200 2' ]] || die "the upstream's h2c port does not answer"

WAIT_PATH=/m/
start_nginx nginx proxy_conf wait_h2
PROXY_PORT=$NGINX_PORT
NGINX_PID=${PIDS[-1]}

[[ $TLS == 1 ]] && TLS_PORTS=any
write_govgate_config bench.govgate.example/h2load
govgate_version_section "$UPSTREAM_PORT" >>"$WORK/govgate/govgate.toml"
start_govgate /m/
wait_h2 govgate "$GOVGATE_PORT" /m/ "$GOVGATE_PID" || die "govgate does not answer over HTTP/2"

TARGETS=(direct nginx govgate)
declare -A URL=(
    [direct]="http://127.0.0.1:$UPSTREAM_H2_PORT/"
    [nginx]="$SCHEME://127.0.0.1:$PROXY_PORT/m/"
    [govgate]="$SCHEME://127.0.0.1:$GOVGATE_PORT/m/"
)
declare -A GROUP=([direct]="" [nginx]="$NGINX_PID" [govgate]="$GOVGATE_PID")
echo "h2_load: upstream :$UPSTREAM_PORT (h2c :$UPSTREAM_H2_PORT), nginx :$PROXY_PORT, govgate :$GOVGATE_PORT ($SCHEME); $PIN_NOTE" >&2

# ---- runs ----

LOG="$WORK/h2load.log"
: >"$LOG"
declare -A R=()

# run_h2load TARGET: one saturation run; fills R[TARGET.*]: rps, mean_us,
# done, ok, errors, proxy_ticks.
run_h2load() {
    local target=$1 out ticks0=0 ticks1=0 group=${GROUP[$1]} warm=()
    ((WARMUP > 0)) && warm=(--warm-up-time="${WARMUP}s")
    [[ -n $group ]] && ticks0=$(group_ticks "$group")
    out=$(timeout $((SECONDS_PER_RUN + WARMUP + 60)) "${PIN_LOAD[@]}" \
        h2load -t1 -c"$CONNECTIONS" -m"$STREAMS" -D"$SECONDS_PER_RUN" "${warm[@]}" "${URL[$target]}" 2>&1) ||
        { echo "$out" >&2; die "h2load failed ($target)"; }
    [[ -n $group ]] && ticks1=$(group_ticks "$group")
    printf '==== %s: %s\n%s\n\n' "$target" "${URL[$target]}" "$out" >>"$LOG"
    R[$target.rps]=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' <<<"$out")
    R[$target.done]=$(awk '/^requests:/ { print $8 }' <<<"$out")
    R[$target.ok]=$(awk '/^status codes:/ { print $3 }' <<<"$out")
    R[$target.errors]=$(awk '/^requests:/ { print $12 + $14 + $16 }' <<<"$out")
    # "time for request:  min  max  mean  sd  +/- sd", each with its unit.
    R[$target.mean_us]=$(awk '/^time for request:/ {
        v = $6; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
        printf "%.0f", v * (u == "s" ? 1e6 : u == "ms" ? 1e3 : 1) }' <<<"$out")
    R[$target.proxy_ticks]=$((ticks1 - ticks0))
    [[ -n ${R[$target.rps]} && -n ${R[$target.done]} ]] || { echo "$out" >&2; die "no result from h2load ($target)"; }
}

for target in "${TARGETS[@]}"; do
    echo "h2_load: $target: ${WARMUP}s warm-up, ${SECONDS_PER_RUN}s..." >&2
    run_h2load "$target"
done

# ---- report ----

per_request_us() {
    awk -v t="$1" -v n="$2" -v hz="$CLOCK_TICKS" 'BEGIN { if (n > 0) printf "%.0f us", t * 1e6 / hz / n; else print "n/a" }'
}
HEADER="target|req/s|mean latency|proxy CPU/request|2xx|errors"
ROWS=()
for target in "${TARGETS[@]}"; do
    cpu="-"
    [[ -n ${GROUP[$target]} ]] && cpu=$(per_request_us "${R[$target.proxy_ticks]}" "${R[$target.done]}")
    ROWS+=("$target|$(awk -v v="${R[$target.rps]}" 'BEGIN { printf "%.0f", v }')|${R[$target.mean_us]} us|$cpu|${R[$target.ok]}|${R[$target.errors]}")
done
RATIO=$(awk -v g="${R[govgate.rps]}" -v n="${R[nginx.rps]}" 'BEGIN { printf "%.2f", g / n }')
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n ${BENCH_BIN:-} ]]; then REVISION="binary $BENCH_BIN"; fi
NOTE="$(date -u '+%Y-%m-%d %H:%M UTC'), $REVISION, $NCPU CPUs ($PIN_NOTE), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), \
$(h2load --version | awk 'NR == 1 { print $1, $2 }'), $CONNECTIONS connections x $STREAMS streams, ${SECONDS_PER_RUN}s per run, \
HTTP/2 $([[ $TLS == 1 ]] && echo 'over TLS 1.3 (ALPN)' || echo 'h2c (prior knowledge)') to nginx and govgate, load average $(cut -d' ' -f1-3 /proc/loadavg)"

table "$HEADER" "${ROWS[@]}"
echo
echo "govgate / nginx throughput: $RATIO x"
echo "$NOTE"
mkdir -p "$ROOT/bench-out"
{
    echo "$NOTE"
    echo
    md_table "$HEADER" "${ROWS[@]}"
    echo
    echo "govgate / nginx throughput: **$RATIO x**"
} >"$ROOT/bench-out/h2_load.md"
cp "$LOG" "$ROOT/bench-out/h2_load.log"

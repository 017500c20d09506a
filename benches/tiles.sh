#!/usr/bin/env bash
# Tile serving benchmark: the gateway's tlog-tiles API against nginx
# serving the same tile files from disk, in one run.
#
#   nginx          wrk -> nginx (static files, sendfile, one worker)
#   govgate-own    wrk -> govgate's own tiles listener (`[tiles] listen`)
#   govgate-public wrk -> govgate's public listener under /govgate/log
#
# A release gateway records BENCH_ENTRIES decisions (requests no model
# serves: each is one ledger entry); the script then downloads every full
# tile and entry bundle of the log into a directory laid out as the URLs
# are (tile/0/000, tile/entries/000, ...), which nginx serves as files.
# Two workloads, each a cycle over every full tile of its kind: hash tiles
# (8 KiB each) and entry bundles (256 entries each). The targets take
# turns, BENCH_ROUNDS times each, so a disturbance on the machine hits
# all of them alike; the ratio is govgate's median over nginx's median.
#
# Usage: benches/tiles.sh            (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS      measured seconds per run                  (default 5)
#   BENCH_CONNECTIONS  wrk connections                           (default 64)
#   BENCH_WARMUP       warm-up seconds before each target's first run (default 2)
#   BENCH_ROUNDS       runs per target and workload              (default 3)
#   BENCH_ENTRIES      ledger entries to record first            (default 30000)
#   BENCH_PIN, BENCH_BUILD, BENCH_BIN: as for benches/load.sh
#
# Needs nginx, wrk and curl (Debian: apt-get install -y nginx wrk curl).
#
# Output: a table on stdout, the same as markdown in bench-out/tiles.md, and
# the raw wrk output of every run in bench-out/tiles.log.

set -Eeuo pipefail
trap 'echo "tiles.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
ENTRIES=${BENCH_ENTRIES:-30000}

die() {
    echo "tiles.sh: $*" >&2
    exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/lib/shared.sh
source "$HERE/lib/shared.sh"

for n in "$SECONDS_PER_RUN" "$CONNECTIONS" "$ROUNDS" "$ENTRIES"; do
    is_uint "$n" && ((n > 0)) || die "BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_ROUNDS and BENCH_ENTRIES must be positive integers"
done
is_uint "$WARMUP" || die "BENCH_WARMUP must be an integer"
((ENTRIES >= 512)) || die "BENCH_ENTRIES must be at least 512 (two full tiles)"

ROOT=$(cd "$HERE/.." && pwd)
LUA="$HERE/tiles/paths.lua"
[[ -f $LUA ]] || die "missing $LUA"

require_tools timeout setsid awk curl sort
set_pinning "nginx and govgate"
((CONNECTIONS >= WRK_THREADS)) || die "BENCH_CONNECTIONS must be at least $WRK_THREADS"
build_release "$ROOT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/govgate-tiles.XXXXXX")
# nginx workers drop root privileges: let them reach the files.
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

# ---- the gateways ----

# start_gateway DIR: starts govgate with DIR/govgate.toml on the server
# CPUs and waits for its ready line; sets READY and GATEWAY_PID.
start_gateway() {
    local dir=$1 i
    : >"$dir/stdout.log"
    GOVGATE_LOG=warn setsid "${PIN_SERVER[@]}" "$BIN" serve --config "$dir/govgate.toml" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    GATEWAY_PID=$!
    PIDS+=("$GATEWAY_PID")
    READY=""
    for ((i = 0; i < 300; i++)); do
        READY=$(grep '^govgate ready ' "$dir/stdout.log" || true)
        [[ -n $READY ]] && return 0
        kill -0 "$GATEWAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/stderr.log" >&2
    die "govgate did not become ready"
}
field() { tr ' ' '\n' <<<"$READY" | sed -n "s/^$1=//p"; }

# The default configuration: tiles on the public listener.
write_govgate_config bench.govgate.example/tiles
free_port UNUSED_PORT
govgate_version_section "$UNUSED_PORT" >>"$WORK/govgate/govgate.toml"
start_gateway "$WORK/govgate"
PUBLIC=$(field public)
PUBLIC_TILES=$(field tiles)
[[ $PUBLIC_TILES == "$PUBLIC/govgate/log" ]] || die "tiles not on the public listener: $READY"

# ---- record entries: requests no model serves, one entry each ----

cat >"$WORK/record.lua" <<'LUA'
local n = 0
function request()
   n = n + 1
   return wrk.format("GET", "/no-model/" .. n)
end
LUA
size() { curl -sf "$PUBLIC_TILES/checkpoint" | sed -n 2p; }
echo "tiles: recording $ENTRIES ledger entries..." >&2
for ((i = 0; i < 60; i++)); do
    (($(size) >= ENTRIES)) && break
    "${PIN_LOAD[@]}" wrk -t1 -c16 -d1s -s "$WORK/record.lua" "$PUBLIC" >/dev/null 2>&1 || true
done
SIZE=$(size)
((SIZE >= ENTRIES)) || die "the log reached only $SIZE entries"

# A second gateway on a copy of the same ledger, with tiles on a listener
# of their own: its full tiles up to SIZE are the same bytes (each copy
# then only appends its own start and stop entries).
stop_group "$GATEWAY_PID"
cp -a "$WORK/govgate" "$WORK/govgate-own"
sed -i "s|$WORK/govgate/|$WORK/govgate-own/|g" "$WORK/govgate-own/govgate.toml"
printf '\n[tiles]\nlisten = "127.0.0.1:0"\n' >>"$WORK/govgate-own/govgate.toml"
start_gateway "$WORK/govgate"
PUBLIC=$(field public)
PUBLIC_TILES=$(field tiles)
start_gateway "$WORK/govgate-own"
OWN=$(field tiles)
[[ $OWN == http://* && $OWN != "$PUBLIC"* ]] || die "no tiles listener of its own: $READY"

# ---- the same tiles as files ----

tile_path() { # KIND N: tile/KIND/<N as x001/234>
    local kind=$1 n=$2 path
    path=$(printf '%03d' $((n % 1000)))
    while ((n >= 1000)); do
        n=$((n / 1000))
        path=$(printf 'x%03d/%s' $((n % 1000)) "$path")
    done
    echo "tile/$kind/$path"
}
FILES="$WORK/files"
: >"$WORK/hashes.paths"
: >"$WORK/bundles.paths"
echo "tiles: downloading the full tiles of a log of $SIZE entries..." >&2
for ((n = 0; n < SIZE / 256; n++)); do
    for kind in 0 entries; do
        path=$(tile_path "$kind" "$n")
        mkdir -p "$FILES/$(dirname "$path")"
        curl -sf -o "$FILES/$path" "$PUBLIC_TILES/$path" || die "GET $PUBLIC_TILES/$path failed"
    done
    echo "/$(tile_path 0 "$n")" >>"$WORK/hashes.paths"
    echo "/$(tile_path entries "$n")" >>"$WORK/bundles.paths"
done
for ((n = 0; n < SIZE / 65536; n++)); do
    path=$(tile_path 1 "$n")
    mkdir -p "$FILES/$(dirname "$path")"
    curl -sf -o "$FILES/$path" "$PUBLIC_TILES/$path" || die "GET $PUBLIC_TILES/$path failed"
    echo "/$path" >>"$WORK/hashes.paths"
done
chmod -R a+rX "$FILES"
HASH_TILES=$(wc -l <"$WORK/hashes.paths")
BUNDLES=$(wc -l <"$WORK/bundles.paths")
BUNDLE_BYTES=$(du -sb "$FILES/tile/entries" | cut -f1)

# ---- nginx serving the files ----

# nginx as a static file server, one worker (govgate gets the same one
# CPU), as a CDN origin or a plain tile mirror would serve the files.
static_conf() {
    local dir=$1 port=$2
    cat <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    server {
        listen 127.0.0.1:$port;
        root $FILES;
        location = / { default_type application/json; return 200 '{"ok":true}'; }
        location /tile/ {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }
    }
}
NGINX
}
mkdir -p "$WORK/nginx"
NGINX_PORT=""
for ((attempt = 0; attempt < 5; attempt++)); do
    free_port port
    static_conf "$WORK/nginx" "$port" >"$WORK/nginx/nginx.conf"
    setsid "${PIN_SERVER[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
        >"$WORK/nginx/stdout.log" 2>&1 &
    pid=$!
    if wait_ok nginx "$port" / "$pid"; then
        PIDS+=("$pid")
        NGINX_PORT=$port
        break
    fi
    stop_group "$pid"
    grep -q "Address already in use" "$WORK/nginx/error.log" "$WORK/nginx/stdout.log" 2>/dev/null || break
done
[[ -n $NGINX_PORT ]] || { cat "$WORK/nginx/stdout.log" "$WORK/nginx/error.log" >&2 2>/dev/null || true; die "nginx did not start"; }
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
# The same bytes from all three.
first=$(head -1 "$WORK/bundles.paths")
last=$(tail -1 "$WORK/bundles.paths")
for base in "$OWN" "$PUBLIC_TILES"; do
    for path in "$first" "$last"; do
        cmp -s <(curl -sf "$NGINX_URL$path") <(curl -sf "$base$path") || die "$base$path differs from the file"
    done
done

# ---- runs ----

LOG="$WORK/wrk.log"
: >"$LOG"
declare -A BASE=([nginx]="$NGINX_URL" [govgate-own]="$OWN" [govgate-public]="$PUBLIC_TILES")
TARGETS=(nginx govgate-own govgate-public)
declare -A RPS=() MBPS=()

# run_wrk LABEL TARGET WORKLOAD SECONDS: one run; prints "req/s MB/s".
run_wrk() {
    local label=$1 target=$2 workload=$3 secs=$4 out
    # The path part of the target's URL, e.g. /govgate/log.
    local base=${BASE[$target]#http://*/}
    if [[ $base == "${BASE[$target]}" ]]; then base=""; else base="/$base"; fi
    out=$(TILES_PATHS="$WORK/$workload.paths" TILES_PREFIX="$base" timeout $((secs + 30)) "${PIN_LOAD[@]}" \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 5s -s "$LUA" "${BASE[$target]}" 2>&1) ||
        { echo "$out" >&2; die "wrk failed ($label)"; }
    printf '==== %s %s %s\n%s\n\n' "$label" "$target" "$workload" "$out" >>"$LOG"
    if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; die "$target answered errors ($workload)"; fi
    awk '/^Requests\/sec:/ { rps = $2 }
         /^Transfer\/sec:/ { v = $2; u = substr(v, length(v) - 1); v = v + 0
                             if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024; else if (u != "MB") v /= 1048576
                             mbps = v }
         END { printf "%.0f %.1f\n", rps, mbps }' <<<"$out"
}

for workload in hashes bundles; do
    for target in "${TARGETS[@]}"; do
        if ((WARMUP > 0)); then run_wrk warm-up "$target" "$workload" "$WARMUP" >/dev/null; fi
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${TARGETS[@]}"; do
            echo "tiles: $workload, round $round: $target (${SECONDS_PER_RUN}s)..." >&2
            read -r rps mbps < <(run_wrk "round $round" "$target" "$workload" "$SECONDS_PER_RUN")
            RPS[$workload.$target]+="$rps "
            MBPS[$workload.$target]+="$mbps "
        done
    done
done

# ---- report ----

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ROWS=()
for workload in hashes bundles; do
    nginx_rps=$(median "${RPS[$workload.nginx]}")
    for target in "${TARGETS[@]}"; do
        rps=$(median "${RPS[$workload.$target]}")
        ratio=$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')
        ROWS+=("$workload|$target|$rps|$(median "${MBPS[$workload.$target]}")|${RPS[$workload.$target]% }|$ratio")
    done
done
HEADER="workload|target|req/s (median)|MB/s (median)|req/s of each round|vs nginx"
NOTE="log of $SIZE entries: $HASH_TILES full hash tiles, $BUNDLES full entry bundles ($((BUNDLE_BYTES / BUNDLES)) bytes each on average); wrk -c$CONNECTIONS, ${SECONDS_PER_RUN}s x $ROUNDS rounds per target, targets in turn; $PIN_NOTE; $(nproc) CPUs ($(uname -m)), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
table "$HEADER" "${ROWS[@]}"
echo "$NOTE"
mkdir -p "$ROOT/bench-out"
{
    md_table "$HEADER" "${ROWS[@]}"
    echo
    echo "$NOTE"
} >"$ROOT/bench-out/tiles.md"
cp "$LOG" "$ROOT/bench-out/tiles.log"

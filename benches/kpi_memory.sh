#!/usr/bin/env bash
# KPI memory benchmark: does the gateway's memory stay bounded while the
# KPI aggregator is fed for a long time with values that keep changing?
#
# Memory of the KPIs should be bounded by the configuration (window,
# max_groups, reference_rows), not by the traffic. This runs:
#
#   wrk -> govgate (release build, one `http` model with [models.kpi]) -> upstream
#
# for $BENCH_SECONDS and samples, every $BENCH_SAMPLE seconds, the
# gateway's resident memory (VmRSS, RssAnon from /proc/PID/status) and
# govgate_kpi_rows_total from the admin /metrics.
#
# The upstream is its own nginx process (one worker) that answers every
# POST with 200 {"score":0.XYZD}: XYZ are the milliseconds of $msec and D
# the last digit of the connection's request count, so the score (and so
# the predicted outcome at threshold 0.5) varies from request to request.
# The KPI config: window 10 000, reference_rows 1000, max_groups 50
# (default), outcome pointer /score (from the response), 2 protected
# attributes from headers (sex: 3 values; region: 80 values, above the
# group cap) and 10 drift features from the request body (6 numeric, 4
# categorical, one of which gets up to 1000 distinct values and one a new
# value on every request); see benches/load/kpi_rows.lua. The version is
# approved by two approvers and activated, as in benches/load.sh.
#
# What is measured and what is not:
#   - every request is also a decision entry in the ledger: the ledger
#     store grows on disk with the traffic (its size is reported at the
#     end). That is expected; resident memory is what this is about.
#   - sled's page cache (ledger.cache_mb, 64 MiB by default) is part of the
#     RSS, and fills as the ledger is written: part of any early growth is
#     that cache, not the KPIs. BENCH_KPI=0 runs the same traffic against
#     the same model without [models.kpi], as a baseline for the proxy and
#     the ledger alone.
#   - RSS is what the allocator (mimalloc) has not given back to the
#     kernel: a freed peak can stay resident. Flat means "does not keep
#     growing after the window is full", not "equal to the KPI state".
#
# Usage: benches/kpi_memory.sh      (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS      seconds of traffic                         (default 120)
#   BENCH_SAMPLE       seconds between samples                    (default 10)
#   BENCH_CONNECTIONS  wrk connections                            (default 32)
#   BENCH_PIN          1: wrk on the first CPU, upstream and govgate on the
#                      others (default when taskset exists and there are at
#                      least 2 CPUs); 0: no pinning
#   BENCH_BUILD        0: do not run `cargo build --release` first
#   BENCH_KPI          1: the model has [models.kpi] (default); 0: the same
#                      model and traffic without it (baseline)
#   BENCH_LEDGER_CACHE_MB  the ledger store's page cache (ledger.cache_mb,
#                      default 64): how much of the growth is that cache
#   BENCH_OUTCOME      score: the upstream answers {"score": ...} (default);
#                      miss: it answers {"other": ...}, so the outcome
#                      selector never matches and no answer yields a row
#                      (as with a wrong pointer, or a model that only
#                      answers errors): what the aggregator keeps for
#                      answers without rows
#
# Needs nginx and wrk (Debian: apt-get install -y nginx wrk).
#
# Output: the table on stdout, the same as markdown in
# bench-out/kpi_memory.md, and wrk's output and every metrics sample in
# bench-out/kpi_memory.log.

set -Eeuo pipefail
trap 'echo "kpi_memory.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

RUN_SECONDS=${BENCH_SECONDS:-120}
SAMPLE=${BENCH_SAMPLE:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
KPI=${BENCH_KPI:-1}
OUTCOME=${BENCH_OUTCOME:-score}
CACHE_MB=${BENCH_LEDGER_CACHE_MB:-64}

# The KPI configuration (also printed in the notes).
KPI_WINDOW=10000
KPI_REFERENCE_ROWS=1000
KPI_MAX_GROUPS=50

die() {
    echo "kpi_memory.sh: $*" >&2
    exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/lib/shared.sh
source "$HERE/lib/shared.sh"

if ! is_uint "$RUN_SECONDS" || ((RUN_SECONDS == 0)); then die "BENCH_SECONDS must be a positive integer"; fi
if ! is_uint "$SAMPLE" || ((SAMPLE == 0)); then die "BENCH_SAMPLE must be a positive integer"; fi
if ! is_uint "$CONNECTIONS" || ((CONNECTIONS == 0)); then die "BENCH_CONNECTIONS must be a positive integer"; fi
[[ $KPI == 0 || $KPI == 1 ]] || die "BENCH_KPI must be 0 or 1"
[[ $OUTCOME == score || $OUTCOME == miss ]] || die "BENCH_OUTCOME must be score or miss"

ROOT=$(cd "$HERE/.." && pwd)
LUA="$HERE/load/kpi_rows.lua"
[[ -f $LUA ]] || die "missing $LUA"

# ---- tools ----

require_tools timeout setsid awk du

# ---- CPUs and pinning ----

set_pinning "upstream and govgate"
((CONNECTIONS >= WRK_THREADS)) || die "BENCH_CONNECTIONS must be at least $WRK_THREADS"

# ---- build ----

build_release "$ROOT"

# ---- scratch directory and cleanup ----

WORK=$(mktemp -d "${TMPDIR:-/tmp}/govgate-kpi-memory.XXXXXX")
# nginx workers drop root privileges: let them reach their directories.
chmod 755 "$WORK"
PIDS=()
WRK_PID=


cleanup() {
    local pid
    if [[ -n $WRK_PID ]]; then stop_group "$WRK_PID"; fi
    for pid in "${PIDS[@]}"; do stop_group "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ----

upstream_conf() {
    local dir=$1 port=$2 answer
    if [[ $OUTCOME == score ]]; then
        answer="'{\"score\":0.\${score_ms}\${score_digit}}'"
    else
        answer="'{\"other\":0.\${score_ms}\${score_digit}}'"
    fi
    cat <<EOF
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
worker_processes 1;
http {
    access_log off;
    # wrk keeps its connections for the whole run; nginx's default of 1000
    # requests per connection would make it reconnect all the time.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # A score that varies per request: the milliseconds of the current
    # time, then the last digit of the connection's request count.
    map \$msec \$score_ms {
        "~\\.(?<ms>[0-9]{3})\$" \$ms;
        default 500;
    }
    map \$connection_requests \$score_digit {
        "~(?<d>[0-9])\$" \$d;
        default 0;
    }
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location = /healthz {
            return 200 '{"ok":true}';
        }
        location / {
            return 200 $answer;
        }
    }
}
EOF
}

# start_upstream: writes the config for a fresh free port (tried again on
# a bind race), starts nginx, waits until it answers. Sets UPSTREAM_PORT.
start_upstream() {
    local dir="$WORK/upstream" attempt port pid
    mkdir -p "$dir"
    for ((attempt = 0; attempt < 5; attempt++)); do
        free_port port
        upstream_conf "$dir" "$port" >"$dir/nginx.conf"
        setsid "${PIN_SERVER[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            >"$dir/stdout.log" 2>&1 &
        pid=$!
        if wait_ok upstream "$port" /healthz "$pid"; then
            PIDS+=("$pid")
            UPSTREAM_PORT=$port
            return 0
        fi
        stop_group "$pid"
        grep -q "Address already in use" "$dir/error.log" "$dir/stdout.log" 2>/dev/null || break
    done
    cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null || true
    die "upstream did not start"
}

# ---- the upstream ----

start_upstream

# ---- govgate ----

write_govgate_config bench.govgate.example/kpi-memory "cache_mb = $CACHE_MB"
if [[ $KPI == 1 ]]; then
    {
        cat <<EOF

[models.kpi]
window = $KPI_WINDOW
reference_rows = $KPI_REFERENCE_ROWS
max_groups = $KPI_MAX_GROUPS

[models.kpi.outcome]
pointer = "/score"
threshold = 0.5

[[models.kpi.attributes]]
name = "sex"
header = true

[[models.kpi.attributes]]
name = "region"
header = true
EOF
        for feature in age:numeric income:numeric amount:numeric duration:numeric rate:numeric \
            balance:numeric purpose:categorical job:categorical merchant:categorical device:categorical; do
            printf '\n[[models.kpi.features]]\nname = "%s"\nkind = "%s"\npointer = "/%s"\n' \
                "${feature%%:*}" "${feature#*:}" "${feature%%:*}"
        done
    } >>"$WORK/govgate/govgate.toml"
fi
govgate_version_section "$UPSTREAM_PORT" >>"$WORK/govgate/govgate.toml"

# A GET with no body: with KPIs on, one answer without a row (an outcome
# selector miss), nothing else.
start_govgate /m/healthz
ADMIN_PORT=${GOVGATE_ADMIN##*:}
ADMIN_PORT=${ADMIN_PORT%%/*}

# ---- sampling ----

LOG="$WORK/kpi_memory.log"
: >"$LOG"

# status_kb FIELD: a field of /proc/PID/status of govgate, in kB.
status_kb() {
    awk -v field="$1:" '$1 == field { print $2; found = 1 } END { if (!found) print 0 }' \
        "/proc/$GOVGATE_PID/status" 2>/dev/null || echo 0
}

# metric TEXT NAME: the sum of a metric's samples in a /metrics text.
metric() {
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $NF; found = 1 }
        END { if (found) printf "%.0f", sum; else print 0 }' <<<"$1"
}

CLOCK_TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

# our_ticks: CPU time (clock ticks) so far of every process started here
# (wrk, the upstream's nginx, govgate): their process groups.
our_ticks() {
    # Processes may end between the glob and the read: ignore those.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v groups=" ${PIDS[*]} $WRK_PID " '
        { sub(/^.*\) /, ""); if (index(groups, " " $3 " ")) total += $12 + $13 }
        END { print total + 0 }'
}

SAMPLES=()
T0=
# sample: one row of the table: seconds, rows, requests, RSS, anon RSS,
# ledger store on disk.
sample() {
    local text secs rows requests dropped misses rss anon disk idle ours
    text=$(http_get "$ADMIN_PORT" /metrics || true)
    secs=$(awk -v t0="$T0" -v t1="$EPOCHREALTIME" 'BEGIN { printf "%.0f", t1 - t0 }')
    rows=$(metric "$text" govgate_kpi_rows_total)
    requests=$(metric "$text" govgate_requests_total)
    dropped=$(metric "$text" govgate_kpi_dropped_total)
    misses=$(metric "$text" govgate_kpi_selector_misses_total)
    rss=$(status_kb VmRSS)
    anon=$(status_kb RssAnon)
    disk=$(du -sk "$WORK/govgate/data" 2>/dev/null | cut -f1 || echo 0)
    {
        echo "==== sample at ${secs}s"
        grep -E '^govgate_(kpi_rows_total|kpi_dropped_total|kpi_selector_misses_total|requests_total)' <<<"$text" || true
        echo "VmRSS ${rss} kB, RssAnon ${anon} kB, ledger store ${disk} kB"
    } >>"$LOG"
    idle=$(idle_ticks)
    ours=$(our_ticks)
    SAMPLES+=("$secs $rows $requests $rss $anon $disk $dropped $misses $idle $ours")
}

echo "kpi_memory: upstream :$UPSTREAM_PORT, govgate :$GOVGATE_PORT (admin :$ADMIN_PORT); $PIN_NOTE" >&2
echo "kpi_memory: ${RUN_SECONDS}s of traffic, a sample every ${SAMPLE}s (KPIs: $([[ $KPI == 1 ]] && echo on || echo off), upstream answers: $OUTCOME)" >&2

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$EPOCHREALTIME
sample
setsid "${PIN_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${RUN_SECONDS}s" --timeout 5s --latency \
    -s "$LUA" "http://127.0.0.1:$GOVGATE_PORT/m/score" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
for ((next = SAMPLE; next <= RUN_SECONDS; next += SAMPLE)); do
    wait_for=$(awk -v t0="$T0" -v now="$EPOCHREALTIME" -v at="$next" 'BEGIN { d = t0 + at - now; if (d < 0) d = 0; printf "%.3f", d }')
    sleep "$wait_for"
    kill -0 "$GOVGATE_PID" 2>/dev/null || die "govgate exited during the run (see its stderr)"
    sample
    awk '{ printf "kpi_memory: %ss: %s KPI rows, %s requests, RSS %.1f MB\n", $1, $2, $3, $4 / 1024 }' \
        <<<"${SAMPLES[-1]}" >&2
done
LOAD_DURING=$(cut -d' ' -f1-3 /proc/loadavg)
timeout $((RUN_SECONDS + 60)) tail --pid="$WRK_PID" -f /dev/null || die "wrk did not end"
wait "$WRK_PID" || { cat "$WORK/wrk.out" >&2; die "wrk failed"; }
WRK_PID=
cat "$WORK/wrk.out" >>"$LOG"
BENCH_LINE=$(grep '^BENCH ' "$WORK/wrk.out") || { cat "$WORK/wrk.out" >&2; die "no result from wrk"; }
declare -A W=()
for kv in ${BENCH_LINE#BENCH }; do W[${kv%%=*}]=${kv#*=}; done
WRK_ERRORS=$((W[connect] + W[read] + W[write] + W[status] + W[timeout]))
# Idle after the traffic: what stays resident.
sleep "$SAMPLE"
sample
IDLE_SAMPLE=${SAMPLES[-1]}
HWM=$(status_kb VmHWM)

# ---- report ----

# Rows that fill every bounded structure: the drift reference, then a full
# drift window after it; the decisions kept for labels span 2 x window rows.
FULL_ROWS=$((KPI_REFERENCE_ROWS + 2 * KPI_WINDOW))

ROWS_TABLE=()
for s in "${SAMPLES[@]}"; do
    read -r secs rows requests rss anon disk _ <<<"$s"
    label=$secs
    [[ $s == "$IDLE_SAMPLE" ]] && label="$secs (idle)"
    ROWS_TABLE+=("$(awk -v l="$label" -v r="$rows" -v q="$requests" -v rss="$rss" -v anon="$anon" -v d="$disk" \
        'BEGIN { printf "%s|%d|%d|%.1f|%.1f|%.1f", l, r, q, rss / 1024, anon / 1024, d / 1024 }')")
done

read -r _ last_rows _ last_rss _ last_disk last_dropped last_misses _ <<<"${SAMPLES[-2]}"

# CPU used by other processes than ours, from the start of the traffic to
# the last sample before its end (wrk still runs then, so its time counts
# as ours), in % of one CPU: the machine's busy time (wall time x CPUs
# minus idle) minus ours.
OTHER_PCT=
if ((${#SAMPLES[@]} >= 4)); then
    read -r s0 _ _ _ _ _ _ _ idle0 ours0 <<<"${SAMPLES[0]}"
    read -r s1 _ _ _ _ _ _ _ idle1 ours1 <<<"${SAMPLES[-3]}"
    OTHER_PCT=$(awk -v i0="$idle0" -v i1="$idle1" -v o0="$ours0" -v o1="$ours1" -v t0="$s0" -v t1="$s1" \
        -v hz="$CLOCK_TICKS" -v cpus="$ONLINE_CPUS" 'BEGIN {
        o = cpus * (t1 - t0) - (i1 - i0) / hz - (o1 - o0) / hz; if (o < 0) o = 0
        printf "%.0f", 100 * o / (t1 - t0) }')
fi

# Growth: from the first sample with every structure full to the last
# sample under traffic; and the trend over the second half of the
# traffic (least squares of RSS over requests served), where the sled
# cache is full too. RSS is noisy (the allocator's pages come and go):
# the trend says more than any two samples.
FULL_FROM=
for s in "${SAMPLES[@]:1}"; do
    read -r secs rows _ rss _ <<<"$s"
    if ((rows >= FULL_ROWS)) || [[ $KPI == 0 || $OUTCOME == miss ]]; then
        # (Without rows: from the first sample under traffic.)
        FULL_FROM="$secs $rows $rss"
        break
    fi
done
GROWTH_FROM="growth once the window, the reference and the label-join span are full ($FULL_ROWS rows)"
if [[ $KPI == 0 || $OUTCOME == miss ]]; then GROWTH_FROM="growth under traffic (no KPI rows)"; fi
GROWTH_NOTE="the KPI structures never filled (fewer than $FULL_ROWS rows)"
if [[ -n $FULL_FROM ]]; then
    read -r full_secs _ full_rss <<<"$FULL_FROM"
    read -r last_secs _ <<<"${SAMPLES[-2]}"
    GROWTH_NOTE=$(awk -v s0="$full_secs" -v s1="$last_secs" -v m0="$full_rss" -v m1="$last_rss" 'BEGIN {
        printf "RSS from %ds to %ds: %+.1f MB (%.1f -> %.1f MB)", s0, s1, (m1 - m0) / 1024, m0 / 1024, m1 / 1024 }')
fi
# The samples under traffic (not the first, not the idle one) of the
# second half.
TREND_NOTE=$(printf '%s\n' "${SAMPLES[@]:1:${#SAMPLES[@]}-2}" | awk -v half=$((RUN_SECONDS / 2)) '
    $1 >= half { n++; x = $3 / 1e5; y = $4 / 1024; sx += x; sy += y; sxx += x * x; sxy += x * y
                 if (n == 1 || y < lo) lo = y; if (n == 1 || y > hi) hi = y
                 if (n == 1) { s0 = $1; q0 = $3 } s1 = $1; q1 = $3 }
    END {
        if (n < 3 || n * sxx - sx * sx <= 0) { print "too few samples in the second half for a trend"; exit }
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        printf "second half (%ds to %ds, %d samples, %d requests): RSS between %.1f and %.1f MB, trend %+.2f MB per 100 000 requests (least squares)",
            s0, s1, n, q1 - q0, lo, hi, slope }')
TREND_SLOPE=$(sed -n 's/.*trend \([-+][0-9.]*\) MB.*/\1/p' <<<"$TREND_NOTE")

CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    REVISION="$REVISION (modified)"
fi
GOVGATE_WARNINGS=$(grep -c . "$WORK/govgate/stderr.log" || true)
LEDGER_MB=$(awk -v d="$last_disk" 'BEGIN { printf "%.1f", d / 1024 }')
if [[ $KPI == 1 ]]; then
    KPI_NOTE="[models.kpi] window $KPI_WINDOW, reference_rows $KPI_REFERENCE_ROWS, max_groups $KPI_MAX_GROUPS; outcome /score >= 0.5 (response); attributes sex (3 values), region (80 values) from headers; features age, income, amount, duration, rate, balance (numeric), purpose (10), job (4), merchant (up to 1000 values), device (a new value per request) (categorical)"
else
    KPI_NOTE="BASELINE: the model has no [models.kpi] (same traffic, no KPI aggregator)"
fi
if [[ $OUTCOME == score ]]; then
    UPSTREAM_NOTE="upstream: nginx $NGINX_VERSION, 1 worker, return 200 {\"score\":0.XYZD} (milliseconds of \$msec and the last digit of \$connection_requests: varies per request)"
else
    UPSTREAM_NOTE="upstream: nginx $NGINX_VERSION, 1 worker, return 200 {\"other\":...}: NO SCORE, every answer misses the outcome selector and yields no row"
fi

NOTES=(
    "date: $(date -u '+%Y-%m-%d %H:%M UTC'), govgate $REVISION"
    "machine: $NCPU CPUs ($CPU_MODEL), $(uname -sr); load average before: $LOAD_BEFORE, at the end of the traffic: $LOAD_DURING (ours included); other processes used ${OTHER_PCT:-?}% of one CPU during the traffic"
    "pinning: $PIN_NOTE"
    "load: wrk $WRK_VERSION -t$WRK_THREADS -c$CONNECTIONS -d${RUN_SECONDS}s, benches/load/kpi_rows.lua: $(printf '%.0f' "${W[rps]}") req/s, ${W[requests]} requests, $WRK_ERRORS errors, p50 ${W[p50_us]} us, p99 ${W[p99_us]} us"
    "$UPSTREAM_NOTE"
    "govgate: release build, GOVGATE_LOG=warn, $GOVGATE_WARNINGS log lines; $KPI_NOTE"
    "KPI rows fed: $last_rows; answers dropped at the aggregator's full queue: $last_dropped; selector misses: $last_misses"
    "$GROWTH_FROM: $GROWTH_NOTE"
    "$TREND_NOTE"
    "peak RSS (VmHWM): $(awk -v h="$HWM" 'BEGIN { printf "%.1f", h / 1024 }') MB"
    "ledger store on disk at the end of the traffic: $LEDGER_MB MB (every request is a decision entry: it grows with the traffic, on disk; sled's page cache, ledger.cache_mb = $CACHE_MB MiB, is part of the RSS)"
    "RSS: VmRSS; anon: RssAnon (heap, without the mapped binary); what the allocator keeps after a peak stays resident"
)

WARNINGS=()
if ((WRK_ERRORS > 0)); then WARNINGS+=("wrk saw $WRK_ERRORS errors (see bench-out/kpi_memory.log)"); fi
if ((last_dropped > 0)); then WARNINGS+=("$last_dropped answers were dropped at the KPI queue: fewer rows than requests"); fi
# A steady 1 MB or more per 100 000 requests is about 10 bytes per request
# or more that is never given back.
if [[ -n $TREND_SLOPE ]] && awk -v t="$TREND_SLOPE" 'BEGIN { exit !(t >= 1) }'; then
    WARNINGS+=("RSS still grows in the second half: $TREND_SLOPE MB per 100 000 requests")
fi
if [[ -n $OTHER_PCT ]] && ((OTHER_PCT > 15)); then
    WARNINGS+=("other processes used $OTHER_PCT% of one CPU during the traffic: fewer requests than this machine could serve, and noisier RSS")
fi

HEADER="seconds|KPI rows|requests|RSS MB|anon MB|ledger MB"



{
    echo
    echo "KPI memory (${RUN_SECONDS}s of traffic, a sample every ${SAMPLE}s, then one ${SAMPLE}s after the traffic)"
    table "$HEADER" "${ROWS_TABLE[@]}"
    echo
    printf '%s\n' "${NOTES[@]}"
    if ((${#WARNINGS[@]})); then printf 'WARNING: %s\n' "${WARNINGS[@]}"; fi
}

OUT_DIR="$ROOT/bench-out"
mkdir -p "$OUT_DIR"
{
    echo "### KPI memory (benches/kpi_memory.sh)"
    echo
    echo "${RUN_SECONDS}s of traffic, a sample every ${SAMPLE}s, then one ${SAMPLE}s after the traffic:"
    echo
    md_table "$HEADER" "${ROWS_TABLE[@]}"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
    if ((${#WARNINGS[@]})); then printf -- '- **warning**: %s\n' "${WARNINGS[@]}"; fi
} >"$OUT_DIR/kpi_memory.md"
cp "$LOG" "$OUT_DIR/kpi_memory.log"
echo "written: bench-out/kpi_memory.md, bench-out/kpi_memory.log" >&2

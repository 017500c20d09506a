#!/usr/bin/env bash
# Load benchmark: one fast upstream, measured three ways in one run.
#
#   direct   wrk -> upstream
#   nginx    wrk -> nginx (plain reverse proxy, keepalive pool) -> upstream
#   govgate  wrk -> govgate (release build, `http` model) -> upstream
#
# The upstream is its own nginx process (one worker) that answers every
# request with 200 {"ok":true}. Everything listens on 127.0.0.1, on ports
# picked here, and everything started here is stopped on exit.
#
# Two measurements per target:
#   1. saturation: wrk -c$BENCH_CONNECTIONS for $BENCH_SECONDS after a short
#      warm-up; throughput (req/s) and latency p50/p99.
#   2. fixed rate: about half of govgate's saturation throughput, the same
#      rate for all three targets (wrk paced by benches/load/wrk.lua);
#      latency p50/p99, and the latency that each proxy adds to direct.
#
# Usage: benches/load.sh            (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS      measured seconds per run                  (default 10)
#   BENCH_CONNECTIONS  wrk connections                           (default 64)
#   BENCH_WARMUP       warm-up seconds before each saturation run (default 2)
#   BENCH_PIN          1: wrk on the first CPU, upstream and proxy on the
#                      others (default when taskset exists and there are at
#                      least 2 CPUs); 0: no pinning
#   BENCH_BUILD        0: do not run `cargo build --release` first
#   BENCH_RATE         the fixed rate in req/s (default: half of govgate's
#                      saturation), e.g. the same rate for two builds
#   BENCH_PROFILE      1: after the measured runs, one more govgate run at
#                      the fixed rate under `perf record -g` (needs perf);
#                      its summary goes to bench-out/load-profile.txt
#   BENCH_BIN          a govgate binary to measure instead (no build), e.g.
#                      an earlier release build for a before/after pair
#   BENCH_POLICIES     1: govgate runs the shipped policies (policies/*.rego,
#                      both stages on every request; the 5 % audit sample
#                      queues flag reviews); a directory: the policies in
#                      it; default 0 (none)
#   BENCH_STREAM       1: govgate streams every answer (a buffering limit of
#                      one byte): each answer is recorded at its head
#                      before its first byte and at its end; default 0
#   BENCH_DURING       verify: after the measured runs, govgate's saturation
#                      and fixed-rate runs once more while a full ledger
#                      verification runs in the gateway (POST
#                      /admin/ledger/verify); export: the same while an
#                      online export of the whole log with payloads is
#                      downloaded (GET /admin/ledger/export, by curl into
#                      the work directory); reports throughput and p99 as
#                      ratios to the runs without it (targets: >= 0.9 x
#                      throughput, p99 <= 1.5 x); default: none
#   BENCH_TLS          1: nginx and govgate both terminate TLS (a P-256
#                      certificate from a CA made for the run, TLS 1.3,
#                      keep-alive connections, so the handshake cost is
#                      spread over each connection's requests); the
#                      upstream and the direct run stay plain; default 0
#   BENCH_JWT          1: every request carries a JWT bearer token (EdDSA,
#                      signed for the run with a key made by openssl) and
#                      govgate checks it ([auth.jwt] with a key set file,
#                      `required = true`); nginx and the direct run get the
#                      same header and ignore it; default 0
#   BENCH_NEW_CONNECTION  1: every request on a new connection (wrk sends
#                      `Connection: close` and reconnects), so with
#                      BENCH_TLS=1 every request pays a full handshake;
#                      default 0
#
# Needs nginx and wrk (Debian: apt-get install -y nginx wrk); with
# BENCH_TLS=1 or BENCH_JWT=1 also openssl.
#
# Output: a table on stdout, the same as markdown in bench-out/load.md, and
# the raw wrk output of every run in bench-out/load.log.

set -Eeuo pipefail
trap 'echo "load.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2}
POLICIES=${BENCH_POLICIES:-0}
STREAM=${BENCH_STREAM:-0}
DURING=${BENCH_DURING:-}
TLS=${BENCH_TLS:-0}
JWT=${BENCH_JWT:-0}
NEW_CONNECTION=${BENCH_NEW_CONNECTION:-0}

die() {
    echo "load.sh: $*" >&2
    exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/lib/shared.sh
source "$HERE/lib/shared.sh"
# shellcheck source=benches/lib/nginx.sh
source "$HERE/lib/nginx.sh"

if ! is_uint "$SECONDS_PER_RUN" || ((SECONDS_PER_RUN == 0)); then die "BENCH_SECONDS must be a positive integer"; fi
if ! is_uint "$CONNECTIONS" || ((CONNECTIONS == 0)); then die "BENCH_CONNECTIONS must be a positive integer"; fi
is_uint "$WARMUP" || die "BENCH_WARMUP must be an integer"
[[ $POLICIES == 0 || $POLICIES == 1 || -d $POLICIES ]] || die "BENCH_POLICIES must be 0, 1 or a directory"
[[ $STREAM == 0 || $STREAM == 1 ]] || die "BENCH_STREAM must be 0 or 1"
[[ $TLS == 0 || $TLS == 1 ]] || die "BENCH_TLS must be 0 or 1"
[[ $JWT == 0 || $JWT == 1 ]] || die "BENCH_JWT must be 0 or 1"
[[ $NEW_CONNECTION == 0 || $NEW_CONNECTION == 1 ]] || die "BENCH_NEW_CONNECTION must be 0 or 1"
[[ -z $DURING || $DURING == verify || $DURING == export ]] || die "BENCH_DURING must be empty, verify or export"

ROOT=$(cd "$HERE/.." && pwd)
LUA="$HERE/load/wrk.lua"
[[ -f $LUA ]] || die "missing $LUA"

# ---- tools ----

require_tools timeout setsid awk curl

# ---- CPUs and pinning ----

set_pinning "upstream, nginx and govgate"
PROXY_WORKERS=$((BENCH_PIN == 1 ? NCPU - 1 : NCPU))
((CONNECTIONS >= WRK_THREADS)) || die "BENCH_CONNECTIONS must be at least $WRK_THREADS"

# ---- build ----

build_release "$ROOT"

# ---- scratch directory and cleanup ----

WORK=$(mktemp -d "${TMPDIR:-/tmp}/govgate-load.XXXXXX")
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

# ---- helpers ----

proxy_conf() {
    local dir=$1 port=$2
    nginx_common "$dir"
    cat <<EOF
worker_processes $PROXY_WORKERS;
http {
$(nginx_http_common "$dir")
    upstream backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive $CONNECTIONS;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port$PROXY_LISTEN_EXTRA;
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


# servers_ticks: CPU time (clock ticks) of our servers so far: every process
# in their process groups (nginx masters and workers, govgate's threads).
servers_ticks() {
    # Processes may end between the glob and the read: ignore those.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v groups=" ${PIDS[*]} " '
        { sub(/^.*\) /, ""); if (index(groups, " " $3 " ")) total += $12 + $13 }
        END { print total + 0 }'
}
# group_switches PGID: context switches (voluntary and involuntary) of
# every thread of that process group so far: each one is a thread going
# to sleep or being put aside, a hand-off's cost.
group_switches() {
    local pid total=0 n
    for pid in $(awk -v group="$1" '{ sub(/^.*\) /, ""); if ($3 == group) print FILENAME }' \
        /proc/[0-9]*/stat 2>/dev/null | sed 's|^/proc/||; s|/stat$||'); do
        n=$(cat "/proc/$pid"/task/*/status 2>/dev/null |
            awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { t += $2 } END { print t + 0 }')
        total=$((total + n))
    done
    echo "$total"
}

LOG="$WORK/wrk.log"
: >"$LOG"

# run_wrk LABEL URL SECONDS [RATE [PGID]]: one wrk run; prints its BENCH
# line, with server_pct: the CPU that our servers (upstream and proxy)
# used, and other_pct: the CPU that processes other than wrk and our
# servers used meanwhile (other work on the machine disturbs the figures);
# both in percent of one CPU. With PGID (the proxy's process group) also
# proxy_ticks and proxy_switches: its CPU ticks and context switches
# during the run.
run_wrk() {
    local label=$1 url=$2 secs=$3 rate=${4:-} group=${5:-} out line ticks0=0 switches0=0
    local -a pace=()
    [[ -n $rate ]] && pace=(WRK_PACE_RATE="$rate" WRK_PACE_THREADS="$WRK_THREADS")
    local idle0 servers0 start idle1 servers1 end wrk_cpu other server
    if [[ -n $group ]]; then
        ticks0=$(group_ticks "$group")
        switches0=$(group_switches "$group")
    fi
    idle0=$(idle_ticks)
    servers0=$(servers_ticks)
    start=$EPOCHREALTIME
    local TIMEFORMAT='WRKCPU %3U %3S'
    out=$({ time env -u WRK_PACE_RATE -u WRK_PACE_THREADS "${pace[@]}" \
        timeout $((secs + 30)) "${PIN_LOAD[@]}" \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 5s --latency "${WRK_HEADERS[@]}" \
        -s "$LUA" "$url" 2>&1; } 2>&1) ||
        { echo "$out" >&2; die "wrk failed ($label)"; }
    end=$EPOCHREALTIME
    idle1=$(idle_ticks)
    servers1=$(servers_ticks)
    local proxy=""
    if [[ -n $group ]]; then
        proxy=" proxy_ticks=$(($(group_ticks "$group") - ticks0)) proxy_switches=$(($(group_switches "$group") - switches0))"
    fi
    wrk_cpu=$(awk '/^WRKCPU / { print $2 + $3 }' <<<"$out")
    other=$(awk -v idle=$((idle1 - idle0)) -v servers=$((servers1 - servers0)) -v wrk="${wrk_cpu:-0}" \
        -v hz="$CLOCK_TICKS" -v cpus="$ONLINE_CPUS" -v t0="$start" -v t1="$end" \
        'BEGIN { o = cpus * (t1 - t0) - idle / hz - servers / hz - wrk; if (o < 0) o = 0
                 printf "%.0f", 100 * o / (t1 - t0) }')
    server=$(awk -v servers=$((servers1 - servers0)) -v hz="$CLOCK_TICKS" -v t0="$start" -v t1="$end" \
        'BEGIN { printf "%.0f", 100 * servers / hz / (t1 - t0) }')
    printf '==== %s%s: %s\n%s\nupstream and proxy: %s%% of one CPU; other processes: %s%% of one CPU\n\n' \
        "$label" "${rate:+ (paced at $rate req/s)}" "$url" "$out" "$server" "$other" >>"$LOG"
    line=$(grep '^BENCH ' <<<"$out") || { echo "$out" >&2; die "no result from wrk ($label)"; }
    echo "$line server_pct=$server other_pct=$other$proxy"
}

declare -A R=()
# record KEY BENCH_LINE: stores each field as R[KEY.field].
record() {
    local key=$1 kv
    for kv in ${2#BENCH }; do R[$key.${kv%%=*}]=${kv#*=}; done
    R[$key.errors]=$((R[$key.connect] + R[$key.read] + R[$key.write] + R[$key.status] + R[$key.timeout]))
}

# ---- TLS (BENCH_TLS=1): a CA and a server certificate for 127.0.0.1 ----

if [[ $TLS == 1 ]]; then
    make_bench_tls
    GOVGATE_SERVER_EXTRA=$(printf '[server.public_tls]\ncert_file = "%s"\nkey_file = "%s"\n' \
        "$WORK/tls/server.crt" "$WORK/tls/server.key")
    PROXY_LISTEN_EXTRA=" ssl"
    PROXY_TLS_LINES="ssl_certificate $WORK/tls/server.crt; ssl_certificate_key $WORK/tls/server.key; ssl_protocols TLSv1.3;"
    SCHEME=https
else
    PROXY_LISTEN_EXTRA=""
    PROXY_TLS_LINES=""
    SCHEME=http
fi

# ---- JWT (BENCH_JWT=1): an EdDSA key, its key set and one token ----

WRK_HEADERS=()
JWT_CONFIG=""
# base64url without padding, of stdin.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
if [[ $JWT == 1 ]]; then
    require_tools openssl base64
    mkdir -p "$WORK/jwt"
    openssl genpkey -algorithm ed25519 -out "$WORK/jwt/issuer.key" 2>/dev/null ||
        die "cannot make the JWT key (openssl)"
    # The DER public key ends with the 32 raw bytes of the Ed25519 key.
    JWT_X=$(openssl pkey -in "$WORK/jwt/issuer.key" -pubout -outform DER | tail -c 32 | b64url)
    printf '{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"bench","x":"%s"}]}\n' "$JWT_X" \
        >"$WORK/jwt/jwks.json"
    JWT_NOW=$(date +%s)
    JWT_SIGNED="$(printf '{"alg":"EdDSA","typ":"JWT","kid":"bench"}' | b64url).$(printf \
        '{"iss":"https://idp.bench.example","aud":"govgate","sub":"svc-bench","iat":%d,"exp":%d}' \
        "$JWT_NOW" $((JWT_NOW + 3600)) | b64url)"
    printf '%s' "$JWT_SIGNED" >"$WORK/jwt/signed"
    JWT_SIGNATURE=$(openssl pkeyutl -sign -inkey "$WORK/jwt/issuer.key" -rawin -in "$WORK/jwt/signed" | b64url) ||
        die "cannot sign the JWT (openssl pkeyutl -rawin)"
    AUTH_HEADER="Authorization: Bearer $JWT_SIGNED.$JWT_SIGNATURE"
    WRK_HEADERS=(-H "$AUTH_HEADER")
    JWT_CONFIG=$(printf '\n[auth.jwt]\nissuer = "https://idp.bench.example"\naudience = "govgate"\nalgorithms = ["EdDSA"]\njwks_file = "%s"\nrequired = true\n' \
        "$WORK/jwt/jwks.json")
fi

if [[ $NEW_CONNECTION == 1 ]]; then WRK_HEADERS+=(-H "Connection: close"); fi

# ---- start the servers ----

WAIT_PATH=/
start_nginx upstream ok_upstream_conf
UPSTREAM_PORT=$NGINX_PORT

WAIT_PATH=/m/
if [[ $TLS == 1 ]]; then
    # Ports about to be tried are TLS: http_get (readiness) speaks TLS to them.
    TLS_PORTS=any
fi
start_nginx nginx proxy_conf
PROXY_PORT=$NGINX_PORT
if [[ $TLS == 1 ]]; then TLS_PORTS="$PROXY_PORT"; fi
NGINX_PID=${PIDS[-1]}

write_govgate_config bench.govgate.example/load
govgate_version_section "$UPSTREAM_PORT" >>"$WORK/govgate/govgate.toml"
if [[ $POLICIES == 1 ]]; then
    printf '\n[review]\npolicies_dir = "%s"\n' "$ROOT/policies" >>"$WORK/govgate/govgate.toml"
    POLICY_NOTE="shipped policies (both stages, 5 % flag sample)"
elif [[ $POLICIES != 0 ]]; then
    POLICIES=$(cd "$POLICIES" && pwd)
    printf '\n[review]\npolicies_dir = "%s"\n' "$POLICIES" >>"$WORK/govgate/govgate.toml"
    POLICY_NOTE="policies of $POLICIES"
else
    POLICY_NOTE="no policies"
fi
if [[ $STREAM == 1 ]]; then
    printf '\n[limits]\nmax_buffered_response_bytes = 1\n' >>"$WORK/govgate/govgate.toml"
    POLICY_NOTE="$POLICY_NOTE, every answer streamed (two ledger entries each)"
fi
if [[ $TLS == 1 ]]; then POLICY_NOTE="$POLICY_NOTE, TLS 1.3 on nginx and govgate (keep-alive)"; fi
if [[ $NEW_CONNECTION == 1 ]]; then POLICY_NOTE="$POLICY_NOTE, a new connection for every request"; fi
if [[ $JWT == 1 ]]; then
    printf '%s\n' "$JWT_CONFIG" >>"$WORK/govgate/govgate.toml"
    POLICY_NOTE="$POLICY_NOTE, a JWT bearer token on every request (one token, EdDSA), checked by govgate"
fi
start_govgate /m/

TARGETS=(direct nginx govgate)
declare -A URL=(
    [direct]="http://127.0.0.1:$UPSTREAM_PORT/"
    [nginx]="$SCHEME://127.0.0.1:$PROXY_PORT/m/"
    [govgate]="$SCHEME://127.0.0.1:$GOVGATE_PORT/m/"
)
# The proxy's own process group, for its CPU and context switches per request.
declare -A GROUP=([direct]="" [nginx]="$NGINX_PID" [govgate]="$GOVGATE_PID")

echo "load: upstream :$UPSTREAM_PORT, nginx :$PROXY_PORT, govgate :$GOVGATE_PORT; $PIN_NOTE" >&2

# ---- 1. saturation ----

for target in "${TARGETS[@]}"; do
    echo "load: $target: saturation (${WARMUP}s warm-up, ${SECONDS_PER_RUN}s)..." >&2
    if ((WARMUP > 0)); then run_wrk "$target warm-up" "${URL[$target]}" "$WARMUP" >/dev/null; fi
    record "sat.$target" "$(run_wrk "$target saturation" "${URL[$target]}" "$SECONDS_PER_RUN")"
done

# ---- 2. fixed rate: half of govgate's saturation ----

# The cumulative buckets of govgate's own govgate_gateway_added_seconds
# histogram (route "http") as "le count" lines; nothing when the scrape
# fails (the figure is then "n/a", the benchmark goes on).
added_buckets() {
    { curl -sf "$GOVGATE_ADMIN/metrics" || true; } |
        awk '/^govgate_gateway_added_seconds_bucket\{route="http",le="/ {
            match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $NF }'
}
# added_quantile Q BEFORE AFTER: the Q quantile of the requests between
# the two bucket snapshots, interpolated within its bucket as PromQL's
# histogram_quantile does; in microseconds.
added_quantile() {
    if [[ -z $2 || -z $3 ]]; then
        echo "n/a"
        return
    fi
    paste -d' ' <(echo "$2") <(echo "$3") | awk -v q="$1" '
        { le[NR] = $1; n[NR] = $4 - $2 }
        END {
            if (NR == 0 || n[NR] <= 0) { print "n/a"; exit }
            rank = q * n[NR]; low = 0; below = 0
            for (i = 1; i <= NR; i++) {
                if (n[i] >= rank) {
                    if (le[i] == "+Inf") { printf "over %d us", low * 1e6; exit }
                    printf "%d us", (low + (le[i] - low) * (rank - below) / (n[i] - below)) * 1e6; exit
                }
                low = le[i]; below = n[i]
            }
        }'
}

RATE=${BENCH_RATE:-$(awk -v r="${R[sat.govgate.rps]}" 'BEGIN { printf "%d", r / 2 }')}
is_uint "$RATE" || die "BENCH_RATE must be a positive integer"
((RATE > 0)) || die "govgate served nothing at saturation"
RATE_NOTE="half of govgate's saturation"
if [[ -n ${BENCH_RATE:-} ]]; then RATE_NOTE="BENCH_RATE"; fi
for target in "${TARGETS[@]}"; do
    echo "load: $target: fixed rate $RATE req/s (${SECONDS_PER_RUN}s)..." >&2
    if [[ $target == govgate ]]; then ADDED_BEFORE=$(added_buckets); fi
    record "rate.$target" "$(run_wrk "$target fixed rate" "${URL[$target]}" "$SECONDS_PER_RUN" "$RATE" "${GROUP[$target]}")"
    if [[ $target == govgate ]]; then ADDED_AFTER=$(added_buckets); fi
done
ADDED_NOTE="p50 $(added_quantile 0.5 "$ADDED_BEFORE" "$ADDED_AFTER"), p99 $(added_quantile 0.99 "$ADDED_BEFORE" "$ADDED_AFTER")"

# ---- 2b. optional: govgate again while a verification or an export runs ----

DURING_NOTE=""
DURING_WARNINGS=()
# bench-ops holds the admin role (lib/shared.sh), which may verify and export.
EXPORT_PID=""
case $DURING in
verify)
    DURING_WHAT="a full verification"
    start_operation() {
        curl -sf -X POST -H "Authorization: Bearer bench-ops" "$GOVGATE_ADMIN/admin/ledger/verify" >/dev/null ||
            die "POST /admin/ledger/verify failed"
    }
    still_running() {
        curl -sf -H "Authorization: Bearer bench-ops" "$GOVGATE_ADMIN/admin/ledger/verification" |
            grep -q '"running":{'
    }
    end_operation() { :; }
    ;;
export)
    DURING_WHAT="an online export"
    # One export at a time: the previous one is waited for first.
    start_operation() {
        end_operation
        curl -sf -H "Authorization: Bearer bench-ops" -o "$WORK/export.tar" \
            "$GOVGATE_ADMIN/admin/ledger/export?payloads=true" &
        EXPORT_PID=$!
    }
    still_running() { [[ -n $EXPORT_PID ]] && kill -0 "$EXPORT_PID" 2>/dev/null; }
    end_operation() {
        if [[ -n $EXPORT_PID ]]; then
            wait "$EXPORT_PID" || DURING_WARNINGS+=("an online export failed (curl exit $?)")
            EXPORT_PID=""
        fi
    }
    ;;
esac
if [[ -n $DURING ]]; then
    echo "load: govgate: saturation while $DURING_WHAT runs (${SECONDS_PER_RUN}s)..." >&2
    start_operation
    record "satv.govgate" "$(run_wrk "govgate saturation, during $DURING" "${URL[govgate]}" "$SECONDS_PER_RUN")"
    still_running || DURING_WARNINGS+=("$DURING_WHAT ended before the saturation run did (a small ledger): the ratio understates its cost")
    echo "load: govgate: fixed rate $RATE req/s while $DURING_WHAT runs (${SECONDS_PER_RUN}s)..." >&2
    start_operation
    record "ratev.govgate" "$(run_wrk "govgate fixed rate, during $DURING" "${URL[govgate]}" "$SECONDS_PER_RUN" "$RATE" "${GROUP[govgate]}")"
    still_running || DURING_WARNINGS+=("$DURING_WHAT ended before the fixed-rate run did (a small ledger): the ratio understates its cost")
    end_operation
    DURING_NOTE=$(awk -v s0="${R[sat.govgate.rps]}" -v s1="${R[satv.govgate.rps]}" \
        -v p0="${R[rate.govgate.p99_us]}" -v p1="${R[ratev.govgate.p99_us]}" -v what="$DURING_WHAT" 'BEGIN {
            printf "during %s: saturation throughput %.2f x (target >= 0.9), ", what, (s0 > 0 ? s1 / s0 : 0)
            printf "p99 at the fixed rate %.2f x (target <= 1.5)", (p0 > 0 ? p1 / p0 : 0) }')
    for key in satv.govgate ratev.govgate; do
        if ((R[$key.errors] > 0)); then
            DURING_WARNINGS+=("$key had ${R[$key.errors]} errors (see bench-out/load.log)")
        fi
    done
fi

# ---- 3. optional profile (not part of the figures above) ----

PROFILE_OUT=""
if [[ ${BENCH_PROFILE:-0} == 1 ]]; then
    command -v perf >/dev/null || die "BENCH_PROFILE=1 needs perf (Debian: linux-perf)"
    echo "load: govgate: fixed rate $RATE req/s under perf record (${SECONDS_PER_RUN}s)..." >&2
    # System-wide, then filtered to the gateway: `perf record -p` loses
    # the threads a store starts and ends during the run, and with them
    # the whole recording.
    perf record -q -F 999 -g -a -o "$WORK/perf.data" -- sleep "$SECONDS_PER_RUN" \
        >/dev/null 2>&1 &
    PERF_PID=$!
    run_wrk "govgate profiled" "${URL[govgate]}" "$SECONDS_PER_RUN" "$RATE" >/dev/null
    wait "$PERF_PID" || true
    PROFILE_OUT="$WORK/profile.txt"
    {
        echo "# govgate at $RATE req/s: perf record -F 999 -g -a, samples of the gateway's process;"
        echo "# percentages are of every sample on the machine (all CPUs)"
        echo
        echo "## by thread (self time)"
        # sed, not head: reading everything spares the pipe a SIGPIPE.
        { perf report -i "$WORK/perf.data" --pid "$GOVGATE_PID" --no-children --sort comm --stdio -g none 2>/dev/null || true; } |
            sed -n '/^#/d; /^$/d; 1,40p'
        echo
        echo "## by symbol (self time)"
        { perf report -i "$WORK/perf.data" --pid "$GOVGATE_PID" --no-children --sort sym --stdio -g none 2>/dev/null || true; } |
            sed -n '/^#/d; /^$/d; 1,120p'
    } >"$PROFILE_OUT"
fi

# ---- report ----

MAX_OTHER=0
for key in sat.direct sat.nginx sat.govgate rate.direct rate.nginx rate.govgate; do
    if ((R[$key.other_pct] > MAX_OTHER)); then MAX_OTHER=${R[$key.other_pct]}; fi
done
GOVGATE_TASKS=("/proc/$GOVGATE_PID/task"/*)
GOVGATE_THREADS=${#GOVGATE_TASKS[@]}
LEDGER_SIZE=$(du -sh "$WORK/govgate/data" 2>/dev/null | cut -f1 || true)
GOVGATE_WARNINGS=$(grep -c . "$WORK/govgate/stderr.log" || true)

# us VALUE: microseconds, shown as "us" below 10 ms and as "ms" above.
us() { awk -v v="$1" 'BEGIN { if (v < 10000) printf "%d us", v; else printf "%.1f ms", v / 1000 }'; }
# plus_us A B: A - B, signed, in microseconds.
plus_us() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+d us", a - b }'; }
rps() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
# per_request TOTAL REQUESTS SCALE FORMAT: TOTAL x SCALE / REQUESTS.
per_request() {
    awk -v t="$1" -v n="$2" -v f="$4" "BEGIN { if (n > 0) printf f, t * $3 / n; else print \"n/a\" }"
}

RATIO=$(awk -v g="${R[sat.govgate.rps]}" -v n="${R[sat.nginx.rps]}" 'BEGIN { printf "%.2f", g / n }')
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    REVISION="$REVISION (modified)"
fi
if [[ -n ${BENCH_BIN:-} ]]; then REVISION="binary $BENCH_BIN"; fi

SAT_ROWS=()
for target in "${TARGETS[@]}"; do
    SAT_ROWS+=("$target|$(rps "${R[sat.$target.rps]}")|$(us "${R[sat.$target.p50_us]}")|$(us "${R[sat.$target.p99_us]}")|${R[sat.$target.server_pct]}%|${R[sat.$target.errors]}")
done
RATE_ROWS=()
for target in "${TARGETS[@]}"; do
    if [[ $target == direct ]]; then
        add50="-"
        add99="-"
    else
        add50=$(plus_us "${R[rate.$target.p50_us]}" "${R[rate.direct.p50_us]}")
        add99=$(plus_us "${R[rate.$target.p99_us]}" "${R[rate.direct.p99_us]}")
    fi
    if [[ $target == direct ]]; then
        cpu_per="-"
        switches_per="-"
    else
        cpu_per=$(per_request "${R[rate.$target.proxy_ticks]}" "${R[rate.$target.requests]}" "1e6 / $CLOCK_TICKS" "%.0f us")
        switches_per=$(per_request "${R[rate.$target.proxy_switches]}" "${R[rate.$target.requests]}" 1 "%.2f")
    fi
    RATE_ROWS+=("$target|$(rps "${R[rate.$target.rps]}")|$(us "${R[rate.$target.p50_us]}")|$(us "${R[rate.$target.p99_us]}")|$add50|$add99|${R[rate.$target.server_pct]}%|$cpu_per|$switches_per|${R[rate.$target.errors]}")
done

WARNINGS=()
# The kernel's own share (network softirq work not charged to a process)
# is a few percent.
if ((MAX_OTHER > 15)); then
    WARNINGS+=("other processes used up to $MAX_OTHER% of one CPU during the runs: figures are disturbed")
fi
# Any error response or socket error makes the figures suspect.
for key in sat.direct sat.nginx sat.govgate rate.direct rate.nginx rate.govgate; do
    if ((R[$key.errors] > 0)); then
        WARNINGS+=("$key had ${R[$key.errors]} errors (see bench-out/load.log)")
    fi
done

WARNINGS+=("${DURING_WARNINGS[@]}")

NOTES=(
    "date: $(date -u '+%Y-%m-%d %H:%M UTC'), govgate $REVISION"
    "machine: $NCPU CPUs ($CPU_MODEL), $(uname -sr)"
    "pinning: $PIN_NOTE"
    "other processes during the measured runs: at most $MAX_OTHER% of one CPU"
    "load: wrk $WRK_VERSION -t$WRK_THREADS -c$CONNECTIONS -d${SECONDS_PER_RUN}s (saturation after ${WARMUP}s warm-up)"
    "upstream: nginx $NGINX_VERSION, 1 worker, return 200 {\"ok\":true}; proxy nginx: $PROXY_WORKERS worker(s), keepalive pool, HTTP/1.1, access_log off"
    "govgate: release build, GOVGATE_LOG=warn, $GOVGATE_THREADS threads, $POLICY_NOTE, ledger store $LEDGER_SIZE at the end, $GOVGATE_WARNINGS log lines"
    "server CPU: upstream and proxy together, in % of one CPU; p50/p99 as measured by wrk"
    "proxy CPU/req: the proxy's own CPU time (user + system, /proc/PID/stat of its process group) over the requests served at the fixed rate; switches/req: its threads' context switches (voluntary and involuntary, /proc/PID/task/*/status) per request"
    "govgate's own view at the fixed rate (govgate_gateway_added_seconds: request to release, less the time waiting on the upstream): $ADDED_NOTE"
)
if [[ -n $DURING_NOTE ]]; then NOTES+=("$DURING_NOTE"); fi



SAT_HEADER="target|req/s|p50|p99|server CPU|errors"
RATE_HEADER="target|req/s|p50|p99|added p50|added p99|server CPU|proxy CPU/req|switches/req|errors"

{
    echo
    echo "Saturation (wrk -c$CONNECTIONS, ${SECONDS_PER_RUN}s)"
    table "$SAT_HEADER" "${SAT_ROWS[@]}"
    echo "govgate / nginx throughput: $RATIO"
    echo
    echo "Fixed rate $RATE req/s ($RATE_NOTE), added latency vs direct"
    table "$RATE_HEADER" "${RATE_ROWS[@]}"
    echo
    printf '%s\n' "${NOTES[@]}"
    if ((${#WARNINGS[@]})); then printf 'WARNING: %s\n' "${WARNINGS[@]}"; fi
}

OUT_DIR="$ROOT/bench-out"
mkdir -p "$OUT_DIR"
{
    echo "### Load benchmark (benches/load.sh)"
    echo
    echo "Saturation (wrk -c$CONNECTIONS, ${SECONDS_PER_RUN}s):"
    echo
    md_table "$SAT_HEADER" "${SAT_ROWS[@]}"
    echo
    echo "govgate / nginx throughput: **$RATIO**"
    echo
    echo "Fixed rate $RATE req/s ($RATE_NOTE); added latency is the difference to direct at the same rate:"
    echo
    md_table "$RATE_HEADER" "${RATE_ROWS[@]}"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
    if ((${#WARNINGS[@]})); then printf -- '- **warning**: %s\n' "${WARNINGS[@]}"; fi
} >"$OUT_DIR/load.md"
cp "$LOG" "$OUT_DIR/load.log"
if [[ -n $PROFILE_OUT ]]; then cp "$PROFILE_OUT" "$OUT_DIR/load-profile.txt"; fi
echo "written: bench-out/load.md, bench-out/load.log" >&2

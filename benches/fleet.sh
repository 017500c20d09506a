#!/usr/bin/env bash
# Fleet benchmark (`[cluster]` on PostgreSQL), two measurements in one run:
#
#   1. the request path with `[cluster]` on versus off: two gateways with
#      the same configuration but for `[cluster]`, each in front of the
#      same upstream (nginx answering 200 {"ok":true}); wrk saturation
#      runs alternate between them ($BENCH_ROUNDS each), and the ratio of
#      their mean throughputs is reported, with each round's ratio and
#      their median (target >= 0.95 x: the database is off the request
#      path);
#   2. control-event propagation across three replicas: the clustered
#      gateway and two more replicas; $BENCH_PROPAGATION versions are
#      proposed, in turn through each replica's admin API, and the others
#      are read until they show each one (benches/fleet/propagation.py):
#      p50, p99 and max of the latency from the proposing call's answer
#      to the first read that shows it.
#
# PostgreSQL (Debian: postgresql) runs as a throwaway cluster in the work
# directory, on a Unix socket only; as root it runs as `nobody`.
#
# Usage: benches/fleet.sh            (from anywhere in the repository)
#
# Environment:
#   BENCH_SECONDS       measured seconds per wrk run              (default 10)
#   BENCH_ROUNDS        wrk runs per gateway, alternating          (default 3)
#   BENCH_CONNECTIONS   wrk connections                            (default 64)
#   BENCH_PROPAGATION   proposals for the propagation run          (default 100)
#   BENCH_PIN, BENCH_BUILD, BENCH_BIN   as in benches/load.sh
#
# Output: a table on stdout, the same as markdown in bench-out/fleet.md.

set -Eeuo pipefail
trap 'echo "fleet.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
PROPAGATION=${BENCH_PROPAGATION:-100}
SCRIPT=fleet.sh

die() {
    echo "fleet.sh: $*" >&2
    exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/lib/shared.sh
source "$HERE/lib/shared.sh"
# shellcheck source=benches/lib/nginx.sh
source "$HERE/lib/nginx.sh"

for value in "$SECONDS_PER_RUN" "$ROUNDS" "$CONNECTIONS" "$PROPAGATION"; do
    if ! is_uint "$value" || ((value == 0)); then
        die "BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS and BENCH_PROPAGATION must be positive integers"
    fi
done

ROOT=$(cd "$HERE/.." && pwd)
require_tools timeout setsid awk curl wrk python3
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x ${PG_BIN:-}/initdb ]] || PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
[[ -x $PG_BIN/initdb ]] || die "PostgreSQL not found (Debian: apt-get install -y postgresql)"

set_pinning "upstream, PostgreSQL and the gateways"
build_release "$ROOT"

BASE=$(mktemp -d "${TMPDIR:-/tmp}/govgate-fleet.XXXXXX")
chmod 755 "$BASE"
WORK=$BASE
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_group "$pid"; done
    as_postgres "$PG_BIN/pg_ctl" -D "$BASE/pg/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- PostgreSQL ----

if [[ $(id -u) == 0 ]]; then
    as_postgres() { runuser -u nobody -- "$@"; }
else
    as_postgres() { "$@"; }
fi
mkdir -p "$BASE/pg"
[[ $(id -u) == 0 ]] && chown nobody "$BASE/pg"
as_postgres "$PG_BIN/initdb" -D "$BASE/pg/data" -U govgate --auth=trust --no-sync -E UTF8 >"$BASE/pg/initdb.log"
as_postgres "${PIN_SERVER[@]}" "$PG_BIN/pg_ctl" -D "$BASE/pg/data" -l "$BASE/pg/server.log" \
    -o "-c listen_addresses='' -k $BASE/pg" -w start >/dev/null
echo "host=$BASE/pg user=govgate dbname=postgres" >"$BASE/cluster.url"

# ---- upstream and gateways ----

WAIT_PATH=/
start_nginx upstream ok_upstream_conf
UPSTREAM_PORT=$NGINX_PORT

# gateway NAME [REPLICA_ID]: a gateway in $BASE/NAME, with `[cluster]`
# when REPLICA_ID is given; sets PORT[NAME], ADMIN[NAME], GROUP[NAME].
declare -A PORT ADMIN GROUP
gateway() {
    local name=$1 replica=${2:-}
    WORK=$BASE/$name
    write_govgate_config bench.govgate.example/fleet
    govgate_version_section "$UPSTREAM_PORT" >>"$WORK/govgate/govgate.toml"
    if [[ -n $replica ]]; then
        printf '\n[cluster]\nurl = { file = "%s" }\nreplica_id = "%s"\n' "$BASE/cluster.url" "$replica" \
            >>"$WORK/govgate/govgate.toml"
    fi
    start_govgate /m/
    PORT[$name]=$GOVGATE_PORT
    ADMIN[$name]=$GOVGATE_ADMIN
    GROUP[$name]=$GOVGATE_PID
    WORK=$BASE
}
gateway off
gateway on gw-1
echo "fleet: upstream :$UPSTREAM_PORT, off :${PORT[off]}, on :${PORT[on]}; $PIN_NOTE" >&2

# ---- 1. [cluster] on versus off ----

# saturation NAME: requests/s of one wrk run.
saturation() {
    local out
    out=$(timeout $((SECONDS_PER_RUN + 30)) "${PIN_LOAD[@]}" \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --timeout 5s \
        "http://127.0.0.1:${PORT[$1]}/m/") || die "wrk failed ($1)"
    grep -q 'Non-2xx' <<<"$out" && { echo "$out" >&2; die "$1 answered errors"; }
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

declare -A SUM=([off]=0 [on]=0)
declare -A ROUND_RPS=()
RUNS=()
PAIRED=()
for ((round = 1; round <= ROUNDS; round++)); do
    # Which goes first alternates, so that neither always runs warmer.
    order=(off on)
    ((round % 2 == 0)) && order=(on off)
    for name in "${order[@]}"; do
        # A short warm-up, unmeasured.
        timeout 30 "${PIN_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s \
            "http://127.0.0.1:${PORT[$name]}/m/" >/dev/null
        rps=$(saturation "$name")
        RUNS+=("$name $round $rps")
        SUM[$name]=$(awk -v a="${SUM[$name]}" -v b="$rps" 'BEGIN { print a + b }')
        ROUND_RPS[$name]=$rps
        echo "fleet: [cluster] $name, round $round: $rps req/s" >&2
    done
    # The two runs of one round are next to each other in time: their
    # ratio is disturbed less by what else the machine does that minute.
    PAIRED+=("$(awk -v a="${ROUND_RPS[on]}" -v b="${ROUND_RPS[off]}" 'BEGIN { printf "%.3f", a / b }')")
done
PAIRED_MEDIAN=$(printf '%s\n' "${PAIRED[@]}" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
MEAN_OFF=$(awk -v s="${SUM[off]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
MEAN_ON=$(awk -v s="${SUM[on]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
RATIO=$(awk -v a="$MEAN_ON" -v b="$MEAN_OFF" 'BEGIN { printf "%.3f", a / b }')

# ---- 2. propagation across three replicas ----

gateway r2 gw-2
gateway r3 gw-3
PROPAGATED=$("${PIN_LOAD[@]}" python3 "$HERE/fleet/propagation.py" "$PROPAGATION" bench \
    "http://127.0.0.1:$UPSTREAM_PORT" bench-ops "${ADMIN[on]}" "${ADMIN[r2]}" "${ADMIN[r3]}")
echo "fleet: $PROPAGATED" >&2
read -r P50 P99 PMAX < <(sed 's/.*p50_ms=\([^ ]*\) p99_ms=\([^ ]*\) max_ms=\([^ ]*\).*/\1 \2 \3/' <<<"$PROPAGATED")
PN=$(sed 's/.*n=\([0-9]*\).*/\1/' <<<"$PROPAGATED")

# ---- report ----

mkdir -p "$ROOT/bench-out"
{
    echo "fleet.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs ($PIN_NOTE), wrk -c$CONNECTIONS, ${SECONDS_PER_RUN}s x $ROUNDS rounds"
    echo
    md_table "case|value" \
        "[cluster] off: mean req/s|$MEAN_OFF" \
        "[cluster] on: mean req/s|$MEAN_ON" \
        "on / off (means)|$RATIO" \
        "on / off (median of the rounds' ratios)|$PAIRED_MEDIAN" \
        "propagation p50 (ms), $PN reads|$P50" \
        "propagation p99 (ms)|$P99" \
        "propagation max (ms)|$PMAX"
    echo
    echo "runs (gateway, round, req/s): ${RUNS[*]}"
    echo "on / off per round: ${PAIRED[*]}"
} | tee "$ROOT/bench-out/fleet.md"

#!/usr/bin/env bash
# The console's own cost: how long its pages take to answer with a ledger
# of $BENCH_ENTRIES decisions (with payloads), against /healthz on the same
# listener as the baseline measured in the same run.
#
#   1. examples/fill_ledger.rs writes the ledger (skipped when BENCH_DIR
#      already holds one: a ledger is reused);
#   2. the release gateway serves it (an admin token added to a copy of
#      its config), a person signs in to the console;
#   3. each page is fetched BENCH_ROUNDS times with curl, the pages taking
#      turns; the median and the slowest time per page are reported, and
#      the median's ratio to /healthz's.
#
# Pages: the overview, the models, a version, a decision with its
# receipt, a ledger entry, the decision search over a time range in the
# middle of the log with a filter every decision matches (a page of 50
# from the newest block) and one no decision matches (the most a page
# reads: 20 000 entries), the newest decisions of the model, the model's
# KPI page over the last 7 days (no snapshot in the ledger, so it reads
# the most it may: 20 000 entries).
#
# Usage: benches/console_pages.sh      (from anywhere in the repository)
#
# Environment:
#   BENCH_ENTRIES   decisions in the ledger it writes     (default 1000000)
#   BENCH_DIR       the gateway directory of the ledger: written when it
#                   does not exist, reused when it holds govgate.toml
#                   (default: a new directory under target/, removed after)
#   BENCH_ROUNDS    fetches per page                       (default 20)
#   BENCH_BUILD     0: do not run `cargo build` first
#   BENCH_BIN       the govgate binary to measure (default: the release
#                   build of this repository)
#
# Needs curl. The ledger takes about 2.1 KB of disk per entry.
set -euo pipefail

die() {
    echo "console_pages.sh: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENTRIES=${BENCH_ENTRIES:-1000000}
ROUNDS=${BENCH_ROUNDS:-20}
[[ $ENTRIES =~ ^[1-9][0-9]*$ ]] || die "BENCH_ENTRIES=$ENTRIES: a positive number"
command -v curl >/dev/null || die "needs curl"
DIR=${BENCH_DIR:-$ROOT/target/console-pages-$$}
cd "$ROOT"
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    cargo build --release --bin govgate --example fill_ledger
fi
BIN=${BENCH_BIN:-$ROOT/target/release/govgate}
FILL="$ROOT/target/release/examples/fill_ledger"
[[ -x $BIN ]] || die "no govgate binary at $BIN: run without BENCH_BUILD=0"
if [[ -e $DIR ]]; then
    [[ -f $DIR/govgate.toml ]] || die "$DIR exists but holds no govgate.toml"
    echo "console_pages.sh: reusing the ledger in $DIR" >&2
else
    [[ -x $FILL ]] || die "no release build of fill_ledger: run without BENCH_BUILD=0"
    [[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$DIR"' EXIT
    echo "console_pages.sh: writing $ENTRIES entries into $DIR" >&2
    "$FILL" "$DIR" "$ENTRIES"
fi

# A copy of the ledger's config with one admin token for the run.
token="console-bench-$$-$RANDOM"
hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
config="$DIR/console-bench.toml"
# The model gets KPIs, so its KPI page can be asked for: the ledger holds
# no snapshot, so the page reads as far back as it may (its bound).
{
    cat "$DIR/govgate.toml"
    printf '[models.kpi]\nwindow = 1000\n[models.kpi.outcome]\npointer = "/outputs/0/data/*"\nthreshold = 0.5\n'
    printf '[[models.kpi.attributes]]\nname = "region"\npointer = "/inputs/0/data/*"\n'
    printf '\n[[admin.tokens]]\nprincipal = "bench-auditor"\nroles = ["auditor", "admin"]\ntoken_sha256 = "%s"\n' "$hash"
} >"$config"
out=$(mktemp)
err=$(mktemp)
"$BIN" serve --config "$config" >"$out" 2>"$err" &
gateway=$!
cleanup() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    rm -f "$out" "$err" "$config" "${jar:-}"
}
trap 'cleanup; [[ -n ${BENCH_DIR:-} ]] || rm -rf "$DIR"' EXIT
for _ in $(seq 600); do
    grep -q 'admin=' "$out" && break
    kill -0 "$gateway" 2>/dev/null || die "the gateway stopped: $(tail -5 "$err")"
    sleep 0.1
done
admin=$(grep -o 'admin=[^ ]*' "$out" | head -1 | cut -d= -f2-)
[[ -n $admin ]] || die "no ready line: $(tail -5 "$err")"

jar=$(mktemp)
status=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" -X POST \
    --data-urlencode "token=$token" "$admin/console/sign-in")
[[ $status == 303 ]] || die "sign-in answered $status"

size=$(curl -s -b "$jar" "$admin/ledger/checkpoint" | sed -n 2p)
middle=$((size / 2))
entry=$(curl -s "$admin/ledger/entries?from=$middle&count=1")
time=$(grep -o '"time":"[^"]*"' <<<"$entry" | cut -d'"' -f4)
id=$(grep -o '"decision_id":"[^"]*"' <<<"$entry" | cut -d'"' -f4)
[[ -n $time && -n $id ]] || die "no decision at seq $middle"
# An hour around the middle entry's time (date(1) reads RFC 3339).
from=$(date -u -d "$time - 30 minutes" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "$time + 30 minutes" +%Y-%m-%dT%H:%M:%SZ)

names=(healthz overview models version decision entry search-all search-none newest kpis)
urls=(
    "$admin/healthz"
    "$admin/console/"
    "$admin/console/models"
    "$admin/console/models/credit-scoring/versions/2"
    "$admin/console/decisions/$id"
    "$admin/console/ledger/$middle"
    "$admin/console/decisions?caller=svc-loan-origination&from=$from&to=$to"
    "$admin/console/decisions?caller=nobody&from=$from&to=$to"
    "$admin/console/decisions?model=credit-scoring"
    "$admin/console/kpis/credit-scoring"
)
declare -A times
for ((round = 0; round < ROUNDS; round++)); do
    for i in "${!urls[@]}"; do
        result=$(curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' "${urls[$i]}")
        [[ ${result%% *} == 200 ]] || die "${names[$i]} answered ${result%% *}"
        times[$i]+="${result#* } "
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
slowest() { tr ' ' '\n' | grep . | sort -g | tail -1; }
base=$(median <<<"${times[0]}")
echo
echo "console pages over $size entries (2 CPUs, $(date -u +%Y-%m-%d), $ROUNDS fetches each, load average $(cut -d' ' -f1 /proc/loadavg))"
echo
echo "| page | median | slowest | median / healthz |"
echo "| --- | --: | --: | --: |"
for i in "${!urls[@]}"; do
    m=$(median <<<"${times[$i]}")
    s=$(slowest <<<"${times[$i]}")
    awk -v n="${names[$i]}" -v m="$m" -v s="$s" -v b="$base" \
        'BEGIN { printf "| %s | %.1f ms | %.1f ms | %.1f |\n", n, m * 1000, s * 1000, m / b }'
done

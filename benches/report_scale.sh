#!/usr/bin/env bash
# Period report at scale: wall time, CPU time, peak resident memory and
# entries per second of `govgate report` over the whole log of a ledger of
# $BENCH_ENTRIES decisions with payloads, with the machine's load average
# during the run (others' work on the same cores slows it down: read the
# figure with the load next to it).
#
#   1. examples/fill_ledger.rs writes the ledger (skipped when BENCH_DIR
#      already holds one: a ledger is reused, since writing 10 M entries
#      takes far longer than reporting on them);
#   2. govgate report --from 2000-01-01T00:00:00Z --to 2100-01-01T00:00:00Z
#      under /usr/bin/time -v: the whole log verified while the period is
#      read, the report written and recorded (a report_issued entry is
#      appended to the ledger: each run adds one), the period's bundle
#      exported (zstd chunks).
#
# Usage: benches/report_scale.sh      (from anywhere in the repository)
#
# Environment:
#   BENCH_ENTRIES   decisions in the ledger it writes     (default 1000000)
#   BENCH_DIR       the gateway directory of the ledger: written when it
#                   does not exist, reused when it holds govgate.toml
#                   (default: a new directory under target/, removed after)
#   BENCH_BUILD     0: do not run `cargo build` first
#   BENCH_BIN       the govgate binary to measure (default: the release
#                   build of this repository)
#
# The ledger takes about 2.1 KB of disk per entry, the report's bundle
# about 0.1 KB (21 GB and 1 GB at 10 000 000); the script refuses to write
# a ledger when the file system has less free space than that.
set -euo pipefail

die() {
    echo "report_scale.sh: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENTRIES=${BENCH_ENTRIES:-1000000}
[[ $ENTRIES =~ ^[1-9][0-9]*$ ]] || die "BENCH_ENTRIES=$ENTRIES: a positive number"
[[ -x /usr/bin/time ]] || die "needs GNU time as /usr/bin/time (Debian: apt-get install -y time)"
DIR=${BENCH_DIR:-$ROOT/target/report-scale-$$}
cd "$ROOT"
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    cargo build --release --bin govgate --example fill_ledger
fi
BIN=${BENCH_BIN:-$ROOT/target/release/govgate}
FILL="$ROOT/target/release/examples/fill_ledger"
[[ -x $BIN ]] || die "no govgate binary at $BIN: run without BENCH_BUILD=0"

if [[ -e $DIR ]]; then
    [[ -f $DIR/govgate.toml ]] || die "$DIR exists but holds no govgate.toml"
    echo "report_scale.sh: reusing the ledger in $DIR" >&2
else
    [[ -x $FILL ]] || die "no release build of fill_ledger: run without BENCH_BUILD=0"
    parent=$(dirname "$DIR")
    [[ -d $parent ]] || die "$parent (where BENCH_DIR goes) does not exist"
    need_kb=$(( ENTRIES * 22 / 10 * 11 / 10 ))
    free_kb=$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')
    (( free_kb >= need_kb )) || die "$ENTRIES entries need about $(( need_kb / 1024 )) MB of disk, \
$parent has $(( free_kb / 1024 )) MB free"
    [[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$DIR"' EXIT
    echo "report_scale.sh: writing $ENTRIES entries into $DIR" >&2
    "$FILL" "$DIR" "$ENTRIES"
fi

out="$DIR/report-$(date -u +%Y%m%dT%H%M%SZ)-$$"
report=$(mktemp)
loads=$(mktemp)
# The 1-minute load average every 5 s while the report runs.
( while sleep 5; do cut -d' ' -f1 /proc/loadavg >>"$loads"; done ) &
sampler=$!
load_before=$(cut -d' ' -f1 /proc/loadavg)
status=0
/usr/bin/time -v -o "$report" "$BIN" report --config "$DIR/govgate.toml" \
    --from 2000-01-01T00:00:00Z --to 2100-01-01T00:00:00Z --out "$out" \
    >"$report.out" 2>"$report.err" || status=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
if ((status != 0)); then
    cat "$report.out" "$report.err" >&2
    die "govgate report failed"
fi
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$report")
seconds=$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s }' <<<"$wall")
user=$(sed -n 's/.*User time (seconds): //p' "$report")
system=$(sed -n 's/.*System time (seconds): //p' "$report")
cpu=$(awk -v u="$user" -v s="$system" 'BEGIN { printf "%.1f", u + s }')
rss=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$report") / 1024 ))
entries=$(sed -n 's/.*entries 0\.\.=\([0-9]*\).*/\1/p' "$report.out")
entries=$(( entries + 1 ))
rate=$(awk -v n="$entries" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
load=$(sort -n "$loads" | awk -v b="$load_before" 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR == 0) { lo = b; hi = b } printf "%s-%s", lo, hi }')
bundle_mb=$(du -sm "$out/bundle" | cut -f1)
rm -f "$report" "$report.out" "$report.err" "$loads"

echo
echo "govgate report over $entries entries ($(nproc) CPUs, $(date -u +%Y-%m-%d), load average $load_before at the start, $load during the run); bundle $bundle_mb MB"
echo
echo "| wall | CPU (user + system) | peak RSS | entries/s (wall) | load average |"
echo "| --: | --: | --: | --: | --: |"
echo "| $seconds s | $cpu s | $rss MB | $rate | $load |"

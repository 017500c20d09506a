#!/usr/bin/env bash
# Audit tools at scale: wall time and peak resident memory of the offline
# audit tools on a ledger of $BENCH_ENTRIES decisions with payloads.
#
#   1. examples/fill_ledger.rs writes the ledger through the real sequencer
#      (a signed checkpoint every 1024 entries; no HTTP, no upstream);
#   2. then, one after the other, each under /usr/bin/time -v:
#      - govgate verify --config (the store)
#      - govgate export --payloads (the whole log; chunked and compressed
#        with BENCH_CHUNK / BENCH_COMPRESS)
#      - govgate verify --bundle (Rust)
#      - tools/govgate_verify.py bundle (Python), and with --jobs $(nproc)
#        when there is more than one CPU
#
# Peak RSS is the maximum resident set size the kernel reports for the
# process (its threads included); for the Python verifier with --jobs, that
# of its largest process (the parent or one worker), not their sum. The ledger's disk size and the bundle's
# are reported too. Nothing is timed against a target here: the table is
# for reading, and for docs/performance.md.
#
# Usage: benches/audit_scale.sh      (from anywhere in the repository)
#
# Environment:
#   BENCH_ENTRIES   decisions in the ledger                 (default 1000000)
#   BENCH_DIR       where the ledger and bundle go; must not exist
#                   (default: a new directory under target/)
#   BENCH_KEEP      1: keep BENCH_DIR afterwards (default 0: removed)
#   BENCH_BUILD     0: do not run `cargo build` first
#   BENCH_PROFILE   release (default) or debug: which build to measure
#   BENCH_PYTHON    the interpreter for the Python verifier (default: the
#                   tests' virtual environment under target/, else python3);
#                   BENCH_PYTHON=none skips it
#   BENCH_CHUNK     export a chunked bundle (govgate-bundle/3) of at most
#                   this many entries a chunk (default: one-file bundle)
#   BENCH_COMPRESS  zstd, gzip or none: compress the chunks (implies
#                   BENCH_CHUNK=1000000 when that is not set)
#   BENCH_ERASED    1: every decision's payload is then erased as payload
#                   retention erases it (a payload_erased entry each, after
#                   the decisions), and the bundle covers the decisions
#                   only (--to BENCH_ENTRIES): its context.jsonl carries one
#                   line per erasure (default 0)
#
# The ledger takes about 2.1 KB of disk per entry and the bundle about
# 1.3 KB more uncompressed (about 2 GB and 1.3 GB at the default size, 21
# and 13 GB at 10 000 000); the script refuses to start when the file
# system of BENCH_DIR has less free space than that plus a tenth. Run it on
# a machine nobody else is measuring on.
set -euo pipefail

die() {
    echo "audit_scale.sh: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENTRIES=${BENCH_ENTRIES:-1000000}
PROFILE=${BENCH_PROFILE:-release}
[[ $ENTRIES =~ ^[1-9][0-9]*$ ]] || die "BENCH_ENTRIES=$ENTRIES: a positive number"
[[ $PROFILE == release || $PROFILE == debug ]] || die "BENCH_PROFILE=$PROFILE: release or debug"
[[ -x /usr/bin/time ]] || die "needs GNU time as /usr/bin/time (Debian: apt-get install -y time)"
CHUNK=${BENCH_CHUNK:-}
COMPRESS=${BENCH_COMPRESS:-}
[[ -z $CHUNK || $CHUNK =~ ^[1-9][0-9]*$ ]] || die "BENCH_CHUNK=$CHUNK: a positive number of entries"
[[ -z $COMPRESS || $COMPRESS =~ ^(zstd|gzip|none)$ ]] || die "BENCH_COMPRESS=$COMPRESS: zstd, gzip or none"
ERASED=${BENCH_ERASED:-0}
[[ $ERASED == 0 || $ERASED == 1 ]] || die "BENCH_ERASED=$ERASED: 0 or 1"
CHUNK_FLAGS=()
[[ -n $CHUNK ]] && CHUNK_FLAGS+=(--chunk-entries "$CHUNK")
[[ -n $COMPRESS ]] && CHUNK_FLAGS+=(--compress "$COMPRESS")

DIR=${BENCH_DIR:-$ROOT/target/audit-scale-$$}
[[ -e $DIR ]] && die "$DIR exists"
# Disk: about 2.1 KB per entry for the ledger and 1.3 KB for the bundle
# (uncompressed; a compressed one is smaller), and a tenth to spare.
parent=$(dirname "$DIR")
[[ -d $parent ]] || die "$parent (where BENCH_DIR goes) does not exist"
need_kb=$(( ENTRIES * (21 + 13) / 10 * 11 / 10 ))
free_kb=$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')
if (( free_kb < need_kb )); then
    die "$ENTRIES entries need about $(( need_kb / 1024 )) MB of disk (ledger and bundle), \
but $parent has $(( free_kb / 1024 )) MB free: set BENCH_DIR elsewhere or BENCH_ENTRIES lower"
fi
cd "$ROOT"
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    cargo build "${flag[@]}" --bin govgate --example fill_ledger
fi
BIN="$ROOT/target/$PROFILE/govgate"
FILL="$ROOT/target/$PROFILE/examples/fill_ledger"
[[ -x $BIN && -x $FILL ]] || die "no $PROFILE build of govgate and fill_ledger: run without BENCH_BUILD=0"

PYTHON=${BENCH_PYTHON:-}
if [[ -z $PYTHON ]]; then
    if [[ -x $ROOT/target/govgate-test-python/bin/python ]]; then
        PYTHON=$ROOT/target/govgate-test-python/bin/python
    else
        PYTHON=python3
    fi
fi

if [[ ${BENCH_KEEP:-0} != 1 ]]; then
    trap 'rm -rf "$DIR"' EXIT
fi

ROWS=()
# measure NAME COMMAND...: runs it under GNU time, adds a row
measure() {
    local name=$1 report
    shift
    report=$(mktemp)
    if ! /usr/bin/time -v -o "$report" "$@" >"$report.out" 2>"$report.err"; then
        cat "$report.out" "$report.err" >&2
        die "$name failed"
    fi
    local wall rss seconds rate
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$report")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$report")
    # h:mm:ss or m:ss(.ss) to seconds
    seconds=$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$wall")
    rate=$(awk -v n="$ENTRIES" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    ROWS+=("$name|$seconds s|$((rss / 1024)) MB|$rate")
    echo "  $name: ${seconds} s, peak RSS $((rss / 1024)) MB" >&2
    rm -f "$report" "$report.out" "$report.err"
}

echo "audit_scale.sh: $ENTRIES entries ($PROFILE build) in $DIR" >&2
FILL_FLAGS=()
RANGE_FLAGS=()
if [[ $ERASED == 1 ]]; then
    FILL_FLAGS=(--erased)
    RANGE_FLAGS=(--to "$ENTRIES")
fi
measure "fill (fill_ledger example)" "$FILL" "$DIR" "$ENTRIES" "${FILL_FLAGS[@]}"
measure "govgate verify --config (store)" \
    "$BIN" verify --quiet --config "$DIR/govgate.toml"
export_name="govgate export --payloads"
((${#CHUNK_FLAGS[@]} + ${#RANGE_FLAGS[@]})) && export_name+=" ${RANGE_FLAGS[*]} ${CHUNK_FLAGS[*]}"
measure "$export_name" \
    "$BIN" export --quiet --payloads "${RANGE_FLAGS[@]}" "${CHUNK_FLAGS[@]}" --config "$DIR/govgate.toml" --out "$DIR/bundle"
measure "govgate verify --bundle" \
    "$BIN" verify --bundle "$DIR/bundle" --vkey "@$DIR/govgate.vkey"
if [[ $PYTHON != none ]]; then
    measure "tools/govgate_verify.py bundle" \
        "$PYTHON" "$ROOT/tools/govgate_verify.py" bundle --vkey "@$DIR/govgate.vkey" "$DIR/bundle"
    jobs=$(nproc)
    if ((jobs > 1)); then
        measure "tools/govgate_verify.py bundle --jobs $jobs" \
            "$PYTHON" "$ROOT/tools/govgate_verify.py" bundle --jobs "$jobs" --vkey "@$DIR/govgate.vkey" "$DIR/bundle"
    fi
fi

ledger_mb=$(du -sm "$DIR/data/ledger" | cut -f1)
bundle_mb=$(du -sm "$DIR/bundle" | cut -f1)
form=$(sed -n 's/.*"format": *"\([^"]*\)".*/\1/p' "$DIR/bundle/manifest.json" | head -1)
compression=$(sed -n 's/.*"compression": *"\([^"]*\)".*/\1/p' "$DIR/bundle/manifest.json" | head -1)
# A one-file bundle has no chunks/ (find fails, which pipefail would pass on).
chunks=$( (find "$DIR/bundle/chunks" -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true) | wc -l)
about="$form"
[[ -n $compression ]] && about+=", $chunks chunks, compression $compression"
[[ $ERASED == 1 ]] && about+=", the decisions' payloads erased after them: $(wc -l <"$DIR/bundle/context.jsonl") context lines"
echo
echo "$ENTRIES entries with payloads; ledger $ledger_mb MB on disk, bundle $bundle_mb MB on disk ($about); $(nproc) CPUs"
echo
header="tool|wall|peak RSS|entries/s"
echo "| ${header//|/ | } |"
echo "| --- | --: | --: | --: |"
for row in "${ROWS[@]}"; do
    echo "| ${row//|/ | } |"
done

# Shell functions shared by the benchmark scripts (sourced, not run).
# The sourcing script defines `die MESSAGE` first.

# shellcheck shell=bash

declare -A TAKEN_PORTS=()

# CPUs this process may run on, one per line.
allowed_cpus() {
    local list range
    if command -v taskset >/dev/null; then
        list=$(taskset -cp $$ | sed 's/.*: *//')
    else
        list="0-$(($(nproc) - 1))"
    fi
    for range in ${list//,/ }; do
        if [[ $range == *-* ]]; then
            seq "${range%-*}" "${range#*-}"
        else
            echo "$range"
        fi
    done
}

stop_group() {
    # Every server is started with setsid: its pid is also its process
    # group, which holds nginx's workers too.
    local pid=$1 i state
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
        [[ -z $state || $state == Z ]] && break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# free_port VAR: a port nobody listens on, below the ephemeral range so
# that wrk's own client sockets never take it.
free_port() {
    local candidate i
    for ((i = 0; i < 500; i++)); do
        candidate=$((15000 + RANDOM % 17000))
        [[ -n ${TAKEN_PORTS[$candidate]:-} ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            TAKEN_PORTS[$candidate]=1
            printf -v "$1" '%s' "$candidate"
            return 0
        fi
    done
    die "no free port found"
}

table() { # HEADER ROWS...: aligned columns for the terminal
    printf '%s\n' "$@" | awk -F'|' '
        { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NF }
        END { for (r = 1; r <= NR; r++) { line = ""
              for (i = 1; i <= n; i++) line = line sprintf(i == 1 ? "%-*s" : "  %*s", w[i], cell[r, i])
              print line } }'
}

md_table() { # HEADER ROWS...
    local header=$1 cols
    shift
    echo "| ${header//|/ | } |"
    cols=$(awk -F'|' '{ s = "|---"; for (i = 2; i <= NF; i++) s = s "|--:"; print s "|" }' <<<"$header")
    echo "$cols"
    local row
    for row in "$@"; do echo "| ${row//|/ | } |"; done
}

# ---- set-up steps both benchmark scripts take ----
# They use `die` and set globals the scripts read; SCRIPT names the script
# in messages.
SCRIPT=${0##*/}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# require_tools EXTRA...: nginx (found also in /usr/sbin), wrk, then the
# coreutils-like EXTRA tools; sets NGINX. Exits with the apt-get line
# when nginx or wrk is missing.
require_tools() {
    local missing=() tool
    NGINX=$(command -v nginx || true)
    [[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
    [[ -n $NGINX ]] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    if ((${#missing[@]})); then
        echo "$SCRIPT: missing: ${missing[*]}" >&2
        echo "  install them first, on Debian/Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "missing $tool (coreutils/util-linux/awk/curl)"
    done
}

# set_pinning SERVERS [LOADER]: with BENCH_PIN=1 (the default when taskset
# exists and there are 2 CPUs or more) the load generator (LOADER, default
# wrk) runs on the first allowed CPU and the servers on the others. Sets
# CPUS, NCPU, PIN_LOAD, PIN_SERVER, WRK_THREADS and PIN_NOTE (SERVERS and
# LOADER name them in it).
# shellcheck disable=SC2034 # sets globals the sourcing script reads
set_pinning() {
    local servers=$1 loader=${2:-wrk} load_cpus server_cpus
    mapfile -t CPUS < <(allowed_cpus)
    NCPU=${#CPUS[@]}
    if [[ -z ${BENCH_PIN:-} ]]; then
        if command -v taskset >/dev/null && ((NCPU >= 2)); then BENCH_PIN=1; else BENCH_PIN=0; fi
    fi
    if [[ $BENCH_PIN == 1 ]]; then
        command -v taskset >/dev/null || die "BENCH_PIN=1 needs taskset (util-linux)"
        ((NCPU >= 2)) || die "BENCH_PIN=1 needs at least 2 CPUs"
        load_cpus=${CPUS[0]}
        server_cpus=$(IFS=,; echo "${CPUS[*]:1}")
        PIN_LOAD=(taskset -c "$load_cpus")
        PIN_SERVER=(taskset -c "$server_cpus")
        WRK_THREADS=1
        PIN_NOTE="$loader on CPU $load_cpus; $servers on CPU $server_cpus"
    else
        PIN_LOAD=()
        PIN_SERVER=()
        WRK_THREADS=$((NCPU < 2 ? 1 : 2))
        PIN_NOTE="no pinning: $loader, $servers share all $NCPU CPUs"
    fi
}

# build_release ROOT: `cargo build --release` unless BENCH_BUILD=0 or
# BENCH_BIN names a binary to measure instead; sets BIN.
build_release() {
    local root=$1
    BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/govgate}"
    if [[ ${BENCH_BUILD:-1} != 0 && -z ${BENCH_BIN:-} ]]; then
        echo "building govgate (cargo build --release)..." >&2
        (cd "$root" && timeout 1800 cargo build --release) || die "cargo build --release failed"
    fi
    [[ -x $BIN ]] || die "no binary at $BIN (run cargo build --release)"
}

# http_get PORT PATH: prints the status code and body of one request (with
# the header line $AUTH_HEADER when that is set, e.g. a bearer token).
http_get() {
    local auth=()
    if [[ -n ${AUTH_HEADER:-} ]]; then auth=(-H "$AUTH_HEADER"); fi
    if [[ ${BENCH_TLS:-0} == 1 && (${TLS_PORTS:-} == any || " ${TLS_PORTS:-} " == *" $1 "*) ]]; then
        # A TLS listener (BENCH_TLS=1): curl, trusting the bench's own CA.
        curl -s --max-time 5 --cacert "$WORK/tls/ca.crt" "${auth[@]}" -o /dev/stdout -w '\n%{http_code}' \
            "https://127.0.0.1:$1$2" 2>/dev/null |
            awk '{ lines[NR] = $0 } END { printf "%s ", lines[NR]; for (i = 1; i < NR; i++) print lines[i] }'
        return
    fi
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%bConnection: close\r\n\r\n" "$2" "$3" "${3:+\r\n}" >&3
        cat <&3' _ "$1" "$2" "${AUTH_HEADER:-}" 2>/dev/null |
        tr -d '\r' | awk 'NR == 1 { printf "%s ", $2 } body { print } /^$/ { body = 1 }'
}

# wait_ok NAME PORT PATH PID: until PATH answers 200 {"ok":true} (10 s).
wait_ok() {
    local name=$1 port=$2 path=$3 pid=$4 i answer=
    for ((i = 0; i < 100; i++)); do
        answer=$(http_get "$port" "$path" || true)
        [[ $answer == '200 {"ok":true}' ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    echo "$SCRIPT: $name: GET $path answered: ${answer:-nothing}" >&2
    return 1
}

# idle_ticks: idle and iowait time (clock ticks) of all CPUs so far. The
# busy time of the machine is taken as wall time x CPUs minus this: the
# kernel tracks idle time precisely, while its busy counters are sampled.
idle_ticks() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
# shellcheck disable=SC2034 # read by the scripts that source this
ONLINE_CPUS=$(grep -c '^cpu[0-9]' /proc/stat)

# ---- the benchmark gateway ($WORK/govgate) ----

# write_govgate_config ORIGIN [LEDGER_LINE...]: a signing key and the
# start of $WORK/govgate/govgate.toml: listeners on free ports, the ledger
# (with the extra lines), two approvers and an operator, and the `http`
# model "bench" at /m. The caller appends the model's sections, then
# `govgate_version_section`.
write_govgate_config() {
    local origin=$1
    shift
    mkdir -p "$WORK/govgate/data"
    "$BIN" keygen --out "$WORK/govgate/bench.key" --origin "$origin" >/dev/null
    {
        cat <<EOF
[server]
public_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
data_dir = "$WORK/govgate/data"
${GOVGATE_SERVER_EXTRA:-}

[ledger]
origin = "$origin"
key_file = "$WORK/govgate/bench.key"
EOF
        printf '%s\n' "$@"
        cat <<EOF

[timeouts]
shutdown_grace_ms = 2000

[governance.approval]
approvers = 2

[[admin.tokens]]
principal = "bench-ops"
roles = ["admin"]
token_sha256 = "$(printf '%s' bench-ops | sha256sum | cut -d' ' -f1)"

[[admin.tokens]]
principal = "bench-approver-a"
roles = ["approver"]
token_sha256 = "$(printf '%s' bench-a | sha256sum | cut -d' ' -f1)"

[[admin.tokens]]
principal = "bench-approver-b"
roles = ["approver"]
token_sha256 = "$(printf '%s' bench-b | sha256sum | cut -d' ' -f1)"

${BENCH_MODEL_TOML:-$HTTP_BENCH_MODEL}
EOF
    } >"$WORK/govgate/govgate.toml"
}

# The benchmark model, unless BENCH_MODEL_TOML names another: `http`,
# "bench" at /m.
HTTP_BENCH_MODEL='[[models]]
name = "bench"
protocol = "http"
path_prefix = "/m"'


# govgate_version_section UPSTREAM_PORT: the model's one version.
govgate_version_section() {
    cat <<EOF

[[models.versions]]
version = "v1"
upstream = "http://127.0.0.1:$1"
risk_class = "limited"
EOF
}

# start_govgate CHECK_PATH [MODEL]: starts the gateway on the server
# CPUs, waits for its ready line, approves (two approvers) and activates
# MODEL's version v1 (default: bench), then waits until CHECK_PATH answers
# 200 {"ok":true} through it (an empty CHECK_PATH: the caller checks).
# Sets GOVGATE_PID, GOVGATE_PORT and GOVGATE_ADMIN (http://host:port).
start_govgate() {
    local check_path=$1 model=${2:-bench} url='' i step token action
    # Created here, so the readiness loop never reads a file the child
    # has not opened yet.
    : >"$WORK/govgate/stdout.log"
    GOVGATE_LOG=warn setsid "${PIN_SERVER[@]}" "$BIN" serve --config "$WORK/govgate/govgate.toml" \
        >"$WORK/govgate/stdout.log" 2>"$WORK/govgate/stderr.log" &
    GOVGATE_PID=$!
    PIDS+=("$GOVGATE_PID")
    for ((i = 0; i < 300; i++)); do
        url=$(sed -n 's/^govgate ready public=\(https\{0,1\}:[^ ]*\) .*/\1/p' "$WORK/govgate/stdout.log")
        [[ -n $url ]] && break
        kill -0 "$GOVGATE_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $url ]]; then
        cat "$WORK/govgate/stdout.log" "$WORK/govgate/stderr.log" >&2
        die "govgate did not become ready"
    fi
    GOVGATE_PORT=${url##*:}
    if [[ $url == https:* ]]; then TLS_PORTS="${TLS_PORTS:-} $GOVGATE_PORT"; fi
    GOVGATE_ADMIN=$(sed -n 's/^govgate ready public=[^ ]* admin=\(http:[^ ]*\).*/\1/p' "$WORK/govgate/stdout.log")
    # Full governance: the version serves only once approved and activated.
    for step in "bench-a approve" "bench-b approve" "bench-ops activate"; do
        read -r token action <<<"$step"
        GOVGATE_TOKEN=$token "$BIN" models "$action" "$model" v1 --admin-url "$GOVGATE_ADMIN" >/dev/null ||
            die "govgate models $action failed"
    done
    [[ -z $check_path ]] && return 0
    wait_ok govgate "$GOVGATE_PORT" "$check_path" "$GOVGATE_PID" || {
        cat "$WORK/govgate/stderr.log" >&2
        die "govgate does not proxy to the upstream"
    }
}

# CPU clock ticks per second, for the tick counts of /proc.
# shellcheck disable=SC2034 # read by the scripts that source this
CLOCK_TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

# group_ticks PGID: CPU time (clock ticks) of one server's process group
# (the proxy alone, without the upstream).
group_ticks() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v group="$1" '
        { sub(/^.*\) /, ""); if ($3 == group) total += $12 + $13 }
        END { print total + 0 }'
}

# make_bench_tls: a CA ($WORK/tls/ca.crt) and a P-256 server certificate
# for 127.0.0.1 ($WORK/tls/server.crt, server.key), readable by nginx's
# workers.
make_bench_tls() {
    require_tools openssl
    mkdir -p "$WORK/tls"
    (
        cd "$WORK/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=bench-ca -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
            -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out server.crt 2>/dev/null
    ) || die "cannot make the TLS certificates (openssl)"
    chmod 755 "$WORK/tls"
    chmod 644 "$WORK/tls"/*
}

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

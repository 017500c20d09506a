# nginx for the benchmark scripts (sourced, not run): the common parts of
# a config and a start that waits until it answers. The sourcing script
# defines `die`, WORK, PIDS and (through lib/shared.sh) NGINX and
# PIN_SERVER.

# shellcheck shell=bash

nginx_common() {
    local dir=$1
    cat <<EOF
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() {
    local dir=$1
    cat <<EOF
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
EOF
}

# start_nginx NAME CONF_FUNCTION [READY_FUNCTION]: writes the config for a
# fresh free port (tried again on a bind race), starts nginx, waits until
# READY_FUNCTION NAME PORT $WAIT_PATH PID succeeds (default wait_ok: an
# HTTP/1.1 GET answered 200 {"ok":true}). Sets NGINX_PORT; adds the
# process group to PIDS.
start_nginx() {
    local name=$1 conf_fn=$2 ready=${3:-wait_ok} dir="$WORK/$1" attempt port pid
    mkdir -p "$dir"
    for ((attempt = 0; attempt < 5; attempt++)); do
        free_port port
        "$conf_fn" "$dir" "$port" >"$dir/nginx.conf"
        setsid "${PIN_SERVER[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            >"$dir/stdout.log" 2>&1 &
        pid=$!
        if "$ready" "$name" "$port" "$WAIT_PATH" "$pid"; then
            PIDS+=("$pid")
            NGINX_PORT=$port
            return 0
        fi
        stop_group "$pid"
        grep -q "Address already in use" "$dir/error.log" "$dir/stdout.log" 2>/dev/null || break
    done
    cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null || true
    die "$name did not start"
}

# ok_upstream_conf DIR PORT: an upstream of one worker answering every
# request with 200 {"ok":true} (for start_nginx).
ok_upstream_conf() {
    local dir=$1 port=$2
    nginx_common "$dir"
    cat <<EOF
worker_processes 1;
http {
$(nginx_http_common "$dir")
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location / {
            return 200 '{"ok":true}';
        }
    }
}
EOF
}

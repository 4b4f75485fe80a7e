#!/usr/bin/env bash
# HTTP/2 (h2c, prior knowledge) leg: director with `proxy.h2c: true` against nginx with a plain
# `listen ... http2` listener, one worker each, both in front of the same nginx HTTP/1.1
# backend (keep-alive upstream), loaded with h2load (Debian's nghttp2-client). Prints req/s of
# each round and the director / nginx ratio of the medians. See bench/README.md ("HTTP/2").
#
# Run from the repo root:   bash bench/h2c.sh
# Options (env vars):       DURATION=10 WARMUP=2 ROUNDS=3 H2_CLIENTS=16 H2_STREAMS=16
#                           BASE_PORT=18180 DIRECTOR_BIN=<target>/release/director
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
H2_CLIENTS=${H2_CLIENTS:-16}      # h2load connections
H2_STREAMS=${H2_STREAMS:-16}      # concurrent streams per connection (h2load -m)
BASE_PORT=${BASE_PORT:-18180}     # backend=BASE, director=+1, nginx=+2
DIRECTOR_BIN=${DIRECTOR_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/director}
BACKEND_PORT=$BASE_PORT
DIRECTOR_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))

log() { printf '[h2c %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in h2load nginx curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y nghttp2-client nginx-light curl)"
done
[[ -x "$DIRECTOR_BIN" ]] || die "no director binary at $DIRECTOR_BIN (cargo build --release)"

TMP=$(mktemp -d /tmp/director-h2c.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

start() {  # start NAME CMD...: in its own session, output to $TMP/NAME.log
    local name=$1; shift
    setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
}

wait_port() {
    local port=$1 deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        ((SECONDS < deadline)) || die "nothing listens on $port (logs in $TMP)"
        sleep 0.1
    done
}

nginx_conf() {  # nginx_conf DIR SERVER-BLOCK
    mkdir -p "$1/logs" "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    default_type text/plain;
    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
    }
$2
}
EOF
}

nginx_conf "$TMP/backend" "    server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; location / { return 200 \"hello world\n\"; } }"
start backend nginx -p "$TMP/backend" -c "$TMP/backend/nginx.conf"
wait_port "$BACKEND_PORT"

# nginx 1.22's `listen ... http2` on a plain listener speaks h2c with prior knowledge only.
nginx_conf "$TMP/nginx" "    http2_max_concurrent_streams 128;
    server {
        listen 127.0.0.1:$NGINX_PORT http2 backlog=4096;
        location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
start nginx nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf"
wait_port "$NGINX_PORT"

cat >"$TMP/director.yaml" <<EOF
proxy:
  listen: ["127.0.0.1:$DIRECTOR_PORT"]
  workers: 1
  h2c: true
  http2_max_concurrent_streams: 128
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: 1024 }
EOF
start director env RUST_LOG=warn "$DIRECTOR_BIN" --config "$TMP/director.yaml"
wait_port "$DIRECTOR_PORT"

for port in "$DIRECTOR_PORT" "$NGINX_PORT"; do
    body=$(curl -sS --http2-prior-knowledge --max-time 5 "http://127.0.0.1:$port/")
    [[ "$body" == "hello world" ]] || die "port $port: unexpected answer '$body'"
done

rps() {  # rps PORT: h2load's req/s over DURATION seconds after WARMUP
    local out
    out=$(timeout -k 5 $((DURATION + WARMUP + 30)) h2load -t 1 -c "$H2_CLIENTS" -m "$H2_STREAMS" \
        --warm-up-time="$WARMUP" -D "$DURATION" "http://127.0.0.1:$1/" 2>&1) || die "h2load failed: $out"
    grep -q " 0 failed, 0 errored" <<<"$out" || die "h2load saw failures: $(grep 'requests:' <<<"$out")"
    awk '/^finished in/ { gsub(",", "", $4); print $4 }' <<<"$out"
}

declare -a D N
for ((r = 1; r <= ROUNDS; r++)); do
    D+=("$(rps "$DIRECTOR_PORT")")
    N+=("$(rps "$NGINX_PORT")")
    log "round $r: director ${D[-1]} req/s, nginx ${N[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
d=$(median "${D[@]}"); n=$(median "${N[@]}")
printf 'h2c, %d connections x %d streams, %ss x %d rounds: director %s req/s, nginx %s req/s, director / nginx = %s\n' \
    "$H2_CLIENTS" "$H2_STREAMS" "$DURATION" "$ROUNDS" "$d" "$n" "$(awk -v d="$d" -v n="$n" 'BEGIN { printf "%.2f", d / n }')"

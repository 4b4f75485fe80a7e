#!/usr/bin/env bash
# TLS termination, side by side: director, HAProxy and nginx terminate HTTPS with the same
# certificate (ECDSA P-256 by default, made here with openssl), one worker each, in front of
# one shared nginx backend (plain HTTP, keep-alive), loaded with wrk:
#
#   https-ka   HTTPS keep-alive requests per second (wrk -c CONNS over TLS sessions that stay)
#   https-new  new TLS connections per second: wrk with `Connection: close`, so every request
#              opens a new connection; wrk offers to resume its last session (SSL_clear keeps
#              it), so this is a returning client's handshake, resumed where the proxy allows
#   tls-full   full TLS handshakes per second without resumption or HTTP: openssl s_time -new
#              (one connection at a time)
#   h2         HTTP/2 over TLS (ALPN h2) requests per second: h2load -c H2_CLIENTS -m H2_STREAMS
#
# MODES picks and orders the modes (default all four).
# SUITES=same (default): HAProxy and nginx choose cipher suites in director's order (the
# server's, AES-128-GCM first), so the three encrypt alike; SUITES=own: each proxy's default
# (HAProxy: the server's order, AES-256-GCM first; nginx: the client's, which for wrk and
# openssl is AES-256-GCM first). The suite each one negotiates with openssl is logged.
# Printed per mode as rps per proxy (median of ROUNDS, each round runs the proxies in a
# rotated order) and the ratios director / haproxy and director / nginx.
#
#   ROUNDS=1 DURATION=5 bash bench/tls.sh        # a quick run
#   CERT=rsa bash bench/tls.sh                   # RSA 2048 instead of ECDSA P-256
#
# Opt-in (not part of run.sh): needs wrk, haproxy and nginx built with OpenSSL, openssl, and a
# release build of director (built here when missing or older than the sources).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"

DURATION=${DURATION:-10}          # seconds per measured wrk run
WARMUP=${WARMUP:-2}               # seconds of unmeasured load before each measured run
CONNS=${CONNS:-64}                # wrk connections in the keep-alive mode
NEW_CONNS=${NEW_CONNS:-16}        # wrk connections in the new-handshake mode
H2_CLIENTS=${H2_CLIENTS:-16}      # h2load connections in the h2 mode
H2_STREAMS=${H2_STREAMS:-16}      # h2load concurrent streams per connection
read -r -a MODES <<<"${MODES:-https-ka https-new tls-full h2}"
ROUNDS=${ROUNDS:-3}
CERT=${CERT:-ecdsa}               # ecdsa | rsa
SUITES=${SUITES:-same}            # same | own (see above)
PIN=${PIN:-0}                     # 1: proxies on CPU 0, wrk and the backend on CPU 1
BASE_PORT=${BASE_PORT:-18480}     # backend=BASE, director=+1, haproxy=+2, nginx=+3, admin=+4
DEFAULT_DIRECTOR_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/director
DIRECTOR_BIN=${DIRECTOR_BIN:-$DEFAULT_DIRECTOR_BIN}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}

BACKEND_PORT=$BASE_PORT
PROXIES=(director haproxy nginx)
declare -A PORT=([director]=$((BASE_PORT + 1)) [haproxy]=$((BASE_PORT + 2)) [nginx]=$((BASE_PORT + 3)))
declare -A PID=()

PIDS=()
CHILD=""
TMP=""
log() { printf '[tls-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=procs.sh
source "$BENCH_DIR/procs.sh"

trap_cleanup

start_service() {  # start_service NAME CPU CMD...
    local name=$1 cpu=$2; shift 2
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c "$cpu")
    setsid "${pin[@]}" "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

run_bounded() {  # run_bounded SECONDS CMD...
    local secs=$1; shift
    timeout -k 5 "$secs" "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

wait_for_port() {  # wait_for_port NAME PORT PID
    local name=$1 port=$2 pid=$3 deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2; die "$name exited"; }
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$name: nothing listens on $port"
}

check_https() {  # check_https NAME PORT: one request answered with the backend's body
    local body suite
    body=$(curl -sk --max-time 5 "https://127.0.0.1:$2/") || die "$1: no HTTPS answer"
    [[ "$body" == "hello world" ]] || die "$1: unexpected body '$body'"
    suite=$(openssl s_client -connect "127.0.0.1:$2" </dev/null 2>/dev/null | sed -n 's/^New, //p')
    log "$1: openssl negotiates ${suite:-?}"
}

# Director's order (src/listener/tls.rs), for SUITES=same.
TLS13_SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
TLS12_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305

ensure_tools() {
    local t
    for t in wrk haproxy nginx openssl curl h2load; do
        command -v "$t" >/dev/null || die "$t is missing (apt-get install wrk haproxy nginx-light openssl curl nghttp2-client)"
    done
    nginx -V 2>&1 | grep -q http_ssl_module || die "nginx lacks http_ssl_module"
}

ensure_director() {
    if [[ ! -x "$DIRECTOR_BIN" ]] || { [[ "$DIRECTOR_BIN" == "$DEFAULT_DIRECTOR_BIN" ]] &&
        [[ -n "$(find "$REPO_ROOT/src" "$REPO_ROOT/Cargo.toml" "$REPO_ROOT/Cargo.lock" -newer "$DIRECTOR_BIN" -print -quit)" ]]; }; then
        log "building director (cargo build --release)"
        (cd "$REPO_ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release) || die "build failed"
    fi
}

make_cert() {
    local key=$TMP/tls/key.pem cert=$TMP/tls/cert.pem
    mkdir -p "$TMP/tls"
    case $CERT in
        ecdsa) openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/tls/ec.pem" 2>/dev/null
               openssl pkcs8 -topk8 -nocrypt -in "$TMP/tls/ec.pem" -out "$key" ;;
        rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null ;;
        *) die "CERT must be ecdsa or rsa" ;;
    esac
    openssl req -x509 -new -key "$key" -out "$cert" -days 30 -subj "/CN=bench.test" \
        -addext "subjectAltName=DNS:bench.test" 2>/dev/null
    cat "$cert" "$key" >"$TMP/tls/combined.pem"   # HAProxy's crt: certificate and key in one file
}

start_backend() {
    local dir=$TMP/backend
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp/body;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { default_type text/plain; return 200 "hello world"; }
    }
}
EOF
    start_service backend 1 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    wait_for_port backend "$BACKEND_PORT" "$LAST_PID"
}

start_director() {
    local dir=$TMP/director
    mkdir -p "$dir"
    cat >"$dir/director.yaml" <<EOF
proxy:
  listen:
    - address: "127.0.0.1:${PORT[director]}"
      tls: { certificates: [{ cert: "$TMP/tls/cert.pem", key: "$TMP/tls/key.pem" }] }
  workers: 1
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: 512 }
EOF
    start_service director 0 env RUST_LOG=warn "$DIRECTOR_BIN" --config "$dir/director.yaml"
    PID[director]=$LAST_PID
}

start_haproxy() {
    local dir=$TMP/haproxy
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
$([[ "$SUITES" == same ]] && printf '    ssl-default-bind-ciphersuites %s\n    ssl-default-bind-ciphers %s' "$TLS13_SUITES" "$TLS12_CIPHERS")
    maxconn 4096
    tune.ssl.default-dh-param 2048
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 60s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/tls/combined.pem alpn h2,http/1.1
    default_backend be
backend be
    server b1 127.0.0.1:$BACKEND_PORT
EOF
    start_service haproxy 0 haproxy -db -f "$dir/haproxy.cfg"
    PID[haproxy]=$LAST_PID
}

start_nginx() {
    local dir=$TMP/nginx
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        # nginx's default from 1.23.4 on; Debian 12's 1.22 would offer TLS 1.2 at most, whose
        # resumption skips the key exchange that TLS 1.3's (psk_dhe_ke) does.
        ssl_protocols TLSv1.2 TLSv1.3;
$([[ "$SUITES" == same ]] && printf '        ssl_prefer_server_ciphers on;\n        ssl_ciphers %s;\n        ssl_conf_command Ciphersuites %s;' "$TLS12_CIPHERS" "$TLS13_SUITES")
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start_service nginx 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    PID[nginx]=$LAST_PID
}

run_s_time() {  # run_s_time SECONDS PROXY: full handshakes, one at a time
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c 1)
    run_bounded $(($1 + 30)) "${pin[@]}" openssl s_time -connect "127.0.0.1:${PORT[$2]}" -new -time "$1"
}

run_wrk() {  # run_wrk SECONDS PROXY MODE
    local pin=() args=(-t1 -c"$CONNS")
    [[ "$PIN" == 1 ]] && pin=(taskset -c 1)
    [[ "$3" == https-new ]] && args=(-t1 -c"$NEW_CONNS" -H "Connection: close")
    run_bounded $(($1 + 30)) "${pin[@]}" wrk "${args[@]}" -d"$1"s "https://127.0.0.1:${PORT[$2]}/"
}

run_h2load() {  # run_h2load SECONDS PROXY: HTTP/2 over TLS
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c 1)
    run_bounded $(($1 + 30)) "${pin[@]}" h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$1" \
        "https://127.0.0.1:${PORT[$2]}/"
}

declare -A RESULTS=()   # "mode proxy" -> rps of each round, space separated
measure() {  # measure PROXY MODE ROUND
    local out=$TMP/$1.$2.r$3.out rps errors=""
    if [[ "$2" == tls-full ]]; then
        local t0 t1
        t0=$(date +%s.%N)
        run_s_time "$DURATION" "$1" >"$out" 2>&1 || die "$1 $2: openssl s_time failed"
        t1=$(date +%s.%N)
        # "N connections in T real seconds" (T is rounded to whole seconds: timed here instead)
        rps=$(awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
            '/connections in .* real seconds/ {printf "%.2f", $1 / t}' "$out")
    elif [[ "$2" == h2 ]]; then
        ((WARMUP > 0)) && { run_h2load "$WARMUP" "$1" >/dev/null || die "$1: h2 warm-up failed"; }
        run_h2load "$DURATION" "$1" >"$out" 2>&1 || die "$1 h2: h2load failed"
        # "finished in 10.00s, 29092.10 req/s, 2.10MB/s"; the protocol line must say h2
        grep -q "Application protocol: h2" "$out" || die "$1 h2: ALPN did not pick h2"
        rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$out")
        # "requests: N total, N started, N done, N succeeded, F failed, E errored, T timeout"
        errors=$(awk '/^requests:/ && ($10 + $12) > 0 {print "failed: " $10 ", errored: " $12}' "$out")
    else
        ((WARMUP > 0)) && { run_wrk "$WARMUP" "$1" "$2" >/dev/null || die "$1: warm-up failed"; }
        run_wrk "$DURATION" "$1" "$2" >"$out" || die "$1 $2: wrk failed"
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        errors=$(awk '/Socket errors|Non-2xx/ {print}' "$out" | tr '\n' ' ')
    fi
    log "  $2 $1 round $3: ${rps:-?} req/s ${errors}"
    RESULTS["$2 $1"]+="${rps:-0} "
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

main() {
    ensure_tools
    ensure_director
    TMP=$(mktemp -d /tmp/director-tls-bench.XXXXXX)
    make_cert
    start_backend
    start_director; start_haproxy; start_nginx
    local p
    for p in "${PROXIES[@]}"; do
        wait_for_port "$p" "${PORT[$p]}" "${PID[$p]}"
        check_https "$p" "${PORT[$p]}"
    done
    log "certificate: $CERT; suites: $SUITES; ${ROUNDS} round(s) of ${WARMUP}s warm-up + ${DURATION}s per proxy and mode"
    local mode round i n=${#PROXIES[@]}
    for mode in "${MODES[@]}"; do
        for ((round = 1; round <= ROUNDS; round++)); do
            for ((i = 0; i < n; i++)); do
                measure "${PROXIES[$(((i + round - 1) % n))]}" "$mode" "$round"
            done
        done
    done
    printf '\n%-10s %12s %12s %12s %16s %14s\n' mode director haproxy nginx "dir/haproxy" "dir/nginx"
    for mode in "${MODES[@]}"; do
        local d h g
        d=$(median <<<"${RESULTS["$mode director"]}")
        h=$(median <<<"${RESULTS["$mode haproxy"]}")
        g=$(median <<<"${RESULTS["$mode nginx"]}")
        awk -v m="$mode" -v d="$d" -v h="$h" -v g="$g" 'BEGIN {
            printf "%-10s %12.0f %12.0f %12.0f %16.3f %14.3f\n", m, d, h, g, (h > 0 ? d / h : 0), (g > 0 ? d / g : 0)
        }'
    done
    echo "(https-ka: keep-alive requests/s over TLS; https-new: new connections per second, resumed where granted;"
    echo " tls-full: full handshakes per second, one at a time, no HTTP; h2: HTTP/2 over TLS requests/s, h2load)"
}

main "$@"

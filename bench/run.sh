#!/usr/bin/env bash
# Side-by-side load benchmark: director (root bucket only), director-2b (same binary,
# two HTB buckets), HAProxy and nginx, one worker each, all in front of the same nginx
# backend on loopback; plus a FastCGI leg pair (director vs nginx fastcgi_pass, each in front
# of its own identical php-fpm pool) and an X-Sendfile leg pair (director x_sendfile vs nginx
# X-Accel-Redirect, a 1 MiB file named by the same nginx backend); plus cache legs
# (director's object cache vs nginx proxy_cache vs Varnish, all hammering one small
# cacheable file of the same backend) and a miss-path pair (director with the cache on vs
# off on an uncacheable URL); plus two-worker legs (director `workers: 2`, HAProxy
# `nbthread 2`, nginx `worker_processes 2`, same backend, wrk -t2 -c128). See bench/README.md.
#
# Run from the repo root:   bash bench/run.sh
# Options (env vars):       DURATION=10 WARMUP=2 CONNS=64 ROUNDS=3 WRK_THREADS=1
#                           ONLY="director director-2b haproxy nginx director-fcgi nginx-fcgi
#                                 director-sendfile nginx-sendfile director-cache nginx-cache
#                                 varnish-cache director-misscache director-missoff
#                                 director-w2 haproxy-w2 nginx-w2"
#                           W2_CONNS=128 W2_WRK_THREADS=2
#                           IDLE_CONNS=10000 IDLE_HOLD=3 IDLE_TARGET=director
#                           BASE_PORT=18080 PIN=0 SKIP_DIRECTOR=0
#                           FCGI_CHILDREN=8 FCGI_CONNS=8 SENDFILE_BYTES=1048576 CACHE_BYTES=1024
# Quick director-only comparison:  ONLY="director director-2b" bash bench/run.sh
# FastCGI only:                    ONLY="director-fcgi nginx-fcgi" bash bench/run.sh
# X-Sendfile only:                 ONLY="director-sendfile nginx-sendfile" bash bench/run.sh
# Cache hits only:                 ONLY="director-cache nginx-cache varnish-cache" bash bench/run.sh
# Cache miss path only:            ONLY="director-misscache director-missoff" bash bench/run.sh
# Two workers each:                ONLY="director-w2 haproxy-w2 nginx-w2" bash bench/run.sh
#
# Everything it starts runs from a temp dir, is bounded in time and is killed on exit.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"

DURATION=${DURATION:-10}          # seconds per measured wrk run
WARMUP=${WARMUP:-2}               # seconds of unmeasured wrk load before each measured run
CONNS=${CONNS:-64}                # wrk keep-alive connections
ROUNDS=${ROUNDS:-3}               # rounds; each round measures every proxy once
WRK_THREADS=${WRK_THREADS:-1}     # wrk threads (same for every proxy)
W2_CONNS=${W2_CONNS:-128}         # wrk connections in the two-worker legs (-w2)
W2_WRK_THREADS=${W2_WRK_THREADS:-2}  # wrk threads in the two-worker legs (-w2)
IDLE_CONNS=${IDLE_CONNS:-10000}   # idle keep-alive connections for the memory test
IDLE_HOLD=${IDLE_HOLD:-3}         # seconds to hold them open
ALL_LEGS="director director-base director-2b haproxy nginx director-fcgi nginx-fcgi director-sendfile nginx-sendfile"
ALL_LEGS+=" director-cache nginx-cache varnish-cache director-misscache director-missoff"
ALL_LEGS+=" director-w2 haproxy-w2 nginx-w2"
ONLY=${ONLY:-}                    # legs to run (space/comma separated); empty = all
# The idle-connection test runs by default only in a full run; with ONLY it is skipped
# unless IDLE_TARGET is given explicitly.
if [[ -z "$ONLY" ]]; then IDLE_TARGET=${IDLE_TARGET:-director}; else IDLE_TARGET=${IDLE_TARGET:-none}; fi
                                  # director | director-2b | haproxy | nginx | none
BASE_PORT=${BASE_PORT:-18080}     # backend=BASE, director=+1, haproxy=+2, nginx=+3, director-2b=+4,
                                  # php-fpm=+5, director-fcgi=+6, nginx-fcgi=+7,
                                  # director-sendfile=+8, nginx-sendfile=+9, director-base=+10,
                                  # director-cache=+11, nginx-cache=+12, varnish-cache=+13,
                                  # director-misscache=+14, director-missoff=+15,
                                  # director-w2=+16, haproxy-w2=+17, nginx-w2=+18,
                                  # nginx-fcgi's php-fpm=+19
PIN=${PIN:-0}                     # 1: pin proxies to CPU 0, wrk + backend to CPU 1
SKIP_DIRECTOR=${SKIP_DIRECTOR:-0} # 1: leave both director legs out (only for testing this script)
DIRECTOR_CAPACITY=${DIRECTOR_CAPACITY:-512}  # backend capacity in the HTTP director legs (> CONNS)
FCGI_CHILDREN=${FCGI_CHILDREN:-8} # php-fpm workers (pm = static) of the FastCGI legs
FCGI_CONNS=${FCGI_CONNS:-$FCGI_CHILDREN}  # wrk connections in the FastCGI legs (<= FCGI_CHILDREN)
SENDFILE_BYTES=${SENDFILE_BYTES:-1048576}  # size of the file the X-Sendfile legs serve
CACHE_BYTES=${CACHE_BYTES:-1024}  # size of the cacheable object the cache legs request
CACHE_MEMORY_MIB=${CACHE_MEMORY_MIB:-64}  # cache size: director max_memory, nginx max_size, varnish -s malloc
# cargo's output directory: CARGO_TARGET_DIR when set (as cargo itself does), else target/
DEFAULT_DIRECTOR_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/director
DIRECTOR_BIN=${DIRECTOR_BIN:-$DEFAULT_DIRECTOR_BIN}
# director-base: the same config as `director` on another binary (an earlier build), for
# before/after ratios in one run: BASE_BIN=/tmp/director-old ONLY="director director-base haproxy"
BASE_BIN=${BASE_BIN:-}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

BACKEND_PORT=$((BASE_PORT))
DIRECTOR_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
DIRECTOR2B_PORT=$((BASE_PORT + 4))
FPM_PORT=$((BASE_PORT + 5))
DIRECTOR_FCGI_PORT=$((BASE_PORT + 6))
NGINX_FCGI_PORT=$((BASE_PORT + 7))
DIRECTOR_SF_PORT=$((BASE_PORT + 8))
NGINX_SF_PORT=$((BASE_PORT + 9))
DIRECTOR_BASE_PORT=$((BASE_PORT + 10))
DIRECTOR_CACHE_PORT=$((BASE_PORT + 11))
NGINX_CACHE_PORT=$((BASE_PORT + 12))
VARNISH_CACHE_PORT=$((BASE_PORT + 13))
DIRECTOR_MISSCACHE_PORT=$((BASE_PORT + 14))
DIRECTOR_MISSOFF_PORT=$((BASE_PORT + 15))
DIRECTOR_W2_PORT=$((BASE_PORT + 16))
HAPROXY_W2_PORT=$((BASE_PORT + 17))
NGINX_W2_PORT=$((BASE_PORT + 18))
NGINX_FPM_PORT=$((BASE_PORT + 19))

PIDS=()        # process-group leaders of the long-running services we started
CHILD=""       # the current bounded client (wrk / python), if any
TMP=""

log()  { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup ---

# shellcheck source=procs.sh
source "$BENCH_DIR/procs.sh"

trap_cleanup

# ---------------------------------------------------------------- helpers ---

# start_service NAME CPU CMD...: start CMD in its own session (so its whole process
# group can be killed), output to $TMP/NAME.log; prints nothing, sets LAST_PID.
start_service() {
    local name=$1 cpu=$2; shift 2
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c "$cpu")
    setsid "${pin[@]}" "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# run_bounded SECONDS CMD...: run a client in the background with a hard time limit,
# waiting for it interruptibly (so INT/TERM traps fire at once). Returns its status.
run_bounded() {
    local secs=$1; shift
    timeout -k 5 "$secs" "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for_port NAME PORT PID [TIMEOUT]: until PORT accepts TCP connections;
# fails early (with the log tail) if PID dies.
wait_for_port() {
    local name=$1 port=$2 pid=$3 limit=${4:-20}
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$TMP/$name.log" >&2 || true
            die "$name exited before listening on 127.0.0.1:$port"
        fi
        port_in_use "$port" && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/$name.log" >&2 || true
    die "$name did not listen on 127.0.0.1:$port within ${limit}s"
}

# check_hello NAME PORT [PATH]: the service must answer GET PATH (default /) with "hello world".
check_hello() {
    local name=$1 port=$2 path=${3:-/} body
    body=$(curl -sS --noproxy "*" --max-time 5 "http://127.0.0.1:$port$path") || die "$name: GET $path failed"
    [[ "$body" == "hello world" ]] || die "$name: unexpected body from GET $path: '$body'"
}

# check_file NAME PORT PATH [FILE]: GET PATH must answer 200 with FILE (default: the
# X-Sendfile legs' SENDFILE_BYTES-byte file), byte for byte, not the backend's own body.
check_file() {
    local name=$1 port=$2 path=$3 file=${4:-$TMP/files/blob.bin} got size
    size=$(stat -c %s "$file")
    got=$(curl -sS --noproxy "*" --max-time 10 -o "$TMP/$name.check" -w '%{http_code} %{size_download}' \
        "http://127.0.0.1:$port$path") || die "$name: GET $path failed"
    [[ "$got" == "200 $size" ]] || die "$name: GET $path gave '$got' (wanted '200 $size')"
    cmp -s "$TMP/$name.check" "$file" || die "$name: GET $path: not the file's bytes"
    rm -f "$TMP/$name.check"
}

# backend_requests: the nginx backend's request counter (its stub_status, which counts
# the status request itself too), or nothing if it can't be read.
backend_requests() {
    curl -sS --noproxy "*" --max-time 5 "http://127.0.0.1:$BACKEND_PORT/backend-status" 2>/dev/null |
        awk 'NR == 3 && $3 ~ /^[0-9]+$/ {print $3}' || true
}

# check_cache NAME PORT PATH EXPECT: after one GET of PATH (which fills the cache if it
# can), a second GET is a cache hit if the backend's request counter did not move for it.
# Also looks for a header saying "hit": RFC 9211 `Cache-Status: ...; hit` (director),
# `X-Cache-Status: HIT` (the nginx-cache leg adds it), `X-Varnish: XID XID` (two ids:
# Varnish's hit), else `Age:`. EXPECT is hit or miss; the verdict goes to the log and to
# $RAW/NAME.cachecheck (kept with the results). A cache leg that misses, or a miss leg that
# hits, ends the run, except director-cache, which only warns (until director's cache
# serves hits, that leg measures pass-through; the summary says so).
check_cache() {
    local name=$1 port=$2 path=$3 expect=$4 hdrs line b0 b1 asked verdict
    curl -sS --noproxy "*" --max-time 5 -o /dev/null "http://127.0.0.1:$port$path" ||
        die "$name: GET $path failed"
    b0=$(backend_requests)
    hdrs=$(curl -sS --noproxy "*" --max-time 5 -D - -o /dev/null "http://127.0.0.1:$port$path" |
        tr -d '\r') || die "$name: GET $path failed"
    b1=$(backend_requests)
    [[ -n "$b0" && -n "$b1" ]] || die "$name: can't read the backend's request counter (stub_status)"
    asked=$((b1 - b0 - 1))   # minus the second status request
    line=$(grep -i -m 1 -E '^(cache-status:.*; *hit( *;|$)|x-cache-status: *hit|x-varnish: *[0-9]+ +[0-9]+ *$)' \
        <<<"$hdrs" || true)
    [[ -n "$line" ]] || line=$(grep -i -m 1 -E '^age:' <<<"$hdrs" || true)
    if ((asked == 0)); then verdict=hit; else verdict=miss; fi
    printf '%s backend_requests=%s header=%s\n' "$verdict" "$asked" "${line:-none}" >"$RAW/$name.cachecheck"
    log "  $name: 2nd GET $path: $verdict (the backend saw $asked request(s)); hit header: ${line:-none}"
    if [[ "$expect" == miss ]]; then
        [[ "$verdict" == miss ]] || die "$name: GET $path was served without the backend; this leg must miss"
    elif [[ "$verdict" == hit ]]; then
        [[ -n "$line" ]] || log "  WARNING: $name served a hit without an Age or Cache-Status header"
    elif [[ "$name" == director-cache ]]; then
        log "  WARNING: $name did not serve GET $path from its cache (the backend saw $asked" \
            "request(s); hit header: ${line:-none}): this leg measures director's pass-through, not cache hits"
    else
        die "$name: GET $path was not a cache hit (backend saw $asked request(s), header: ${line:-none})"
    fi
}

# serving_pids PID: the processes that do the work: the children if there are any
# (nginx: the worker, not the idle master), else PID itself (haproxy, director).
serving_pids() {
    local kids
    kids=$(pgrep -P "$1" 2>/dev/null || true)
    if [[ -n "$kids" ]]; then echo "$kids"; else echo "$1"; fi
}

# cpu_ticks PID...: user+system clock ticks consumed so far, summed (all threads).
cpu_ticks() {
    local total=0 pid rest f
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        rest=$(sed 's/^.*) //' "/proc/$pid/stat")   # drop "pid (comm) ", comm may have spaces
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))             # utime, stime (fields 14, 15)
    done
    echo "$total"
}

# threads PID...: number of threads, summed.
threads() {
    local total=0 pid n
    for pid in "$@"; do
        n=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${n:-0}))
    done
    echo "$total"
}

now() { date +%s.%N; }

# busy_pct SECONDS: machine-wide CPU busy % (incl. steal) over an interval, before we
# start anything: other work on the box makes every number noisy.
busy_pct() {
    local a b
    a=$(head -n 1 /proc/stat); sleep "$1"; b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); tot = 0
        for (i = 2; i <= 9 && i <= n; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f", (tot > 0 ? 100 * (tot - idle) / tot : 0) }'
}

# steal_ticks: the machine's CPU time taken by the hypervisor for other guests so far (the
# `steal` column of /proc/stat, in clock ticks summed over all CPUs).
steal_ticks() {
    awk '/^cpu / {print $9 + 0}' /proc/stat
}

# ------------------------------------------------------------ legs ----------

# select_legs: LEGS = the legs to run, in ALL_LEGS order (the base of the rotation).
select_legs() {
    local req=() l k known
    read -r -a req <<<"${ONLY//,/ }"
    ((${#req[@]})) || read -r -a req <<<"$ALL_LEGS"
    for l in "${req[@]}"; do
        known=0
        for k in $ALL_LEGS; do [[ "$l" == "$k" ]] && known=1; done
        ((known)) || die "ONLY: unknown leg '$l' (legs: $ALL_LEGS)"
    done
    LEGS=()
    for k in $ALL_LEGS; do
        if [[ "$SKIP_DIRECTOR" == 1 && "$k" == director* ]]; then continue; fi
        # a full run (no ONLY) has the before/after leg only when there is a BASE_BIN
        if [[ -z "$ONLY" && -z "$BASE_BIN" && "$k" == director-base ]]; then continue; fi
        for l in "${req[@]}"; do
            if [[ "$l" == "$k" ]]; then LEGS+=("$k"); break; fi
        done
    done
    ((${#LEGS[@]})) || die "no legs left to run (ONLY='$ONLY', SKIP_DIRECTOR=$SKIP_DIRECTOR)"
}

want() {  # want LEG: is LEG among the selected legs?
    local l
    for l in "${LEGS[@]}"; do [[ "$l" == "$1" ]] && return 0; done
    return 1
}

# ------------------------------------------------------------ preparation ---

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    if want haproxy || want haproxy-w2 || [[ "$IDLE_TARGET" == haproxy ]]; then
        command -v haproxy >/dev/null || missing+=(haproxy)
    fi
    command -v nginx >/dev/null || missing+=(nginx-light)
    if want varnish-cache; then
        [[ -n "$(varnish_bin)" ]] || missing+=(varnish)
    fi
    if want director-fcgi || want nginx-fcgi; then
        [[ -n "$(fpm_bin)" ]] || missing+=(php8.2-fpm)
    fi
    command -v curl >/dev/null || missing+=(curl)
    command -v pgrep >/dev/null || missing+=(procps)
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get update -q >/dev/null
        timeout 900 apt-get install -y -q "${missing[@]}" >/dev/null
    fi
    command -v python3 >/dev/null || die "python3 is required (bench/idle_conns.py, bench/summarize.py)"
    # The Debian packages try to start system services; we never use those.
    if want director-fcgi || want nginx-fcgi; then
        [[ -n "$(fpm_bin)" ]] || die "php-fpm is required for the FastCGI legs (apt-get install php8.2-fpm)"
    fi
    if want varnish-cache; then
        [[ -n "$(varnish_bin)" ]] || die "varnishd is required for the varnish-cache leg (apt-get install varnish)"
    fi
}

# varnish_bin: varnishd on PATH or in /usr/sbin, or nothing.
varnish_bin() {
    command -v varnishd 2>/dev/null && return 0
    [[ -x /usr/sbin/varnishd ]] && echo /usr/sbin/varnishd
    return 0
}

# fpm_bin: the php-fpm binary (php-fpm8.2 on PATH or in /usr/sbin, else php-fpm), or nothing.
fpm_bin() {
    command -v php-fpm8.2 2>/dev/null && return 0
    [[ -x /usr/sbin/php-fpm8.2 ]] && { echo /usr/sbin/php-fpm8.2; return 0; }
    command -v php-fpm 2>/dev/null || true
}

# Build director if the binary is missing or older than any source file.
ensure_director() {
    local l any=0
    for l in "${LEGS[@]}"; do [[ "$l" == director* ]] && any=1; done
    ((any)) || return 0
    local stale=""
    if [[ ! -x "$DIRECTOR_BIN" ]]; then
        stale="missing"
    elif [[ "$DIRECTOR_BIN" == "$DEFAULT_DIRECTOR_BIN" ]] &&
        [[ -n "$(find "$REPO_ROOT/src" "$REPO_ROOT/Cargo.toml" "$REPO_ROOT/Cargo.lock" "$REPO_ROOT/build.rs" \
                 -newer "$DIRECTOR_BIN" -print -quit 2>/dev/null)" ]]; then
        stale="older than the sources"
    fi
    if [[ -n "$stale" ]]; then
        [[ "$DIRECTOR_BIN" == "$DEFAULT_DIRECTOR_BIN" ]] ||
            die "DIRECTOR_BIN=$DIRECTOR_BIN is $stale"
        log "director binary $stale: cargo build --release (up to ${BUILD_TIMEOUT}s)"
        (cd "$REPO_ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release) ||
            die "cargo build --release failed"
    fi
    [[ -x "$DIRECTOR_BIN" ]] || die "no director binary at $DIRECTOR_BIN"
}

raise_fd_limit() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    NOFILE=$(ulimit -n)
    [[ "$NOFILE" == unlimited ]] && NOFILE=1048576
    if ((NOFILE < 65536)); then
        log "note: open-file limit is $NOFILE (hard limit); wanted 65536"
    fi
    # Connection limits for the services, derived from the fd limit.
    NGX_WORKER_CONNS=$((NOFILE - 256 < 65000 ? NOFILE - 256 : 65000))
    HAPROXY_MAXCONN=$(((NOFILE - 256) / 2 < 50000 ? (NOFILE - 256) / 2 : 50000))
}

# ---------------------------------------------------------------- services ---

# nginx_head DIR [WORKERS]: how every nginx config here starts: WORKERS (default one)
# worker processes, its files under DIR, the http block opened with long keep-alive; the
# caller adds the rest and closes the block.
nginx_head() {
    local dir=$1 workers=${2:-1}
    cat <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $NGX_WORKER_CONNS; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
EOF
}

# nginx_upstream: the backend as an nginx upstream with keep-alive (the nginx proxy legs).
nginx_upstream() {
    cat <<EOF
    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
EOF
}

start_backend() {
    local dir=$TMP/backend
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# Fixed HTTP backend shared by all proxies.
$(nginx_head "$dir")
    default_type text/plain;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "hello world\n"; }
        # X-Sendfile legs: name the file (director reads X-Sendfile, nginx X-Accel-Redirect).
        location = /xsendfile {
            add_header X-Sendfile "$TMP/files/blob.bin";
            return 200 "backend body, not the file\n";
        }
        location = /xaccel {
            add_header X-Accel-Redirect /protected/blob.bin;
            return 200 "backend body, not the file\n";
        }
        # Cache legs: one small static file, fresh for an hour.
        location = /cacheable.txt {
            root $TMP/files;
            open_file_cache max=16 inactive=300s;
            add_header Cache-Control "max-age=3600";
        }
        # Miss-path legs: never storable.
        location = /nocache {
            add_header Cache-Control "no-store";
            return 200 "hello world\n";
        }
        # The request counter (the 3rd number of the 3rd line): how many requests reached
        # the backend during a measured run, which shows whether a cache leg served hits.
        location = /backend-status { stub_status; }
    }
}
EOF
    start_service backend 1 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    BACKEND_PID=$LAST_PID
    wait_for_port backend "$BACKEND_PORT" "$BACKEND_PID"
    check_hello backend "$BACKEND_PORT"
}

# write_director_config LEG FILE: the YAML of a director leg. Both legs give the backend
# the same FINITE capacity ($DIRECTOR_CAPACITY > CONNS, so nothing ever queues):
# capacity 0 (unlimited) would skip the bucket accounting altogether.
#   director:    root bucket only (no `buckets:`).
#   director-2b: two buckets under the root; wrk requests `/`, so every request is
#                classified (the /checkout rule is evaluated and fails) and lands in `main`.
#   director-w2: like `director`, with `workers: 2`.
write_director_config() {
    local leg=$1 file=$2 limit=""
    # The idle-connection test holds IDLE_CONNS connections: above the limit director derives
    # from a 20000-file hard limit ((20000 - 256) / 2). director-base may predate the key.
    [[ $leg == director ]] && limit="  max_connections: $((IDLE_CONNS + 1024))"
    local workers=1
    [[ $leg == director-w2 ]] && workers=2
    case $leg in
        director|director-base|director-w2) cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$(port_of "$leg")"]
  workers: $workers
$limit
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    scheduler: rr
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: $DIRECTOR_CAPACITY }
EOF
            ;;
        director-2b) cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$DIRECTOR2B_PORT"]
  workers: 1
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    scheduler: rr
    default_bucket: main
    buckets:
      - { name: vip, rate: 0.2, ceil: 0.4, match: { path_prefix: "/checkout" } }
      - { name: main, rate: 0.8, ceil: 1.0 }
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: $DIRECTOR_CAPACITY }
EOF
            ;;
        director-fcgi) cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$DIRECTOR_FCGI_PORT"]
  workers: 1
routes:
  - { path_prefix: "/", cluster: php }
clusters:
  php:
    scheduler: rr
    fastcgi: { document_root: "$TMP/fpm/docroot" }
    backends:
      - { name: fpm, url: "fastcgi://127.0.0.1:$FPM_PORT", capacity: $FCGI_CHILDREN }
EOF
            ;;
        director-sendfile) cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$DIRECTOR_SF_PORT"]
  workers: 1
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    scheduler: rr
    x_sendfile: { enabled: true, roots: ["$TMP/files"] }
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: $DIRECTOR_CAPACITY }
EOF
            ;;
        director-cache|director-misscache|director-missoff)
            # Like `director`, plus the cluster's cache: on for director-cache (which
            # requests the cacheable file) and director-misscache, off (the same section
            # with enabled: false) for director-missoff; both miss legs request /nocache.
            local enabled=true
            [[ "$leg" == director-missoff ]] && enabled=false
            cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$(port_of "$leg")"]
  workers: 1
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    scheduler: rr
    cache: { enabled: $enabled, max_memory: ${CACHE_MEMORY_MIB}MiB }
    backends:
      - { name: b1, url: "http://127.0.0.1:$BACKEND_PORT", capacity: $DIRECTOR_CAPACITY }
EOF
            ;;
        *) die "write_director_config: unknown leg $leg" ;;
    esac
}

# start_director [LEG]: LEG is director (default), director-2b, director-fcgi,
# director-sendfile, director-cache, director-misscache or director-missoff; same binary,
# own port.
start_director() {
    local leg=${1:-director} dir port
    dir=$TMP/$leg; port=$(port_of "$leg")
    mkdir -p "$dir"
    write_director_config "$leg" "$dir/director.yaml"
    cp "$dir/director.yaml" "$RAW/$leg.yaml"   # kept with the results
    local bin=$DIRECTOR_BIN
    [[ "$leg" == director-base ]] && bin=$BASE_BIN
    start_service "$leg" 0 env RUST_LOG=warn "$bin" --config "$dir/director.yaml"
    case $leg in
        director) DIRECTOR_PID=$LAST_PID ;;
        director-base) DIRECTOR_BASE_PID=$LAST_PID ;;
        director-2b) DIRECTOR2B_PID=$LAST_PID ;;
        director-fcgi) DIRECTOR_FCGI_PID=$LAST_PID ;;
        director-sendfile) DIRECTOR_SF_PID=$LAST_PID ;;
        director-cache) DIRECTOR_CACHE_PID=$LAST_PID ;;
        director-misscache) DIRECTOR_MISSCACHE_PID=$LAST_PID ;;
        director-missoff) DIRECTOR_MISSOFF_PID=$LAST_PID ;;
        director-w2) DIRECTOR_W2_PID=$LAST_PID ;;
    esac
    wait_for_port "$leg" "$port" "$LAST_PID"
    case $leg in
        director-sendfile) check_file "$leg" "$port" "$(path_of "$leg")" ;;
        director-cache)
            check_file "$leg" "$port" "$(path_of "$leg")" "$TMP/files/cacheable.txt"
            check_cache "$leg" "$port" "$(path_of "$leg")" hit
            ;;
        director-misscache|director-missoff)
            check_hello "$leg" "$port" "$(path_of "$leg")"
            check_cache "$leg" "$port" "$(path_of "$leg")" miss
            ;;
        *) check_hello "$leg" "$port" "$(path_of "$leg")" ;;
    esac
}

# start_haproxy [LEG]: haproxy (default, nbthread 1) or haproxy-w2 (nbthread 2).
start_haproxy() {
    local leg=${1:-haproxy} dir threads=1 port
    [[ $leg == haproxy-w2 ]] && threads=2
    dir=$TMP/$leg; port=$(port_of "$leg")
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $threads
    maxconn $HAPROXY_MAXCONN
    pidfile $dir/haproxy.pid
    # no 'log' lines: logging off

defaults
    mode http
    option http-keep-alive
    http-reuse always
    maxconn $HAPROXY_MAXCONN
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 60s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:$port
    default_backend be

backend be
    server b1 127.0.0.1:$BACKEND_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$TMP/$leg-check.log" 2>&1 ||
        { cat "$TMP/$leg-check.log" >&2; die "$leg config check failed"; }
    start_service "$leg" 0 haproxy -db -f "$dir/haproxy.cfg"
    case $leg in
        haproxy) HAPROXY_PID=$LAST_PID ;;
        haproxy-w2) HAPROXY_W2_PID=$LAST_PID ;;
    esac
    wait_for_port "$leg" "$port" "$LAST_PID"
    check_hello "$leg" "$port"
}

# start_nginx_proxy [LEG]: nginx (default, worker_processes 1) or nginx-w2 (2 workers).
start_nginx_proxy() {
    local leg=${1:-nginx} dir workers=1 port
    [[ $leg == nginx-w2 ]] && workers=2
    dir=$TMP/$leg; port=$(port_of "$leg")
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# nginx as a reverse proxy, $workers worker(s), upstream keep-alive.
$(nginx_head "$dir" "$workers")
$(nginx_upstream)
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start_service "$leg" 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    case $leg in
        nginx) NGINX_PID=$LAST_PID ;;
        nginx-w2) NGINX_W2_PID=$LAST_PID ;;
    esac
    wait_for_port "$leg" "$port" "$LAST_PID"
    check_hello "$leg" "$port"
}

# start_fpm NAME PORT: a php-fpm pool for one FastCGI leg: pm = static with FCGI_CHILDREN
# workers on 127.0.0.1:PORT, no php.ini (-n) but opcache on, serving hello.php from the
# shared docroot; sets LAST_PID. Each leg has its own pool: a php-fpm worker stays bound to
# a kept-alive connection while it is idle, so one proxy's idle upstream connections would
# hold a shared pool's workers and starve the other proxy's run.
start_fpm() {
    local name=$1 port=$2 dir=$TMP/$1 bin opcache args
    mkdir -p "$dir" "$TMP/fpm/docroot"
    printf '<?php\necho "hello world\\n";\n' >"$TMP/fpm/docroot/hello.php"
    cat >"$dir/php-fpm.conf" <<EOF
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
log_level = warning
daemonize = no

[bench]
listen = 127.0.0.1:$port
listen.backlog = 4096
pm = static
pm.max_children = $FCGI_CHILDREN
pm.max_requests = 0
catch_workers_output = yes
clear_env = yes
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
EOF
    bin=$(fpm_bin)
    args=(--nodaemonize -n --fpm-config "$dir/php-fpm.conf")
    [[ "$(id -u)" == 0 ]] && args+=(-R)
    opcache=$(find /usr/lib/php -name opcache.so 2>/dev/null | head -n 1)
    if [[ -n "$opcache" ]]; then
        args+=(-d "zend_extension=$opcache" -d opcache.enable=1 -d opcache.validate_timestamps=0)
    else
        log "note: opcache.so not found; php-fpm runs without opcache"
    fi
    start_service "$name" 1 "$bin" "${args[@]}"
    local pid=$LAST_PID
    wait_for_port "$name" "$port" "$pid"
    LAST_PID=$pid
    PHP_FPM_V=$("$bin" -n -v 2>/dev/null | awk 'NR==1 {print $2}')
}

# The nginx FastCGI leg: fastcgi_pass to the pool with upstream keep-alive
# (fastcgi_keep_conn on), the usual fastcgi_params inline, one worker.
start_nginx_fcgi() {
    local dir=$TMP/nginx-fcgi
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
$(nginx_head "$dir")
    upstream php {
        server 127.0.0.1:$NGINX_FPM_PORT;
        keepalive $FCGI_CHILDREN;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_FCGI_PORT backlog=4096;
        root $TMP/fpm/docroot;
        location ~ \.php\$ {
            fastcgi_pass php;
            fastcgi_keep_conn on;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param DOCUMENT_URI \$document_uri;
            fastcgi_param DOCUMENT_ROOT \$document_root;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param REQUEST_SCHEME \$scheme;
            fastcgi_param HTTPS \$https if_not_empty;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx/\$nginx_version;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_param REMOTE_PORT \$remote_port;
            fastcgi_param SERVER_ADDR \$server_addr;
            fastcgi_param SERVER_PORT \$server_port;
            fastcgi_param SERVER_NAME \$server_name;
            fastcgi_param REDIRECT_STATUS 200;
        }
    }
}
EOF
    start_service nginx-fcgi 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    NGINX_FCGI_PID=$LAST_PID
    wait_for_port nginx-fcgi "$NGINX_FCGI_PORT" "$NGINX_FCGI_PID"
    check_hello nginx-fcgi "$NGINX_FCGI_PORT" "$(path_of nginx-fcgi)"
}

# The nginx X-Sendfile leg: proxy to the backend (keep-alive) whose /xaccel answer carries
# X-Accel-Redirect: /protected/blob.bin, an internal location over the files dir.
start_nginx_sendfile() {
    local dir=$TMP/nginx-sendfile
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $NGX_WORKER_CONNS; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    sendfile on;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    default_type application/octet-stream;
$(nginx_upstream)
    server {
        listen 127.0.0.1:$NGINX_SF_PORT backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /protected/ {
            internal;
            alias $TMP/files/;
        }
    }
}
EOF
    start_service nginx-sendfile 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    NGINX_SF_PID=$LAST_PID
    wait_for_port nginx-sendfile "$NGINX_SF_PORT" "$NGINX_SF_PID"
    check_file nginx-sendfile "$NGINX_SF_PORT" "$(path_of nginx-sendfile)"
}

# The nginx cache leg: like the `nginx` leg (upstream keep-alive 64), plus proxy_cache
# with its files under the leg's temp dir. No proxy_cache_valid: the backend's
# Cache-Control: max-age=3600 sets the freshness, as for director and Varnish.
# open_file_cache keeps the cached file open between hits (nginx's usual tuning for hits).
start_nginx_cache() {
    local dir=$TMP/nginx-cache
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
$(nginx_head "$dir")
    proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m max_size=${CACHE_MEMORY_MIB}m
                     inactive=1h use_temp_path=off;
    open_file_cache max=1000 inactive=60s;
$(nginx_upstream)
    server {
        listen 127.0.0.1:$NGINX_CACHE_PORT backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
    start_service nginx-cache 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    NGINX_CACHE_PID=$LAST_PID
    wait_for_port nginx-cache "$NGINX_CACHE_PORT" "$NGINX_CACHE_PID"
    check_file nginx-cache "$NGINX_CACHE_PORT" "$(path_of nginx-cache)" "$TMP/files/cacheable.txt"
    check_cache nginx-cache "$NGINX_CACHE_PORT" "$(path_of nginx-cache)" hit
}

# The Varnish leg: varnishd in the foreground (-F) with its working directory under the
# leg's temp dir (-n), no management port (-T none), a malloc store of CACHE_MEMORY_MIB,
# and one thread pool (-p thread_pools=1): Varnish serves from a pool of threads in one
# child process, not from worker processes, and one pool is the closest it has to "one
# worker". -j none: no privilege separation, so the child (which would run as the
# `varnish` user) can read the VCL and working directory in our 0700 temp dir.
# The VCL only names the backend; the builtin VCL caches the GET (no cookie, no
# authorization) for the backend's max-age.
start_varnish_cache() {
    local dir=$TMP/varnish-cache
    mkdir -p "$dir"
    cat >"$dir/bench.vcl" <<EOF
vcl 4.1;
backend bench {
    .host = "127.0.0.1";
    .port = "$BACKEND_PORT";
}
EOF
    start_service varnish-cache 0 "$(varnish_bin)" -F -j none -n "$dir/work" -T none \
        -a "127.0.0.1:$VARNISH_CACHE_PORT" -f "$dir/bench.vcl" -s "malloc,${CACHE_MEMORY_MIB}m" \
        -p thread_pools=1
    VARNISH_CACHE_PID=$LAST_PID
    # The VCL is compiled to C first: give it longer than the others.
    wait_for_port varnish-cache "$VARNISH_CACHE_PORT" "$VARNISH_CACHE_PID" 60
    check_file varnish-cache "$VARNISH_CACHE_PORT" "$(path_of varnish-cache)" "$TMP/files/cacheable.txt"
    check_cache varnish-cache "$VARNISH_CACHE_PORT" "$(path_of varnish-cache)" hit
    VARNISH_V=$("$(varnish_bin)" -V 2>&1 | sed -n 's/.*(varnish-\([^ ]*\) .*/\1/p' | head -n 1)
}

port_of() {
    case $1 in
        director) echo "$DIRECTOR_PORT" ;; director-2b) echo "$DIRECTOR2B_PORT" ;;
        director-base) echo "$DIRECTOR_BASE_PORT" ;;
        haproxy) echo "$HAPROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;;
        director-fcgi) echo "$DIRECTOR_FCGI_PORT" ;; nginx-fcgi) echo "$NGINX_FCGI_PORT" ;;
        director-sendfile) echo "$DIRECTOR_SF_PORT" ;; nginx-sendfile) echo "$NGINX_SF_PORT" ;;
        director-cache) echo "$DIRECTOR_CACHE_PORT" ;; nginx-cache) echo "$NGINX_CACHE_PORT" ;;
        varnish-cache) echo "$VARNISH_CACHE_PORT" ;;
        director-misscache) echo "$DIRECTOR_MISSCACHE_PORT" ;;
        director-missoff) echo "$DIRECTOR_MISSOFF_PORT" ;;
        director-w2) echo "$DIRECTOR_W2_PORT" ;; haproxy-w2) echo "$HAPROXY_W2_PORT" ;;
        nginx-w2) echo "$NGINX_W2_PORT" ;;
    esac
}
pid_of() {
    case $1 in
        director) echo "${DIRECTOR_PID:-}" ;; director-2b) echo "${DIRECTOR2B_PID:-}" ;;
        director-base) echo "${DIRECTOR_BASE_PID:-}" ;;
        haproxy) echo "${HAPROXY_PID:-}" ;; nginx) echo "${NGINX_PID:-}" ;;
        director-fcgi) echo "${DIRECTOR_FCGI_PID:-}" ;; nginx-fcgi) echo "${NGINX_FCGI_PID:-}" ;;
        director-sendfile) echo "${DIRECTOR_SF_PID:-}" ;; nginx-sendfile) echo "${NGINX_SF_PID:-}" ;;
        director-cache) echo "${DIRECTOR_CACHE_PID:-}" ;; nginx-cache) echo "${NGINX_CACHE_PID:-}" ;;
        varnish-cache) echo "${VARNISH_CACHE_PID:-}" ;;
        director-misscache) echo "${DIRECTOR_MISSCACHE_PID:-}" ;;
        director-missoff) echo "${DIRECTOR_MISSOFF_PID:-}" ;;
        director-w2) echo "${DIRECTOR_W2_PID:-}" ;; haproxy-w2) echo "${HAPROXY_W2_PID:-}" ;;
        nginx-w2) echo "${NGINX_W2_PID:-}" ;;
    esac
}
# path_of LEG: the URL path wrk requests.
path_of() {
    case $1 in
        director-fcgi|nginx-fcgi) echo /hello.php ;;
        director-sendfile) echo /xsendfile ;;
        nginx-sendfile) echo /xaccel ;;
        director-cache|nginx-cache|varnish-cache) echo /cacheable.txt ;;
        director-misscache|director-missoff) echo /nocache ;;
        *) echo / ;;
    esac
}
# conns_of LEG: wrk connections. The FastCGI legs keep them <= php-fpm's workers: a php-fpm
# worker stays bound to a kept-alive connection, so more connections than workers would
# leave some waiting in php-fpm's backlog for as long as the others stay open.
conns_of() {
    case $1 in
        director-fcgi|nginx-fcgi) echo "$FCGI_CONNS" ;;
        *-w2) echo "$W2_CONNS" ;;
        *) echo "$CONNS" ;;
    esac
}
# wrk_threads_of LEG: wrk threads (the two-worker legs have their own setting).
wrk_threads_of() {
    case $1 in
        *-w2) echo "$W2_WRK_THREADS" ;;
        *) echo "$WRK_THREADS" ;;
    esac
}
# backend_pid_of LEG: the backend process whose CPU the leg's run is charged with.
backend_pid_of() {
    case $1 in
        director-fcgi) echo "$FPM_PID" ;;
        nginx-fcgi) echo "$NGINX_FPM_PID" ;;
        *) echo "$BACKEND_PID" ;;
    esac
}

# ---------------------------------------------------------------- load ------

# run_wrk SECONDS LEG: one bounded wrk run against LEG's port and path, output to stdout.
run_wrk() {
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c 1)
    run_bounded $(($1 + 30)) "${pin[@]}" \
        wrk -t"$(wrk_threads_of "$2")" -c"$(conns_of "$2")" -d"$1"s --latency \
        "http://127.0.0.1:$(port_of "$2")$(path_of "$2")"
}

# measure NAME ROUND: warm-up, then one measured wrk run; raw output and a CPU
# accounting line go to $RAW/NAME.rROUND.{wrk,meta}.
measure() {
    local name=$1 round=$2 pid
    pid=$(pid_of "$name")
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is not running"
    if ((WARMUP > 0)); then
        run_wrk "$WARMUP" "$name" >/dev/null || die "$name: warm-up wrk failed"
    fi
    local spids bpids c0 b0 s0 t0 c1 b1 s1 t1 r0="" r1="" reqs="" out=$RAW/$name.r$round
    spids=$(serving_pids "$pid"); bpids=$(serving_pids "$(backend_pid_of "$name")")
    # requests that reached the nginx backend (not for the FastCGI legs, whose backend is
    # php-fpm): about one per client request for a proxy, about none for a cache's hits
    [[ "$(backend_pid_of "$name")" == "$BACKEND_PID" ]] && r0=$(backend_requests)
    # shellcheck disable=SC2086
    { c0=$(cpu_ticks $spids); b0=$(cpu_ticks $bpids); s0=$(steal_ticks); t0=$(now); }
    run_wrk "$DURATION" "$name" >"$out.wrk" || die "$name: wrk failed (exit status $?)"
    # shellcheck disable=SC2086
    { c1=$(cpu_ticks $spids); b1=$(cpu_ticks $bpids); s1=$(steal_ticks); t1=$(now); }
    [[ -n "$r0" ]] && r1=$(backend_requests)
    [[ -n "$r0" && -n "$r1" ]] && reqs=$((r1 - r0 - 1))   # minus the second status request
    # shellcheck disable=SC2086
    printf 'proxy_ticks=%s backend_ticks=%s steal_ticks=%s elapsed=%s clk_tck=%s threads=%s conns=%s%s\n' \
        $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "$(getconf CLK_TCK)" "$(threads $spids)" "$(conns_of "$name")" \
        "${reqs:+ backend_reqs=$reqs}" >"$out.meta"
    local rps p99 xfer
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$out.wrk")
    xfer=$(awk '/^Transfer\/sec:/ {print $2}' "$out.wrk")
    log "  $name round $round: ${rps:-?} req/s, ${xfer:-?}/s, p99 ${p99:-?}${reqs:+, $reqs backend requests}"
}

# ---------------------------------------------------------------- idle ------

idle_test() {
    local target=$IDLE_TARGET
    if [[ "$target" == none ]]; then log "idle-connection test: skipped (IDLE_TARGET=none)"; return 0; fi
    if [[ "$target" == director* && "$SKIP_DIRECTOR" == 1 ]]; then
        log "idle-connection test: SKIPPED (SKIP_DIRECTOR=1; set IDLE_TARGET=nginx or haproxy to try the client)"
        return 0
    fi
    # Only the target runs now, freshly started, so its VmHWM (peak RSS) covers this
    # test alone and no other proxy competes for memory or CPU.
    local name
    for name in $ALL_LEGS; do
        [[ -n "$(pid_of "$name")" ]] && stop_pid "$(pid_of "$name")"
    done
    case $target in
        director|director-2b) start_director "$target" ;;
        haproxy) start_haproxy ;;
        nginx) start_nginx_proxy ;;
        *) die "IDLE_TARGET must be director, director-2b, haproxy, nginx or none (got '$target')" ;;
    esac
    local pid port mainpid
    pid=$(pid_of "$target"); port=$(port_of "$target")
    mainpid=$(serving_pids "$pid" | head -n 1)   # nginx: the worker holds the connections
    run_bounded $((IDLE_HOLD + 180)) python3 "$BENCH_DIR/idle_conns.py" 127.0.0.1 "$port" \
        -n "$IDLE_CONNS" --hold "$IDLE_HOLD" --pid "$mainpid" --label "$target" \
        --json "$RAW/idle.json" || die "idle-connection client failed"
}

# write_config FILE: the run's settings and tool versions, as JSON.
write_config() {
    local rev
    rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null) || rev=unknown
    if [[ "$rev" != unknown ]] && [[ -n "$(git -C "$REPO_ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
        rev="$rev-dirty"
    fi
    DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS ROUNDS=$ROUNDS WRK_THREADS=$WRK_THREADS \
    W2_CONNS=$W2_CONNS W2_WRK_THREADS=$W2_WRK_THREADS \
    PIN=$PIN SKIP_DIRECTOR=$SKIP_DIRECTOR NOFILE=$NOFILE BUSY_BEFORE=$BUSY_BEFORE \
    LEGS="${LEGS[*]}" ONLY="$ONLY" DIRECTOR_CAPACITY=$DIRECTOR_CAPACITY \
    FCGI_CHILDREN=$FCGI_CHILDREN FCGI_CONNS=$FCGI_CONNS SENDFILE_BYTES=$SENDFILE_BYTES \
    CACHE_BYTES=$CACHE_BYTES CACHE_MEMORY_MIB=$CACHE_MEMORY_MIB \
    PHP_FPM_V="${PHP_FPM_V:-}" VARNISH_V="${VARNISH_V:-}" \
    DIRECTOR_BIN=$DIRECTOR_BIN DIRECTOR_REV=$rev \
    HAPROXY_V="$(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}')" \
    NGINX_V="$(nginx -v 2>&1 | sed 's|.*nginx/||')" \
    WRK_V="$(wrk -v 2>&1 | awk 'NR==1 {print $2}')" \
    python3 - "$1" <<'PY'
import json, os, sys
e = os.environ
doc = {
    "duration_s": int(e["DURATION"]), "warmup_s": int(e["WARMUP"]),
    "connections": int(e["CONNS"]), "rounds": int(e["ROUNDS"]),
    "wrk_threads": int(e["WRK_THREADS"]), "pin": e["PIN"] == "1",
    "w2_connections": int(e["W2_CONNS"]), "w2_wrk_threads": int(e["W2_WRK_THREADS"]),
    "skip_director": e["SKIP_DIRECTOR"] == "1", "nofile": int(e["NOFILE"]),
    "legs": e["LEGS"].split(), "only": e["ONLY"] or None,
    "director_backend_capacity": int(e["DIRECTOR_CAPACITY"]),
    "fcgi_children": int(e["FCGI_CHILDREN"]), "fcgi_connections": int(e["FCGI_CONNS"]),
    "sendfile_bytes": int(e["SENDFILE_BYTES"]), "php_fpm_version": e["PHP_FPM_V"] or None,
    "cache_bytes": int(e["CACHE_BYTES"]), "cache_memory_mib": int(e["CACHE_MEMORY_MIB"]),
    "varnish_version": e["VARNISH_V"] or None,
    "nproc": os.cpu_count(), "busy_pct_before": int(e["BUSY_BEFORE"]),
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "director_bin": e["DIRECTOR_BIN"], "director_rev": e["DIRECTOR_REV"],
    "haproxy_version": e["HAPROXY_V"], "nginx_version": e["NGINX_V"], "wrk_version": e["WRK_V"],
}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=1)
PY
}

# ---------------------------------------------------------------- main ------

main() {
    cd "$REPO_ROOT"
    select_legs
    ensure_tools
    ensure_director
    raise_fd_limit
    TMP=$(mktemp -d /tmp/director-bench.XXXXXX)
    RAW=$TMP/raw
    mkdir -p "$RAW"
    cd "$TMP"   # nothing below writes into the repo except $RESULTS_DIR

    BUSY_BEFORE=$(busy_pct 2)
    if ((BUSY_BEFORE > 10)); then
        log "WARNING: the machine is already ${BUSY_BEFORE}% busy before the benchmark" \
            "(load: $(cut -d' ' -f1-3 /proc/loadavg)); numbers will be noisy"
    fi

    local p
    for p in "$BACKEND_PORT" "$DIRECTOR_PORT" "$HAPROXY_PORT" "$NGINX_PORT" "$DIRECTOR2B_PORT" \
        "$DIRECTOR_BASE_PORT" "$FPM_PORT" "$DIRECTOR_FCGI_PORT" "$NGINX_FCGI_PORT" "$DIRECTOR_SF_PORT" "$NGINX_SF_PORT" \
        "$DIRECTOR_CACHE_PORT" "$NGINX_CACHE_PORT" "$VARNISH_CACHE_PORT" "$DIRECTOR_MISSCACHE_PORT" \
        "$DIRECTOR_MISSOFF_PORT" "$DIRECTOR_W2_PORT" "$HAPROXY_W2_PORT" "$NGINX_W2_PORT" "$NGINX_FPM_PORT"; do
        port_in_use "$p" && die "port 127.0.0.1:$p is already in use (set BASE_PORT)"
    done

    local proxies=("${LEGS[@]}")
    if [[ "$SKIP_DIRECTOR" == 1 ]]; then
        log "SKIP_DIRECTOR=1: director is NOT benchmarked (testing mode); ratios will be empty"
    fi
    log "legs: ${proxies[*]}"

    # The files the backend serves: the X-Sendfile legs' blob.bin and the cache legs'
    # cacheable.txt (CACHE_BYTES of text); also a+x on $TMP for nginx-cache's cache files.
    mkdir -p "$TMP/files"
    if want director-sendfile || want nginx-sendfile; then
        head -c "$SENDFILE_BYTES" /dev/urandom >"$TMP/files/blob.bin"
    fi
    head -c $(((CACHE_BYTES * 3 + 3) / 4)) /dev/urandom | base64 -w 64 >"$TMP/files/cacheable.txt"
    truncate -s "$CACHE_BYTES" "$TMP/files/cacheable.txt"
    # nginx's worker may run as another user (nobody when started as root).
    chmod a+x "$TMP" && chmod -R a+rX "$TMP/files"
    log "backend nginx on :$BACKEND_PORT"
    start_backend
    if want director; then
        log "director (root bucket only, capacity $DIRECTOR_CAPACITY) on :$DIRECTOR_PORT ($DIRECTOR_BIN)"
        start_director director
    fi
    if want director-base; then
        [[ -x "$BASE_BIN" ]] || die "the director-base leg needs BASE_BIN (an earlier director binary)"
        log "director-base (root bucket only, capacity $DIRECTOR_CAPACITY) on :$DIRECTOR_BASE_PORT ($BASE_BIN)"
        start_director director-base
    fi
    if want director-2b; then
        log "director-2b (two buckets, capacity $DIRECTOR_CAPACITY) on :$DIRECTOR2B_PORT ($DIRECTOR_BIN)"
        start_director director-2b
    fi
    if want haproxy; then
        log "haproxy on :$HAPROXY_PORT"
        start_haproxy
    fi
    if want nginx; then
        log "nginx proxy on :$NGINX_PORT"
        start_nginx_proxy
    fi
    if want director-fcgi; then
        log "php-fpm for director-fcgi ($FCGI_CHILDREN static workers) on :$FPM_PORT"
        start_fpm fpm "$FPM_PORT"
        FPM_PID=$LAST_PID
        log "director-fcgi (fastcgi backend, capacity $FCGI_CHILDREN) on :$DIRECTOR_FCGI_PORT"
        start_director director-fcgi
    fi
    if want nginx-fcgi; then
        log "php-fpm for nginx-fcgi ($FCGI_CHILDREN static workers) on :$NGINX_FPM_PORT"
        start_fpm fpm-nginx "$NGINX_FPM_PORT"
        NGINX_FPM_PID=$LAST_PID
        log "nginx-fcgi (fastcgi_pass, keep-alive) on :$NGINX_FCGI_PORT"
        start_nginx_fcgi
    fi
    if want director-sendfile; then
        log "director-sendfile (x_sendfile, $SENDFILE_BYTES-byte file) on :$DIRECTOR_SF_PORT"
        start_director director-sendfile
    fi
    if want nginx-sendfile; then
        log "nginx-sendfile (X-Accel-Redirect, $SENDFILE_BYTES-byte file) on :$NGINX_SF_PORT"
        start_nginx_sendfile
    fi
    if want director-cache; then
        log "director-cache (cache on, ${CACHE_MEMORY_MIB}MiB; $CACHE_BYTES-byte cacheable file) on :$DIRECTOR_CACHE_PORT"
        start_director director-cache
    fi
    if want nginx-cache; then
        log "nginx-cache (proxy_cache, proxy_cache_lock on; $CACHE_BYTES-byte cacheable file) on :$NGINX_CACHE_PORT"
        start_nginx_cache
    fi
    if want varnish-cache; then
        log "varnish-cache (varnishd, thread_pools=1, malloc ${CACHE_MEMORY_MIB}m; $CACHE_BYTES-byte cacheable file) on :$VARNISH_CACHE_PORT"
        start_varnish_cache
    fi
    if want director-misscache; then
        log "director-misscache (cache on, Cache-Control: no-store URL) on :$DIRECTOR_MISSCACHE_PORT"
        start_director director-misscache
    fi
    if want director-missoff; then
        log "director-missoff (cache off, same URL) on :$DIRECTOR_MISSOFF_PORT"
        start_director director-missoff
    fi
    if want director-w2; then
        log "director-w2 (workers: 2, root bucket only) on :$DIRECTOR_W2_PORT"
        start_director director-w2
    fi
    if want haproxy-w2; then
        log "haproxy-w2 (nbthread 2) on :$HAPROXY_W2_PORT"
        start_haproxy haproxy-w2
    fi
    if want nginx-w2; then
        log "nginx-w2 (worker_processes 2) on :$NGINX_W2_PORT"
        start_nginx_proxy nginx-w2
    fi

    log "load: wrk -t$WRK_THREADS -c$CONNS (FastCGI legs -c$FCGI_CONNS, -w2 legs -t$W2_WRK_THREADS -c$W2_CONNS), ${WARMUP}s warm-up + ${DURATION}s measured, $ROUNDS rounds, fd limit $NOFILE, PIN=$PIN"
    local r i n=${#proxies[@]} order
    for ((r = 1; r <= ROUNDS; r++)); do
        # Rotate the order each round over all selected legs:
        # director,director-2b,haproxy,nginx / director-2b,haproxy,nginx,director / ...
        order=()
        for ((i = 0; i < n; i++)); do order+=("${proxies[$(((i + r - 1) % n))]}"); done
        log "round $r/$ROUNDS: ${order[*]}"
        for p in "${order[@]}"; do measure "$p" "$r"; done
    done

    idle_test

    write_config "$RAW/config.json"
    mkdir -p "$RESULTS_DIR"
    rm -rf "$RESULTS_DIR/latest-raw"
    cp -r "$RAW" "$RESULTS_DIR/latest-raw"
    python3 "$BENCH_DIR/summarize.py" "$RAW" --json "$RESULTS_DIR/latest.json"
    log "results: $RESULTS_DIR/latest.json (raw wrk output in $RESULTS_DIR/latest-raw/)"
}

# bench/profile.sh sources this file for its services (start_backend, start_director, ...)
# and runs its own main.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi

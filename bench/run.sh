#!/usr/bin/env bash
# Side-by-side load benchmark: director (root bucket only), director-2b (same binary,
# two HTB buckets), HAProxy and nginx, one worker each, all in front of the same nginx
# backend on loopback. See bench/README.md.
#
# Run from the repo root:   bash bench/run.sh
# Options (env vars):       DURATION=10 WARMUP=2 CONNS=64 ROUNDS=3 WRK_THREADS=1
#                           ONLY="director director-2b haproxy nginx"
#                           IDLE_CONNS=10000 IDLE_HOLD=3 IDLE_TARGET=director
#                           BASE_PORT=18080 PIN=0 SKIP_DIRECTOR=0
# Quick director-only comparison:  ONLY="director director-2b" bash bench/run.sh
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
IDLE_CONNS=${IDLE_CONNS:-10000}   # idle keep-alive connections for the memory test
IDLE_HOLD=${IDLE_HOLD:-3}         # seconds to hold them open
ALL_LEGS="director director-2b haproxy nginx"
ONLY=${ONLY:-}                    # legs to run (space/comma separated); empty = all four
# The idle-connection test runs by default only in a full run; with ONLY it is skipped
# unless IDLE_TARGET is given explicitly.
if [[ -z "$ONLY" ]]; then IDLE_TARGET=${IDLE_TARGET:-director}; else IDLE_TARGET=${IDLE_TARGET:-none}; fi
                                  # director | director-2b | haproxy | nginx | none
BASE_PORT=${BASE_PORT:-18080}     # backend=BASE, director=+1, haproxy=+2, nginx=+3, director-2b=+4
PIN=${PIN:-0}                     # 1: pin proxies to CPU 0, wrk + backend to CPU 1
SKIP_DIRECTOR=${SKIP_DIRECTOR:-0} # 1: leave both director legs out (only for testing this script)
DIRECTOR_CAPACITY=${DIRECTOR_CAPACITY:-512}  # backend capacity in BOTH director legs (> CONNS)
DIRECTOR_BIN=${DIRECTOR_BIN:-$REPO_ROOT/target/release/director}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

BACKEND_PORT=$((BASE_PORT))
DIRECTOR_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
DIRECTOR2B_PORT=$((BASE_PORT + 4))

PIDS=()        # process-group leaders of the long-running services we started
CHILD=""       # the current bounded client (wrk / python), if any
TMP=""

log()  { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup ---

stop_pid() {  # stop_pid PID: TERM its process group, wait up to 5 s, then KILL
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n "$CHILD" ]] && stop_pid "$CHILD"
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    [[ -n "$TMP" && -d "$TMP" ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

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

# check_hello NAME PORT: the service must answer GET / with "hello world".
check_hello() {
    local name=$1 port=$2 body
    body=$(curl -sS --noproxy "*" --max-time 5 "http://127.0.0.1:$port/") || die "$name: GET / failed"
    [[ "$body" == "hello world" ]] || die "$name: unexpected body from GET /: '$body'"
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
    if want haproxy || [[ "$IDLE_TARGET" == haproxy ]]; then
        command -v haproxy >/dev/null || missing+=(haproxy)
    fi
    command -v nginx >/dev/null || missing+=(nginx-light)
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
}

# Build director if the binary is missing or older than any source file.
ensure_director() {
    want director || want director-2b || return 0
    local stale=""
    if [[ ! -x "$DIRECTOR_BIN" ]]; then
        stale="missing"
    elif [[ "$DIRECTOR_BIN" == "$REPO_ROOT/target/release/director" ]] &&
        [[ -n "$(find "$REPO_ROOT/src" "$REPO_ROOT/Cargo.toml" "$REPO_ROOT/Cargo.lock" "$REPO_ROOT/build.rs" \
                 -newer "$DIRECTOR_BIN" -print -quit 2>/dev/null)" ]]; then
        stale="older than the sources"
    fi
    if [[ -n "$stale" ]]; then
        [[ "$DIRECTOR_BIN" == "$REPO_ROOT/target/release/director" ]] ||
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

start_backend() {
    local dir=$TMP/backend
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# Fixed HTTP backend shared by all proxies.
worker_processes 1;
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
    default_type text/plain;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "hello world\n"; }
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
write_director_config() {
    local leg=$1 file=$2
    case $leg in
        director) cat >"$file" <<EOF
proxy:
  listen: ["127.0.0.1:$DIRECTOR_PORT"]
  workers: 1
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
        *) die "write_director_config: unknown leg $leg" ;;
    esac
}

# start_director [LEG]: LEG is director (default) or director-2b; same binary, own port.
start_director() {
    local leg=${1:-director} dir port
    dir=$TMP/$leg; port=$(port_of "$leg")
    mkdir -p "$dir"
    write_director_config "$leg" "$dir/director.yaml"
    cp "$dir/director.yaml" "$RAW/$leg.yaml"   # kept with the results
    start_service "$leg" 0 env RUST_LOG=warn "$DIRECTOR_BIN" --config "$dir/director.yaml"
    case $leg in
        director) DIRECTOR_PID=$LAST_PID ;;
        director-2b) DIRECTOR2B_PID=$LAST_PID ;;
    esac
    wait_for_port "$leg" "$port" "$LAST_PID"
    check_hello "$leg" "$port"
}

start_haproxy() {
    local dir=$TMP/haproxy
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
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
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend be

backend be
    server b1 127.0.0.1:$BACKEND_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 ||
        { cat "$TMP/haproxy-check.log" >&2; die "haproxy config check failed"; }
    start_service haproxy 0 haproxy -db -f "$dir/haproxy.cfg"
    HAPROXY_PID=$LAST_PID
    wait_for_port haproxy "$HAPROXY_PORT" "$HAPROXY_PID"
    check_hello haproxy "$HAPROXY_PORT"
}

start_nginx_proxy() {
    local dir=$TMP/nginx
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# nginx as a reverse proxy, one worker, upstream keep-alive.
worker_processes 1;
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
    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start_service nginx 0 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    NGINX_PID=$LAST_PID
    wait_for_port nginx "$NGINX_PORT" "$NGINX_PID"
    check_hello nginx "$NGINX_PORT"
}

port_of() {
    case $1 in
        director) echo "$DIRECTOR_PORT" ;; director-2b) echo "$DIRECTOR2B_PORT" ;;
        haproxy) echo "$HAPROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;;
    esac
}
pid_of() {
    case $1 in
        director) echo "${DIRECTOR_PID:-}" ;; director-2b) echo "${DIRECTOR2B_PID:-}" ;;
        haproxy) echo "${HAPROXY_PID:-}" ;; nginx) echo "${NGINX_PID:-}" ;;
    esac
}

# ---------------------------------------------------------------- load ------

# run_wrk SECONDS PORT: one bounded wrk run against 127.0.0.1:PORT, output to stdout.
run_wrk() {
    local pin=()
    [[ "$PIN" == 1 ]] && pin=(taskset -c 1)
    run_bounded $(($1 + 30)) "${pin[@]}" \
        wrk -t"$WRK_THREADS" -c"$CONNS" -d"$1"s --latency "http://127.0.0.1:$2/"
}

# measure NAME ROUND: warm-up, then one measured wrk run; raw output and a CPU
# accounting line go to $RAW/NAME.rROUND.{wrk,meta}.
measure() {
    local name=$1 round=$2 port pid
    port=$(port_of "$name"); pid=$(pid_of "$name")
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is not running"
    if ((WARMUP > 0)); then
        run_wrk "$WARMUP" "$port" >/dev/null || die "$name: warm-up wrk failed"
    fi
    local spids bpids c0 b0 t0 c1 b1 t1 out=$RAW/$name.r$round
    spids=$(serving_pids "$pid"); bpids=$(serving_pids "$BACKEND_PID")
    # shellcheck disable=SC2086
    { c0=$(cpu_ticks $spids); b0=$(cpu_ticks $bpids); t0=$(now); }
    run_wrk "$DURATION" "$port" >"$out.wrk" || die "$name: wrk failed (exit status $?)"
    # shellcheck disable=SC2086
    { c1=$(cpu_ticks $spids); b1=$(cpu_ticks $bpids); t1=$(now); }
    # shellcheck disable=SC2086
    printf 'proxy_ticks=%s backend_ticks=%s elapsed=%s clk_tck=%s threads=%s\n' \
        $((c1 - c0)) $((b1 - b0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "$(getconf CLK_TCK)" "$(threads $spids)" >"$out.meta"
    local rps p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$out.wrk")
    log "  $name round $round: ${rps:-?} req/s, p99 ${p99:-?}"
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
    PIN=$PIN SKIP_DIRECTOR=$SKIP_DIRECTOR NOFILE=$NOFILE BUSY_BEFORE=$BUSY_BEFORE \
    LEGS="${LEGS[*]}" ONLY="$ONLY" DIRECTOR_CAPACITY=$DIRECTOR_CAPACITY \
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
    "skip_director": e["SKIP_DIRECTOR"] == "1", "nofile": int(e["NOFILE"]),
    "legs": e["LEGS"].split(), "only": e["ONLY"] or None,
    "director_backend_capacity": int(e["DIRECTOR_CAPACITY"]),
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
    for p in "$BACKEND_PORT" "$DIRECTOR_PORT" "$HAPROXY_PORT" "$NGINX_PORT" "$DIRECTOR2B_PORT"; do
        port_in_use "$p" && die "port 127.0.0.1:$p is already in use (set BASE_PORT)"
    done

    local proxies=("${LEGS[@]}")
    if [[ "$SKIP_DIRECTOR" == 1 ]]; then
        log "SKIP_DIRECTOR=1: director is NOT benchmarked (testing mode); ratios will be empty"
    fi
    log "legs: ${proxies[*]}"

    log "backend nginx on :$BACKEND_PORT"
    start_backend
    if want director; then
        log "director (root bucket only, capacity $DIRECTOR_CAPACITY) on :$DIRECTOR_PORT ($DIRECTOR_BIN)"
        start_director director
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

    log "load: wrk -t$WRK_THREADS -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s measured, $ROUNDS rounds, fd limit $NOFILE, PIN=$PIN"
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

main "$@"

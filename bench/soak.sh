#!/usr/bin/env bash
# Soak test: mixed traffic with injected faults through the release director binary for
# SOAK_SECONDS (default 600), then checks that nothing leaked and no response ever reached
# the wrong client. Everything runs on 127.0.0.1 (director's listeners on port 0), from a
# mktemp directory, bounded in time; an EXIT trap stops everything it started.
# See bench/README.md, "Soak".
#
# Run from anywhere:  bash bench/soak.sh
# Options (env vars): SOAK_SECONDS=600 SOAK_RATE=250 SOAK_CONNS=12 SOAK_WORKERS=2
#                     SOAK_FCGI=auto (1: require php-fpm, 0: no FastCGI leg)
#                     DIRECTOR_BIN=target/release/director (skips the build) KEEP_TMP=0
# Exit status: 0 all invariants held, 1 an invariant failed, 2 set-up error.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_RATE=${SOAK_RATE:-250}          # normal-group requests per second (the other groups add ~30/s)
SOAK_CONNS=${SOAK_CONNS:-12}         # normal-group keep-alive connections
SOAK_WORKERS=${SOAK_WORKERS:-2}      # director workers
SOAK_FCGI=${SOAK_FCGI:-auto}         # auto | 1 | 0
KEEP_TMP=${KEEP_TMP:-0}              # 1: keep the temp dir (logs, config) for a post-mortem
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}

PIDS=()        # process-group leaders of what we started
TMP=""

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# shellcheck source=procs.sh
source "$BENCH_DIR/procs.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ "$KEEP_TMP" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# start NAME CMD...: CMD in its own session (its whole group can be stopped), output to
# $TMP/NAME.log; sets LAST_PID.
start() {
    local name=$1; shift
    setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_until SECONDS WHAT PID CMD...: until CMD succeeds; fails early if PID died.
wait_until() {
    local limit=$1 what=$2 pid=$3; shift 3
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$what: the process exited (see above)"
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$what: not ready within ${limit}s"
}

[[ "$(uname -s)" == Linux ]] || die "the soak test reads /proc: Linux only"
command -v python3 >/dev/null || die "python3 is required"
[[ "$SOAK_SECONDS" =~ ^[0-9]+$ ]] && ((SOAK_SECONDS >= 20)) || die "SOAK_SECONDS must be a whole number >= 20"

if [[ -z "${DIRECTOR_BIN:-}" ]]; then
    log "building the release binary (cargo build --release)"
    (cd "$REPO_ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release --quiet) || die "cargo build --release failed"
    DIRECTOR_BIN=$REPO_ROOT/target/release/director
fi
[[ -x "$DIRECTOR_BIN" ]] || die "no director binary at $DIRECTOR_BIN"

FPM_BIN=""
if [[ "$SOAK_FCGI" != 0 ]]; then
    FPM_BIN=$(command -v php-fpm8.2 2>/dev/null || true)
    [[ -z "$FPM_BIN" && -x /usr/sbin/php-fpm8.2 ]] && FPM_BIN=/usr/sbin/php-fpm8.2
    [[ -z "$FPM_BIN" ]] && FPM_BIN=$(command -v php-fpm 2>/dev/null || true)
    if [[ -z "$FPM_BIN" ]]; then
        [[ "$SOAK_FCGI" == 1 ]] && die "SOAK_FCGI=1 but php-fpm was not found"
        log "php-fpm not found: no FastCGI leg"
    fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/director-soak.XXXXXX")
RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
log "run $RUN in $TMP"

# The wrong-client detector must fire when nothing sits between client and faulty backend.
python3 "$BENCH_DIR/soak.py" selfcheck >&2 || die "the wrong-client detector did not fire without director"

# Backends: h1..h3 (healthy) and f1..f3 (faulty) in one process on free ports.
start backends python3 "$BENCH_DIR/soak_servers.py" all --run "$RUN" --ports-file "$TMP/ports.json"
BACKENDS_PID=$LAST_PID
wait_until 20 "backends" "$BACKENDS_PID" test -s "$TMP/ports.json"
port_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/ports.json" "$1"; }
H1=$(port_of h1); H2=$(port_of h2); H3=$(port_of h3)
F1=$(port_of f1); F2=$(port_of f2); F3=$(port_of f3)
# The flapping backend comes back on the same port, so it gets one outside the ephemeral
# range (the driver starts it).
FLAP_PORT=$(python3 "$BENCH_DIR/soak.py" freeport)

FPM_PORT=0
PHP_ROUTE="" PHP_CLUSTER=""
if [[ -n "$FPM_BIN" ]]; then
    FPM_PORT=$(python3 "$BENCH_DIR/soak.py" freeport)
    mkdir -p "$TMP/fpm"
    # Echoes the tokens and the upload's length and CRC-32 like the HTTP backends
    # (PHP's crc32() is zlib's), and a body derived from the path token.
    cat >"$TMP/fpm/index.php" <<'PHP'
<?php
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
$tok = basename($path);
$in = file_get_contents('php://input');
header('Content-Type: application/octet-stream');
header('X-Soak-Token: ' . ($_SERVER['HTTP_X_SOAK_TOKEN'] ?? ''));
header('X-Soak-Path: ' . $tok);
header('X-Soak-Backend: fpm');
header('X-Soak-Up-Len: ' . strlen($in));
header('X-Soak-Up-Crc: ' . crc32($in));
$n = intval($_GET['size'] ?? 0);
$unit = $tok . '|';
echo substr(str_repeat($unit, intdiv($n, strlen($unit)) + 1), 0, $n);
PHP
    cat >"$TMP/fpm/php-fpm.conf" <<EOF
[global]
pid = $TMP/fpm/php-fpm.pid
error_log = $TMP/fpm/php-fpm.log
log_level = warning
daemonize = no

[soak]
listen = 127.0.0.1:$FPM_PORT
pm = static
pm.max_children = 4
pm.max_requests = 0
clear_env = yes
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
EOF
    fpm_args=(--nodaemonize -n --fpm-config "$TMP/fpm/php-fpm.conf")
    [[ "$(id -u)" == 0 ]] && fpm_args+=(-R)
    start fpm "$FPM_BIN" "${fpm_args[@]}"
    wait_until 20 "php-fpm" "$LAST_PID" bash -c "exec 3<>/dev/tcp/127.0.0.1/$FPM_PORT"
    PHP_ROUTE='  - { path_prefix: "/php/", cluster: php }'
    PHP_CLUSTER="  php:
    scheduler: rr
    read_timeout: 5s
    backend_keep_alive: 2s
    fastcgi: { document_root: \"$TMP/fpm\", script: index.php }
    backends:
      - { name: fpm, url: \"fastcgi://127.0.0.1:$FPM_PORT\", capacity: 4 }"
fi

cat >"$TMP/config.yaml" <<EOF
# director soak test, run $RUN (generated by bench/soak.sh)
proxy:
  listen: ["127.0.0.1:0"]
  workers: $SOAK_WORKERS
  keep_alive: 60s
  client_timeout: 10s
  send_timeout: 5s           # never-reading clients (held 8-20 s) are cut, freeing their slots
admin:
  listen: "127.0.0.1:0"
state_file: "$TMP/director-state.json"
routes:
  - { path_prefix: "/app/", cluster: main }
  - { path_prefix: "/bad/", cluster: faulty }
  - { path_prefix: "/tight/", cluster: tight }
$PHP_ROUTE
clusters:
  main:                      # healthy backends plus 'flap', killed and restarted all along
    scheduler: least-load
    queue_limit: 64
    queue_timeout: 5s
    max_retry_count: 2
    connect_timeout: 1s
    read_timeout: 5s         # shorter than the never-reading clients hold their answers
    write_timeout: 5s
    client_body_timeout: 2s  # stalled uploads get 408 after 2 s
    backend_keep_alive: 2s
    debug_headers: true
    passive_health: { max_fails: 2, fail_timeout: 5s }
    health: { interval: 500ms, timeout: 1s, rise: 2, fall: 3, path: /health }
    backends:
      - { name: h1, url: "http://127.0.0.1:$H1", capacity: 24 }
      - { name: h2, url: "http://127.0.0.1:$H2", capacity: 24 }
      - { name: h3, url: "http://127.0.0.1:$H3", capacity: 24 }
      - { name: flap, url: "http://127.0.0.1:$FLAP_PORT", capacity: 24 }
  faulty:                    # backends that break HTTP (see bench/soak_servers.py)
    scheduler: rr
    max_retry_count: 1
    connect_timeout: 1s
    read_timeout: 2s
    backend_keep_alive: 2s
    passive_health: { max_fails: 5, fail_timeout: 1s }
    backends:
      - { name: f1, url: "http://127.0.0.1:$F1", capacity: 8 }
      - { name: f2, url: "http://127.0.0.1:$F2", capacity: 8 }
      - { name: f3, url: "http://127.0.0.1:$F3", capacity: 8 }
  tight:                     # small capacity and queue: bursts queue, overflow, time out
    queue_limit: 8
    queue_timeout: 1s
    retry_after: 1
    read_timeout: 5s
    backend_keep_alive: 2s
    health: { interval: 1s, timeout: 1s, rise: 2, fall: 3, path: /health }
    backends:
      - { name: t1, url: "http://127.0.0.1:$H1", capacity: 4 }
$PHP_CLUSTER
EOF

"$DIRECTOR_BIN" --check-config --config "$TMP/config.yaml" >"$TMP/check.log" 2>&1 \
    || { cat "$TMP/check.log" >&2; die "director rejected the generated config ($TMP/config.yaml)"; }

RUST_LOG=${RUST_LOG:-warn,director=info} start director "$DIRECTOR_BIN" --config "$TMP/config.yaml"
DIRECTOR_PID=$LAST_PID
listening() {  # listening WHAT: the port director logged for its proxy or admin listener
    sed -n "s|.*$1 .*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p" "$TMP/director.log" | head -n 1
}
wait_until 30 "director" "$DIRECTOR_PID" bash -c "grep -q 'admin .*listening on' '$TMP/director.log'"
PROXY_PORT=$(listening proxy)
ADMIN_PORT=$(listening admin)
[[ -n "$PROXY_PORT" && -n "$ADMIN_PORT" ]] || { cat "$TMP/director.log" >&2; die "director's ports not found in its log"; }
[[ "$(cat "/proc/$DIRECTOR_PID/comm" 2>/dev/null)" == director ]] || die "pid $DIRECTOR_PID is not director"
log "director pid $DIRECTOR_PID: proxy 127.0.0.1:$PROXY_PORT, admin 127.0.0.1:$ADMIN_PORT"
log "backends h $H1 $H2 $H3, f $F1 $F2 $F3, flap $FLAP_PORT${FPM_BIN:+, php-fpm $FPM_PORT}"
log "traffic for ${SOAK_SECONDS}s"

# The driver in its own session (with the flap backend it spawns), bounded in time.
rc=0
setsid timeout -k 10 $((SOAK_SECONDS + 180)) python3 "$BENCH_DIR/soak.py" drive \
    --run "$RUN" --seconds "$SOAK_SECONDS" --proxy-port "$PROXY_PORT" --admin-port "$ADMIN_PORT" \
    --pid "$DIRECTOR_PID" --backends-pid "$BACKENDS_PID" --ports-file "$TMP/ports.json" --flap-port "$FLAP_PORT" \
    --fpm-port "$FPM_PORT" --tmp "$TMP" --rate "$SOAK_RATE" --conns "$SOAK_CONNS" \
    --workers "$SOAK_WORKERS" --director-log "$TMP/director.log" --summary-file "$TMP/summary.txt" \
    </dev/null &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")
wait "$DRIVER_PID" || rc=$?
case $rc in
    0) log "all invariants held" ;;
    1) log "an invariant failed (see above)"; KEEP_TMP=1 ;;
    124|137) log "the driver ran out of time"; rc=2; KEEP_TMP=1 ;;
    *) log "the driver failed (status $rc)"; KEEP_TMP=1 ;;
esac
exit "$rc"

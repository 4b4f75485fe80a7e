#!/usr/bin/env bash
# Where a proxied request's cost goes: director (one worker) against HAProxy and nginx (one
# worker each), all in front of the same nginx backend that bench/run.sh uses (its services
# are reused: this script sources run.sh). Four parts, each selectable with PARTS:
#
#   callgrind  director under valgrind's callgrind with --separate-callers, CG_REQUESTS
#              keep-alive GETs (after CG_WARMUP unmeasured ones) over CG_CONNS connections;
#              bench/callgrind_areas.py turns the dump into instructions per request by area
#              (actix-http decode / encode, header map, date, malloc, memcpy, director's own
#              code, runtime...) and writes folded stacks for a flame graph. Counts do not
#              move with the machine's load; the kernel is not counted. valgrind counts
#              every iteration of a `rep stos`/`rep movs` as one instruction, so glibc's
#              memset of 2 KiB or more (rep stosb) would count one instruction per byte:
#              CG_REP_LOOPS=1 (the default) sets GLIBC_TUNABLES so that director's glibc
#              uses its vector loops instead, whose instruction count tracks the real cost.
#   cachesim   the same GETs through each proxy under callgrind's cache and branch-predictor
#              simulation (--cache-sim=yes --branch-sim=yes): simulated L1/LL instruction and
#              data misses and mispredicted branches per request, side by side, for VMs that
#              have no hardware counters (not in the default PARTS; about a minute).
#   strace     strace -c -f attached to each proxy's serving process(es) during one
#              `wrk -t1 -cSTRACE_CONNS -dSTRACE_SECONDS` run: syscalls per request by name,
#              side by side (bench/strace_table.py). strace slows the proxy down a lot; the
#              counts per request are what matter, and the time columns are not used.
#   perf       if perf can sample here: `perf stat` (task-clock, context switches, syscalls)
#              and `perf record -e cpu-clock -g` on each proxy during a `wrk -t1 -cCONNS`
#              run at full speed: kernel vs user share of the proxy's CPU, top symbols,
#              syscalls and context switches per request (requests counted by the backend);
#              then `perf record -e sched:sched_switch` for SCHED_SECONDS: each switch away
#              from the proxy, preempted (R) or waiting (S), and which task took the CPU.
#              nstat: TCP segments and IP bytes per request (whole machine).
#   moves      uprobes on glibc's memmove and malloc in each proxy during a `wrk -t1 -cCONNS`
#              run (MOVES_SECONDS): copies, bytes copied, allocations and bytes allocated per
#              request side by side, and director's call sites by bytes (bench/moves_table.py;
#              not in the default PARTS; needs root for perf probe).
#
# Usage: bash bench/profile.sh      (from the repo root; results in bench/results/profile/)
# Options (env vars): PARTS="callgrind strace perf" CG_REQUESTS=5000 CG_WARMUP=500 CG_CONNS=8
#   CG_CALLERS=40 CG_REP_LOOPS=1 STRACE_SECONDS=3 STRACE_CONNS=8 PERF_SECONDS=5 SCHED_SECONDS=2 MOVES_SECONDS=2
#   CONNS=64 (the load of perf and moves)
#   PROXIES="director haproxy nginx" BASE_PORT=18280 PROFILE_DIR=bench/results/profile
#   DIRECTOR_BIN (default: as in run.sh, built if missing or stale)
set -euo pipefail

BASE_PORT=${BASE_PORT:-18280}
# shellcheck source=run.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run.sh"

PARTS=${PARTS:-callgrind strace perf}
PROXIES=${PROXIES:-director haproxy nginx}
CG_REQUESTS=${CG_REQUESTS:-5000}
CG_WARMUP=${CG_WARMUP:-500}
CG_CONNS=${CG_CONNS:-8}
CG_CALLERS=${CG_CALLERS:-40}
CG_REP_LOOPS=${CG_REP_LOOPS:-1}
STRACE_SECONDS=${STRACE_SECONDS:-3}
STRACE_CONNS=${STRACE_CONNS:-8}
PERF_SECONDS=${PERF_SECONDS:-5}
SCHED_SECONDS=${SCHED_SECONDS:-2}
MOVES_SECONDS=${MOVES_SECONDS:-2}
PROFILE_DIR=${PROFILE_DIR:-$BENCH_DIR/results/profile}
IDLE_TARGET=none

part() { [[ " $PARTS " == *" $1 "* ]]; }

# start_proxy NAME: director, haproxy or nginx with run.sh's one-worker config.
start_proxy() {
    case $1 in
        director) start_director director ;;
        haproxy) start_haproxy haproxy ;;
        nginx) start_nginx_proxy nginx ;;
        *) die "PROXIES: unknown proxy '$1' (director, haproxy, nginx)" ;;
    esac
}

# requests_through NAME CMD...: run CMD and print how many requests reached the backend
# meanwhile (its stub_status counter, minus the second status request).
requests_through() {
    local r0 r1
    r0=$(backend_requests)
    "$@" >&2 || return $?
    r1=$(backend_requests)
    echo $((r1 - r0 - 1))
}

# ---------------------------------------------------------------- callgrind --

# callgrind_count NAME PORT DUMP_BASE VALGRIND_OPTS... -- CMD...: run CMD under callgrind
# on PORT, send CG_WARMUP unmeasured and then CG_REQUESTS measured requests, and set
# CG_DUMP to the file holding the measured requests' costs.
callgrind_count() {
    local name=$1 port=$2 base=$3; shift 3
    local vg=() pid reqs i
    while [[ $1 != -- ]]; do vg+=("$1"); shift; done
    shift
    local tunables=()
    # glibc never picks rep stosb / rep movsb below these sizes: 1 GiB means never here.
    [[ "$CG_REP_LOOPS" == 1 ]] &&
        tunables=("GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=1073741824:glibc.cpu.x86_rep_movsb_threshold=1073741824")
    log "callgrind: $name under valgrind (${vg[*]} CG_REP_LOOPS=$CG_REP_LOOPS) on :$port"
    start_service "$name-callgrind" 0 env RUST_LOG=warn "${tunables[@]}" valgrind --tool=callgrind \
        "${vg[@]}" --callgrind-out-file="$base" "$@"
    pid=$LAST_PID
    wait_for_port "$name-callgrind" "$port" "$pid" 120
    # Under valgrind director's routes can be published a little after the listener opens.
    for ((i = 0; i < 300; i++)); do
        [[ "$(curl -sS --noproxy "*" --max-time 5 "http://127.0.0.1:$port/" 2>/dev/null)" == "hello world" ]] && break
        sleep 0.2
    done
    check_hello "$name-callgrind" "$port"
    run_bounded 600 python3 "$TMP/callgrind/client.py" "$port" "$CG_WARMUP" "$CG_CONNS" ||
        die "callgrind: $name: warm-up client failed"
    callgrind_control -z "$pid" >/dev/null
    reqs=$(requests_through run_bounded 1800 python3 "$TMP/callgrind/client.py" "$port" "$CG_REQUESTS" "$CG_CONNS") ||
        die "callgrind: $name: client failed"
    callgrind_control -d "$pid" >/dev/null
    CG_DUMP=$(ls -t "$base".* | head -n 1)
    stop_pid "$pid"
    log "callgrind: $name: $CG_REQUESTS requests over $CG_CONNS keep-alive connections; the backend saw $reqs"
}

# cg_total DUMP: the instructions in a callgrind dump.
cg_total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

# write_callgrind_client: the client the valgrind parts drive: keep-alive GETs that fail on
# any answer but `200 hello world`.
write_callgrind_client() {
    mkdir -p "$TMP/callgrind"
    cat >"$TMP/callgrind/client.py" <<'PY'
import http.client, sys, threading
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
errors = []
def run(count):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(count):
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200 and body == b"hello world\n", (response.status, body)
        conn.close()
    except Exception as e:  # reported below: a failed request must fail the run
        errors.append(repr(e))
threads = [threading.Thread(target=run, args=(total // conns + (i < total % conns),))
           for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(f"client: {len(errors)} connection(s) failed: {errors[0]}")
PY
}

# callgrind_proxy NAME DIR VALGRIND_OPTS...: callgrind_count for director, haproxy or nginx,
# each with run.sh's config for it (dump files under DIR); CG_DUMP is set as there.
callgrind_proxy() {
    local name=$1 dir=$2; shift 2
    case $name in
        director)
            write_director_config director "$dir/director.yaml"
            callgrind_count director "$(port_of director)" "$dir/director.out" "$@" -- \
                "$DIRECTOR_BIN" --config "$dir/director.yaml"
            ;;
        haproxy)
            start_haproxy haproxy; stop_pid "$HAPROXY_PID"   # writes the config
            callgrind_count haproxy "$HAPROXY_PORT" "$dir/haproxy.out" "$@" -- \
                haproxy -db -f "$TMP/haproxy/haproxy.cfg"
            ;;
        nginx)
            start_nginx_proxy nginx; stop_pid "$NGINX_PID"
            # one process: the master serves (no worker to follow)
            callgrind_count nginx "$NGINX_PORT" "$dir/nginx.out" "$@" -- \
                nginx -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" \
                -g "master_process off;"
            ;;
        *) die "callgrind: unknown proxy $name" ;;
    esac
}

profile_callgrind() {
    command -v valgrind >/dev/null || die "callgrind: valgrind is required (apt-get install valgrind)"
    local dir=$TMP/callgrind name
    mkdir -p "$dir"
    write_callgrind_client
    callgrind_proxy director "$dir" --separate-callers="$CG_CALLERS"
    cp "$CG_DUMP" "$PROFILE_DIR/director.callgrind"
    python3 "$BENCH_DIR/callgrind_areas.py" "$CG_DUMP" "$CG_REQUESTS" --top 30 \
        --folded "$PROFILE_DIR/director.folded" --json "$PROFILE_DIR/callgrind.json" \
        >"$PROFILE_DIR/callgrind.txt"
    # The same count for HAProxy and nginx (whole process, user space), as a reference.
    {
        echo "user-space instructions per request ($CG_REQUESTS GETs over $CG_CONNS keep-alive connections):"
        printf '  %-10s %9d\n' director $(($(cg_total "$CG_DUMP") / CG_REQUESTS))
    } >"$PROFILE_DIR/callgrind-compare.txt"
    for name in $PROXIES; do
        [[ $name == haproxy || $name == nginx ]] || continue
        callgrind_proxy "$name" "$dir"
        printf '  %-10s %9d\n' "$name" $(($(cg_total "$CG_DUMP") / CG_REQUESTS)) >>"$PROFILE_DIR/callgrind-compare.txt"
    done
    cat "$PROFILE_DIR/callgrind.txt" "$PROFILE_DIR/callgrind-compare.txt"
}

# ---------------------------------------------------------------- cachesim ---

# cg_events DUMP REQUESTS: the dump's events per request, one "name value" line each
# (Ir instructions, I1mr/ILmr instruction-cache misses in L1/last level, Dr/Dw data reads
# and writes, D1mr/D1mw/DLmr/DLmw their misses, Bc/Bi conditional/indirect branches,
# Bcm/Bim their mispredictions).
cg_events() {
    awk -v n="$2" '/^events:/ { for (i = 2; i <= NF; i++) name[i] = $i }
        /^(summary|totals):/ { for (i = 2; i <= NF; i++) printf "%s %.1f\n", name[i], $i / n; exit }' "$1"
}

# profile_cachesim: the same keep-alive GETs as the callgrind part, for each proxy, under
# callgrind's cache and branch-predictor simulation (--cache-sim=yes --branch-sim=yes): the
# simulated misses and mispredictions per request, side by side, where the VM has no
# hardware counters. valgrind models a two-level cache from the host's cpuid and a simple
# predictor, so the figures are comparisons between the proxies, not cycle counts.
profile_cachesim() {
    command -v valgrind >/dev/null || die "cachesim: valgrind is required (apt-get install valgrind)"
    write_callgrind_client
    local dir=$TMP/cachesim name args=()
    mkdir -p "$dir"
    for name in $PROXIES; do
        callgrind_proxy "$name" "$dir" --cache-sim=yes --branch-sim=yes
        cp "$CG_DUMP" "$PROFILE_DIR/cachesim-$name.callgrind"
        cg_events "$CG_DUMP" "$CG_REQUESTS" >"$dir/$name.events"
        args+=("$name")
    done
    (cd "$dir" && python3 - "${args[@]}" <<'PY'
import sys
names = sys.argv[1:]
ev = {n: dict((k, float(v)) for k, v in (l.split() for l in open(f"{n}.events"))) for n in names}
rows = [("Ir", "instructions"), ("I1mr", "L1 instruction misses"), ("ILmr", "LL instruction misses"),
        ("Dr", "data reads"), ("D1mr", "L1 data read misses"), ("DLmr", "LL data read misses"),
        ("Dw", "data writes"), ("D1mw", "L1 data write misses"), ("DLmw", "LL data write misses"),
        ("Bc", "conditional branches"), ("Bcm", "conditional mispredicted"),
        ("Bi", "indirect branches"), ("Bim", "indirect mispredicted")]
print(f"{'per request':<26}" + "".join(f"{n:>12}" for n in names))
for key, label in rows:
    print(f"{label:<26}" + "".join(f"{ev[n].get(key, 0):>12.1f}" for n in names))
PY
    ) | tee "$PROFILE_DIR/cachesim.txt"
}

# ---------------------------------------------------------------- strace -----

profile_strace() {
    command -v strace >/dev/null || die "strace: strace is required (apt-get install strace)"
    local name pid spids sp port args=()
    for name in $PROXIES; do
        start_proxy "$name"
        pid=$(pid_of "$name"); port=$(port_of "$name")
        spids=$(serving_pids "$pid")
        run_bounded 30 wrk -t1 -c"$STRACE_CONNS" -d1s "http://127.0.0.1:$port/" >/dev/null ||
            die "strace: $name warm-up failed"
        local popts=()
        for sp in $spids; do popts+=(-p "$sp"); done
        strace -c -f -o "$PROFILE_DIR/strace-$name.txt" "${popts[@]}" 2>"$TMP/strace-$name.log" &
        local spid=$!
        sleep 1   # attach to every thread before the load starts
        run_bounded $((STRACE_SECONDS + 60)) wrk -t1 -c"$STRACE_CONNS" -d"${STRACE_SECONDS}s" \
            "http://127.0.0.1:$port/" >"$PROFILE_DIR/strace-$name.wrk" || die "strace: $name wrk failed"
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        log "strace: $name: $(awk '/requests in/ {print $1}' "$PROFILE_DIR/strace-$name.wrk") requests"
        stop_pid "$pid"
        args+=("$name=$PROFILE_DIR/strace-$name.txt:$PROFILE_DIR/strace-$name.wrk")
    done
    python3 "$BENCH_DIR/strace_table.py" "${args[@]}" | tee "$PROFILE_DIR/strace.txt"
}

# ---------------------------------------------------------------- perf -------

# start_warmed PART NAME: start_proxy NAME, warmed up by a 2 s `wrk -cCONNS` run; sets the
# caller's pid, port, spids (its serving processes) and list (them, comma-separated, for
# `perf -p`).
start_warmed() {
    start_proxy "$2"
    pid=$(pid_of "$2"); port=$(port_of "$2")
    spids=$(serving_pids "$pid")
    list=$(tr '\n' ',' <<<"$spids"); list=${list%,}
    run_bounded 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null ||
        die "$1: $2 warm-up failed"
}

profile_perf() {
    if ! command -v perf >/dev/null || ! perf record -e cpu-clock -o "$TMP/perf-probe.data" true >/dev/null 2>&1; then
        log "perf: cannot sample here (perf missing, or perf_event_paranoid forbids it); skipped" |
            tee "$PROFILE_DIR/perf.txt"
        return 0
    fi
    local name pid spids port list reqs events="task-clock,context-switches,raw_syscalls:sys_enter"
    perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 || events="task-clock,context-switches"
    : >"$PROFILE_DIR/perf.txt"
    for name in $PROXIES; do
        start_warmed perf "$name"
        wrk -t1 -c"$CONNS" -d$((PERF_SECONDS + 3 + SCHED_SECONDS + 3))s "http://127.0.0.1:$port/" \
            >"$PROFILE_DIR/perf-$name.wrk" &
        local wpid=$!
        sleep 1
        local t0 t1
        # shellcheck disable=SC2086
        ctx_switches $spids >"$TMP/ctx0-$name"
        # TCP segments and IP bytes on the machine (loopback: wrk, proxy and backend)
        command -v nstat >/dev/null && nstat -n >/dev/null 2>&1
        t0=$(now)
        reqs=$(requests_through perf stat -x, -e "$events" -p "$list" -o "$PROFILE_DIR/perf-stat-$name.csv" \
            -- perf record -q -e cpu-clock -F 999 -g -p "$list" -o "$TMP/perf-$name.data" \
            -- sleep "$PERF_SECONDS")
        t1=$(now)
        { command -v nstat >/dev/null && nstat 2>/dev/null; } >"$TMP/nstat-$name" || true
        # shellcheck disable=SC2086
        ctx_switches $spids >"$TMP/ctx1-$name"
        # Off-CPU: every switch away from the proxy's threads, with its state (R: preempted
        # while runnable, S/D: waiting) and the task that took the CPU.
        local sched_reqs=""
        if perf record -q -e sched:sched_switch -o "$TMP/probe-sched.data" true >/dev/null 2>&1; then
            sched_reqs=$(requests_through perf record -q -e sched:sched_switch -p "$list" \
                -o "$TMP/sched-$name.data" -- sleep "$SCHED_SECONDS")
        fi
        wait "$wpid" || die "perf: $name wrk failed"
        stop_pid "$pid"
        {
            echo "== $name: $reqs requests through the backend in $(awk -v a="$t0" -v b="$t1" \
                'BEGIN {printf "%.1f", b - a}')s of perf stat (wrk -t1 -c$CONNS)"
            awk -F, -v n="$reqs" '$3 != "" && $1 ~ /^[0-9.]+$/ {
                printf "   %-26s %14s %-5s per request %.4f\n", $3, $1, $2, $1 / n }' "$PROFILE_DIR/perf-stat-$name.csv"
            awk -v n="$reqs" '$1 ~ /^(TcpInSegs|TcpOutSegs|IpExtInOctets)$/ {
                printf "   %-26s %14s       per request %.3f (whole machine: wrk, proxy, backend)\n", $1, $2, $2 / n }' \
                "$TMP/nstat-$name"
            echo "   context switches per request by thread (/proc/PID/task/*/status):"
            awk -v n="$reqs" 'NR == FNR { v0[$1] = $3; i0[$1] = $4; next }
                { dv = $3 - v0[$1]; di = $4 - i0[$1]
                  if (dv + di > 0) printf "     %-8s %-16s voluntary %.3f  involuntary %.3f\n", $1, $2, dv / n, di / n }' \
                "$TMP/ctx0-$name" "$TMP/ctx1-$name"
            if [[ -n "$sched_reqs" ]]; then
                echo "   switches away from the proxy per request (sched:sched_switch, ${SCHED_SECONDS}s, $sched_reqs requests), by state and next task:"
                perf script -i "$TMP/sched-$name.data" -F trace 2>/dev/null >"$TMP/sched-$name.txt" || true
                awk -v n="$sched_reqs" 'END { printf "     all                                %.3f\n", NR / n }' \
                    "$TMP/sched-$name.txt"
                awk -v n="$sched_reqs" '
                    { st = $0; sub(/.*prev_state=/, "", st); sub(/ .*/, "", st)
                      nx = $0; sub(/.*next_comm=/, "", nx); sub(/ next_pid=.*/, "", nx)
                      k[st " -> " nx]++ }
                    END { for (x in k) if (k[x] / n >= 0.005) printf "     %-34s %.3f\n", x, k[x] / n }' \
                    "$TMP/sched-$name.txt" | sort -k4,4nr
            fi
            echo "   cpu-clock samples by object (self):"
            perf_report "$TMP/perf-$name.data" 8 --no-children --sort dso
            echo "   top symbols (self):"
            perf_report "$TMP/perf-$name.data" 15 --no-children --sort dso,sym
            echo "   kernel entry points and network work (with children, from kernel call chains):"
            perf_report "$TMP/perf-$name.data" 3000 --children --sort sym |
                awk '/\[k\] (__x64_sys_|do_syscall_64|__do_softirq|net_rx_action|__napi_poll|tcp_v4_rcv|schedule$|exit_to_user_mode)/ && ++k <= 14'
        } >>"$PROFILE_DIR/perf.txt"
    done
    cat "$PROFILE_DIR/perf.txt"
}

# ctx_switches PID...: one line per thread: tid comm voluntary nonvoluntary (context switches).
ctx_switches() {
    local pid t
    for pid in "$@"; do
        for t in /proc/"$pid"/task/*; do
            awk -v tid="${t##*/}" '/^Name:/ { name = $2 } /^voluntary_ctxt_switches:/ { v = $2 }
                /^nonvoluntary_ctxt_switches:/ { i = $2 }
                END { if (name != "") print tid, name, v + 0, i + 0 }' "$t/status" 2>/dev/null || true
        done
    done
}

# perf_report DATA N ARGS...: the first N rows of `perf report --stdio ARGS`, indented
# (awk reads everything: no SIGPIPE under pipefail).
perf_report() {
    local data=$1 n=$2; shift 2
    perf report -i "$data" "$@" --stdio -g none 2>/dev/null |
        awk -v n="$n" '!/^#/ && NF && ++k <= n { print "   " $0 }'
}

# ---------------------------------------------------------------- moves ------

# profile_moves: for each proxy under `wrk -t1 -cCONNS`, uprobes on glibc's memmove (memcpy's
# x86-64 variants are aliases of it) and malloc record every call's size and return address
# for MOVES_SECONDS; bench/moves_table.py prints calls and bytes per request side by side,
# and director's call sites by bytes. A uprobe costs a trap per call, so the proxy runs far
# slower meanwhile: the counts per request are what matter.
profile_moves() {
    local libc name pid spids list port fn probes=()
    libc=$(ldd "$DIRECTOR_BIN" | awk '/libc\.so\.6/ {print $3}')
    perf probe -q -d 'probe_libc:*' >/dev/null 2>&1 || true
    if [[ -z "$libc" ]] || ! perf probe -q -x "$libc" 'malloc size=%di:u64 ret=+0(%sp):u64' >/dev/null 2>&1; then
        log "moves: cannot place uprobes here (perf probe, root and uprobes are needed); skipped" |
            tee "$PROFILE_DIR/moves.txt"
        return 0
    fi
    # glibc's x86-64 memmove variants (it picks one for the CPU at start-up); those this libc
    # lacks fail to be placed and are left out.
    for fn in __memmove_{avx512,evex,avx,sse2}_unaligned{,_erms} __memmove_avx_unaligned_erms_rtm \
        __memmove_ssse3; do
        perf probe -q -x "$libc" "$fn len=%dx:u64 ret=+0(%sp):u64" >/dev/null 2>&1 && probes+=("$fn")
    done
    [[ ${#probes[@]} -gt 0 ]] || die "moves: no memmove variant of $libc could be probed"
    local dir=$TMP/moves names=()
    mkdir -p "$dir"
    for name in $PROXIES; do
        start_warmed moves "$name"
        wrk -t1 -c"$CONNS" -d$((MOVES_SECONDS + 8))s "http://127.0.0.1:$port/" >/dev/null &
        local wpid=$! ppid r0 r1 reqs
        # The probes record only between "enable" and "disable" on perf's control fifo, and
        # the requests are counted just inside those two (two status requests, a few ms each).
        rm -f "$dir/ctl" "$dir/ack"; mkfifo "$dir/ctl" "$dir/ack"
        perf record -q -D -1 --control "fifo:$dir/ctl,$dir/ack" -e 'probe_libc:*' -p "$list" \
            -o "$dir/$name.data" -- sleep $((MOVES_SECONDS + 6)) &
        ppid=$!
        exec {ctl}>"$dir/ctl" {ack}<"$dir/ack"
        sleep 1
        echo enable >&"$ctl"; read -r -t 10 _ <&"$ack" || die "moves: perf did not enable its probes"
        r0=$(backend_requests)
        sleep "$MOVES_SECONDS"
        r1=$(backend_requests)
        echo disable >&"$ctl"; read -r -t 10 _ <&"$ack" || die "moves: perf did not disable its probes"
        exec {ctl}>&- {ack}<&-
        wait "$ppid" "$wpid" || true
        reqs=$((r1 - r0 - 1))   # less the second status request
        echo "$reqs" >"$dir/$name.requests"
        perf script -i "$dir/$name.data" -F event,trace >"$dir/$name.trace" 2>/dev/null
        if [[ $name == director ]]; then
            readlink -f "$DIRECTOR_BIN" >"$dir/$name.bin"
            cp "/proc/$(head -n 1 <<<"$spids")/maps" "$dir/$name.maps"
        fi
        stop_pid "$pid"
        names+=("$name")
        log "moves: $name: $reqs requests in the counted window"
    done
    perf probe -q -d 'probe_libc:*' >/dev/null 2>&1 || true
    python3 "$BENCH_DIR/moves_table.py" "$dir" "${names[@]}" | tee "$PROFILE_DIR/moves.txt"
}

# ---------------------------------------------------------------- main -------

profile_main() {
    cd "$REPO_ROOT"
    LEGS=()
    for l in $PROXIES; do LEGS+=("$l"); done
    if { part callgrind || part cachesim; } && [[ " ${LEGS[*]} " != *" director "* ]]; then LEGS+=(director); fi
    ensure_tools
    ensure_director
    raise_fd_limit
    TMP=$(mktemp -d /tmp/director-profile.XXXXXX)
    RAW=$TMP/raw
    mkdir -p "$RAW" "$PROFILE_DIR"
    cd "$TMP"
    local busy rev
    busy=$(busy_pct 2)
    rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $rev, $(nproc) cores,"
        echo "busy before: ${busy}%, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "binary: $DIRECTOR_BIN"
        echo "haproxy $(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), $(valgrind --version 2>/dev/null), $(strace -V 2>/dev/null | head -n 1)"
    } | tee "$PROFILE_DIR/conditions.txt"
    log "backend nginx on :$BACKEND_PORT"
    start_backend
    if part callgrind; then profile_callgrind; fi
    if part cachesim; then profile_cachesim; fi
    if part strace; then profile_strace; fi
    if part perf; then profile_perf; fi
    if part moves; then profile_moves; fi
    log "results in $PROFILE_DIR"
}

profile_main "$@"

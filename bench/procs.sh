# Process helpers shared by bench/run.sh, bench/tls.sh and bench/soak.sh (sourced, not run).

# stop_pid PID: TERM its process group, wait up to 5 s, then KILL. PID is the leader of a
# group started with setsid, so everything it spawned goes with it.
stop_pid() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# trap_cleanup: on exit, interrupt or termination, stop the current client ($CHILD), every
# service in $PIDS and remove $TMP, keeping the exit status (130 / 143 for INT / TERM). The
# caller defines log() and those three globals.
trap_cleanup() {
    trap _cleanup EXIT
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM
}

_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n "$CHILD" ]] && stop_pid "$CHILD"
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    [[ -n "$TMP" && -d "$TMP" ]] && rm -rf "$TMP"
    exit "$rc"
}

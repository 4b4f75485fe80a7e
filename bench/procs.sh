# Process helpers shared by bench/run.sh and bench/soak.sh (sourced, not run).

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

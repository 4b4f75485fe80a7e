#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a figure that does not
# move with the machine's load, for comparing two builds (or a setting on and off) when
# wall-clock runs are too noisy to show a few percent. It does not replace bench/run.sh:
# it ignores the kernel (about two thirds of a proxied request's CPU). valgrind counts each
# iteration of a `rep stos`/`rep movs` as one instruction, and glibc's memset uses
# `rep stosb` from 2 KiB up: a 3 KiB memset counts ~3,100 instructions here but ~180 with
# glibc's vector loop (bench/profile.sh's CG_REP_LOOPS turns rep off for that reason).
#
# Usage: bash bench/icount.sh [BIN...]
#   BIN defaults to target/release/director. For each binary, three figures: a cache hit
#   (1 KiB object, `cache.enabled: true`), a miss with the cache on (the backend answers
#   `Cache-Control: no-store`) and the same miss with the cache off.
# Options (env vars): REQUESTS=3000 (measured, after 300 unmeasured), BASE_PORT=19400.
#
# Needs valgrind and python3. The backend is a small Python HTTP server; its speed does not
# matter, only director's instructions are counted.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-3000}
BASE_PORT=${BASE_PORT:-19400}
PROXY_PORT=$BASE_PORT
ORIGIN_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
BINS=("$@")
[[ ${#BINS[@]} -gt 0 ]] || BINS=(target/release/director)
command -v valgrind >/dev/null || { echo "icount: valgrind is required (apt-get install valgrind)" >&2; exit 1; }

TMP=$(mktemp -d)
cleanup() {
    pkill -P $$ 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/origin.py" <<EOF
import http.server, socket
class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        # Head and body go out in two writes: without this, each waits for a delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        body = b"x" * 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if self.path.startswith("/nocache") else "max-age=3600")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", $ORIGIN_PORT), Origin).serve_forever()
EOF
cat >"$TMP/client.py" <<EOF
import http.client, sys
count, path = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", $PROXY_PORT)
for _ in range(count):
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
EOF
for cache in true false; do
    cat >"$TMP/cache-$cache.yaml" <<EOF
proxy:
  listen: ["127.0.0.1:$PROXY_PORT"]
  workers: 1
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
routes:
  - { path_prefix: "/", cluster: bench }
clusters:
  bench:
    cache: { enabled: $cache, max_memory: 64MiB }
    backends:
      - { name: b1, url: "http://127.0.0.1:$ORIGIN_PORT", capacity: 1000 }
EOF
done
python3 "$TMP/origin.py" &

# count BIN CONFIG PATH: prints the instructions per request.
count() {
    local bin=$1 config=$2 path=$3 pid out total
    out="$TMP/callgrind.out"
    rm -f "$out"*
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$config" \
        >"$TMP/director.log" 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT$path" && break
        sleep 0.2
    done
    python3 "$TMP/client.py" 300 "$path"
    callgrind_control -z "$pid" >/dev/null 2>&1
    python3 "$TMP/client.py" "$REQUESTS" "$path"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -KILL "$pid"  # the dump is written; no graceful shutdown to wait for
    wait "$pid" 2>/dev/null || true
    total=$(grep -h '^summary:' "$(ls -t "$out".* | head -1)" | awk '{print $2}')
    echo $((total / REQUESTS))
}

printf '%-40s %12s %12s %12s %9s\n' binary "hit" "miss(on)" "miss(off)" "on/off"
for bin in "${BINS[@]}"; do
    hit=$(count "$bin" "$TMP/cache-true.yaml" /cacheable)
    on=$(count "$bin" "$TMP/cache-true.yaml" /nocache)
    off=$(count "$bin" "$TMP/cache-false.yaml" /nocache)
    printf '%-40s %12s %12s %12s %9s\n' "$bin" "$hit" "$on" "$off" \
        "$(python3 -c "print(f'{$on / $off:.3f}')")"
done
echo "(user-space instructions per request, $REQUESTS keep-alive GETs on one connection)"

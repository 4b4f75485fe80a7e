#!/usr/bin/env python3
"""Memory per cached object: director (release binary, one worker) in front of a small
Python origin that answers every URL with OBJECT_BYTES of cacheable body; OBJECTS distinct
URLs are requested once each, then director's RSS growth and its own count of stored bytes
(`GET /api/v1/clusters/c/cache`) are divided by the objects stored.

Run from the repo root:  python3 bench/cache_memory.py
Options (env vars):      OBJECTS=20000 OBJECT_BYTES=1024 DIRECTOR_BIN=target/release/director
Loopback only, bounded: everything it starts is stopped on exit.
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

OBJECTS = int(os.environ.get("OBJECTS", "20000"))
OBJECT_BYTES = int(os.environ.get("OBJECT_BYTES", "1024"))
BIN = os.path.abspath(os.environ.get("DIRECTOR_BIN", "target/release/director"))


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"x" * OBJECT_BYTES

    def setup(self):
        super().setup()
        # Head and body go out in separate writes: without this, Nagle and delayed ACKs add
        # 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", "max-age=3600")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    proxy, admin = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="director-cachemem.")
    config = os.path.join(tmp, "config.yaml")
    with open(config, "w") as f:
        f.write(
            f"proxy: {{ listen: [\"127.0.0.1:{proxy}\"], workers: 1 }}\n"
            f"admin: {{ listen: \"127.0.0.1:{admin}\" }}\n"
            "routes: [{ path_prefix: /, cluster: c }]\n"
            "clusters:\n  c:\n    cache: { enabled: true, max_memory: 1GiB }\n"
            f"    backends: [{{ name: o, url: \"http://127.0.0.1:{origin.server_address[1]}\", capacity: 64 }}]\n"
        )
    director = subprocess.Popen([BIN, "--config", config], cwd=tmp, stderr=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)
                conn.request("GET", "/warm")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        before = rss_kib(director.pid)
        for i in range(OBJECTS):
            if os.environ.get("TRACE") and i % 250 == 0:
                print(i, time.time(), flush=True)
            conn.request("GET", f"/object/{i}")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                print(f"unexpected status {r.status}", file=sys.stderr)
                return 1
        time.sleep(0.5)
        after = rss_kib(director.pid)
        a = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        a.request("GET", "/api/v1/clusters/c/cache")
        stats = json.loads(a.getresponse().read())
        objects = stats["objects"]
        print(
            f"objects stored {objects} of {OBJECTS} requested, body {OBJECT_BYTES} B each\n"
            f"counted by the cache: {stats['bytes']} B = {stats['bytes'] / objects:.0f} B per object "
            f"({stats['bytes'] / objects - OBJECT_BYTES:.0f} B over the body)\n"
            f"director RSS {before} KiB -> {after} KiB: {(after - before) * 1024 / objects:.0f} B per object "
            f"({(after - before) * 1024 / objects - OBJECT_BYTES:.0f} B over the body)"
        )
        return 0
    finally:
        director.terminate()
        director.wait(timeout=10)
        origin.shutdown()


if __name__ == "__main__":
    sys.exit(main())

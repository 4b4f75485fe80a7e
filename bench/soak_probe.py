"""What the soak test reads about director from outside: its memory and sockets from /proc,
and its capacity counters and backend health from the admin API (GET /api/v1/clusters).

Linux only (it reads /proc/PID/status, /proc/PID/fd and /proc/net/tcp{,6}).
"""

import asyncio
import json
import os

# /proc/net/tcp state codes.
TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING",
}


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB; (0, 0) when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) so far; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _tcp_table() -> dict[str, tuple[str, int, int]]:
    """inode -> (state, local port, remote port) for every TCP socket on the host."""
    table = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                    table[inode] = (
                        TCP_STATES.get(state, state),
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                    )
        except OSError:
            pass
    return table


def sockets(pid: int, backend_ports: set[int], proxy_port: int) -> dict:
    """Director's open descriptors: total, TCP sockets to backends, client connections,
    and how many of its sockets sit in CLOSE_WAIT (the peer closed, director did not)."""
    out = {"fds": 0, "to_backends": 0, "clients": 0, "close_wait": 0, "other_tcp": 0}
    inodes = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        out["fds"] += 1
        if target.startswith("socket:["):
            inodes.append(target[8:-1])
    table = _tcp_table()
    for inode in inodes:
        entry = table.get(inode)
        if entry is None:
            continue  # UNIX socket, epoll, eventfd...
        state, lport, rport = entry
        if state == "LISTEN":
            continue
        if state == "CLOSE_WAIT":
            out["close_wait"] += 1
        if rport in backend_ports:
            out["to_backends"] += 1
        elif lport == proxy_port:
            out["clients"] += 1
        else:
            out["other_tcp"] += 1
    return out


async def admin_get(admin: tuple[str, int], path: str, timeout: float = 5.0):
    """GET path on the admin listener; the parsed JSON body, or raises."""
    host, port = admin
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"admin GET {path}: status {status.decode()}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return json.loads(body)


def _dechunk(data: bytes) -> bytes:
    out, i = [], 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[j + 2 : j + 2 + size])
        i = j + 2 + size + 2


def capacity_problems(clusters: list) -> list[str]:
    """Every capacity counter that is not back at 0: the cluster's tokens in use, each
    bucket's in_use and queued, the cluster's and each backend's current in-flight and queued
    gauges. Empty when everything was returned."""
    bad = []
    for c in clusters:
        name = c["name"]
        if c.get("in_use", 0):
            bad.append(f"{name}.in_use={c['in_use']}")
        for b in c.get("buckets", []):
            for key in ("in_use", "queued"):
                if b.get(key, 0):
                    bad.append(f"{name}.bucket[{b['name']}].{key}={b[key]}")
        for key in ("in_flight", "queued"):
            cur = c["stats"][key]["current"]
            if cur:
                bad.append(f"{name}.stats.{key}.current={cur}")
        for be in c.get("backends", []):
            for key in ("in_flight", "queued"):
                cur = be["stats"][key]["current"]
                if cur:
                    bad.append(f"{name}.{be['name']}.stats.{key}.current={cur}")
    return bad


def capacity_line(clusters: list) -> str:
    """One compact line per cluster: in_use, queued (buckets), in-flight per backend."""
    parts = []
    for c in clusters:
        queued = sum(b.get("queued", 0) for b in c.get("buckets", []))
        fl = " ".join(f"{b['name']}={b['stats']['in_flight']['current']}" for b in c.get("backends", []))
        parts.append(
            f"{c['name']}: in_use {c.get('in_use', 0)} queued {queued} "
            f"in_flight {c['stats']['in_flight']['current']} [{fl}]"
        )
    return "; ".join(parts)


def peaks_line(clusters: list) -> str:
    """The highest in-flight and queued counts each cluster reached during the run."""
    parts = []
    for c in clusters:
        queued = max((b.get("queued_max", 0) for b in c.get("buckets", [])), default=0)
        parts.append(f"{c['name']} in_flight {c['stats']['in_flight']['max']} queued {queued}")
    return "; ".join(parts)

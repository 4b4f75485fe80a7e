#!/usr/bin/env python3
"""Open many idle HTTP/1.1 keep-alive connections to a server and hold them.

Each connection sends one `GET` and reads the complete response, then stays open and
idle. After all connections are established they are held for `--hold` seconds; if
`--pid` is given, the memory of that (server) process is read from /proc/PID/status
before, while holding (VmRSS and the peak VmHWM) and after closing.

    python3 bench/idle_conns.py 127.0.0.1 18081 -n 10000 --hold 3 --pid 12345

Works against any host:port. Exits 0 if at least one connection succeeded, 2 if none
did, 1 on a usage error. Only standard library; Python 3.8+.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import sys
import time

FD_MARGIN = 64  # descriptors kept free for the interpreter itself


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def proc_mem_kib(pid: int | None) -> dict[str, int] | None:
    """VmRSS / VmHWM of a process, in KiB, or None if unavailable."""
    if pid is None:
        return None
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])  # "1234 kB"
    except OSError:
        return None
    return out or None


class BadResponse(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.x response; return (status, server_keeps_connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BadResponse(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers (if any) end with an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            await reader.readexactly(size + 2)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304) or 100 <= status < 200:
        pass
    else:
        raise BadResponse("response without length would need connection close")
    return status, keep


class Stats:
    def __init__(self) -> None:
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_close = 0  # responses announcing Connection: close


async def open_one(host: str, port: int, request: bytes, timeout: float,
                   sem: asyncio.Semaphore, stats: Stats, conns: list) -> None:
    async with sem:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout)
            writer.write(request)
            await writer.drain()
            status, keep = await asyncio.wait_for(read_response(reader), timeout)
            stats.statuses[status] += 1
            if not keep:
                stats.server_close += 1
            stats.ok += 1
            conns.append((reader, writer))
            writer = None  # kept open
        except Exception as e:  # noqa: BLE001 - every failure is a counted result
            name = type(e).__name__
            if isinstance(e, OSError) and e.errno is not None:
                name = f"{name}(errno {e.errno})"
            stats.errors[name] += 1
        finally:
            if writer is not None:
                writer.close()


async def run(args: argparse.Namespace) -> dict:
    limit = raise_fd_limit(args.connections + FD_MARGIN + 64)
    n = args.connections
    capped = False
    if n > limit - FD_MARGIN:
        n = max(0, limit - FD_MARGIN)
        capped = True
        print(f"note: open-file limit {limit}: opening {n} instead of "
              f"{args.connections} connections", file=sys.stderr)

    hostname = args.host_header or (f"{args.host}:{args.port}")
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {hostname}\r\n"
               f"User-Agent: idle_conns.py\r\nAccept: */*\r\n\r\n").encode()

    result: dict = {
        "label": args.label, "target": f"{args.host}:{args.port}",
        "requested": args.connections, "attempted": n, "capped_by_fd_limit": capped,
        "fd_limit": limit, "hold_s": args.hold, "pid": args.pid,
    }
    mem_before = proc_mem_kib(args.pid)

    stats = Stats()
    conns: list = []
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(open_one(args.host, args.port, request,
                                            args.connect_timeout, sem, stats, conns))
             for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        stats.errors["OverallTimeout"] += len(pending)
    t_open = time.monotonic() - t0
    print(f"[{args.label}] opened {stats.ok}/{n} keep-alive connections in {t_open:.2f}s"
          + (f"; failures: {dict(stats.errors)}" if stats.errors else ""), flush=True)

    await asyncio.sleep(args.hold)
    still_open = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    mem_held = proc_mem_kib(args.pid)

    t1 = time.monotonic()
    for _, w in conns:
        w.close()
    await asyncio.wait_for(
        asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True),
        timeout=30)
    t_close = time.monotonic() - t1
    await asyncio.sleep(args.settle)
    mem_after = proc_mem_kib(args.pid)

    result.update({
        "ok": stats.ok, "failed": n - stats.ok, "errors": dict(stats.errors),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "server_announced_close": stats.server_close,
        "still_open_after_hold": still_open,
        "open_s": round(t_open, 3), "close_s": round(t_close, 3),
    })
    if mem_held is not None:
        before = (mem_before or {}).get("VmRSS")
        held = mem_held.get("VmRSS")
        result.update({
            "rss_before_kib": before,
            "rss_held_kib": held,
            "peak_rss_kib": mem_held.get("VmHWM"),
            "rss_after_close_kib": (mem_after or {}).get("VmRSS"),
            "per_conn_kib": (round((held - before) / stats.ok, 2)
                             if before is not None and held is not None and stats.ok
                             else None),
        })
    return result


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("-n", "--connections", type=int, default=10000)
    p.add_argument("--hold", type=float, default=3.0, help="seconds to hold them idle")
    p.add_argument("--concurrency", type=int, default=256,
                   help="connections being opened at once")
    p.add_argument("--path", default="/")
    p.add_argument("--host-header", default=None)
    p.add_argument("--pid", type=int, default=None,
                   help="server pid whose VmRSS/VmHWM to report")
    p.add_argument("--label", default="server")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="per connection: connect, and read of the response")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="overall limit for opening all connections")
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds after closing before the last memory reading")
    p.add_argument("--json", default=None, help="also write the result to this file")
    args = p.parse_args()
    if args.connections < 1 or args.concurrency < 1 or args.hold < 0:
        p.error("connections and concurrency must be >= 1, hold >= 0")

    result = asyncio.run(run(args))

    r = result
    print(f"[{r['label']}] {r['ok']} of {r['attempted']} connections succeeded "
          f"({r['failed']} failed), {r['still_open_after_hold']} still open after "
          f"{r['hold_s']:g}s idle; statuses {r['statuses']}")
    if "rss_held_kib" in r:
        print(f"[{r['label']}] pid {r['pid']}: RSS before {mib(r['rss_before_kib'])}, "
              f"with {r['ok']} idle conns {mib(r['rss_held_kib'])}, "
              f"peak (VmHWM) {mib(r['peak_rss_kib'])}, "
              f"after close {mib(r['rss_after_close_kib'])}"
              + (f"; ~{r['per_conn_kib']:.1f} KiB per connection"
                 if r["per_conn_kib"] is not None else ""))
    elif args.pid is not None:
        print(f"[{r['label']}] could not read /proc/{args.pid}/status", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0 if r["ok"] > 0 else 2


if __name__ == "__main__":
    sys.exit(main())

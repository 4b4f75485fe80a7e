"""The soak test's driver (run by bench/soak.sh; see bench/README.md, "Soak").

    python3 soak.py freeport              a free TCP port below the ephemeral range (for a
                                          backend that must come back on the same port)
    python3 soak.py selfcheck             the wrong-client detector must fire when the faulty
                                          backends are used without director in between
    python3 soak.py drive --seconds S ... traffic, faults and checks against a running director

`drive` runs every traffic group of soak_traffic.py for S seconds, kills and restarts one
backend of the main cluster all along, samples director's memory, then stops the traffic,
lets director settle and checks the invariants. It prints a summary block and exits 1 when
an invariant failed (2 on a usage or set-up error).
"""

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_traffic as traffic  # noqa: E402
from soak_probe import admin_get, alive, capacity_problems, cpu_seconds, rss_kib, sockets  # noqa: E402

from soak_report import STEADY, render  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def freeport() -> int:
    """A port below the kernel's ephemeral range that is free now: a backend restarted on it
    can't find it taken by some outgoing connection meanwhile."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except OSError:
        low = 32768
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free port found below the ephemeral range")


class Flapper:
    """The main cluster's backend `flap`: a soak_servers.py process killed and restarted on
    the same port, alternately with SIGKILL and with SIGTERM (which resets every connection)."""

    def __init__(self, ctx: traffic.Ctx, port: int, log_path: str):
        self.ctx, self.port, self.log_path = ctx, port, log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = Counter()
        self.restart_failures = 0

    async def spawn(self) -> bool:
        for _ in range(40):
            with open(self.log_path, "ab") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, os.path.join(HERE, "soak_servers.py"), "one", "--run", self.ctx.run,
                    "--name", "flap", "--port", str(self.port), stdout=asyncio.subprocess.PIPE, stderr=log,
                )
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), 10)
            except asyncio.TimeoutError:
                line = b""
            if line.startswith(b"flap listening"):
                return True
            await self.stop()
            await asyncio.sleep(0.25)  # the old process may still hold the port for a moment
        self.restart_failures += 1
        return False

    async def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def run(self) -> None:
        if not await self.spawn():
            raise SystemExit(f"flap backend could not listen on 127.0.0.1:{self.port}")
        modes = itertools.cycle([("SIGKILL", signal.SIGKILL), ("RST", signal.SIGTERM)])
        while not self.ctx.stop.is_set():
            try:
                await asyncio.wait_for(self.ctx.stop.wait(), random.uniform(8, 15))
                break
            except asyncio.TimeoutError:
                pass
            name, sig = next(modes)
            entry = [time.monotonic(), 0.0]
            self.ctx.flaps.append(entry)
            await self.stop(sig)
            self.kills[name] += 1
            await asyncio.sleep(random.uniform(1, 3))
            await self.spawn()
            entry[1] = time.monotonic()


class Monitor:
    """Samples director's RSS every second and its backends' health every two."""

    def __init__(self, pid: int, admin: tuple[str, int]):
        self.pid, self.admin = pid, admin
        self.rss_max = 0
        self.offline_seen = Counter()
        self.admin_errors = 0
        self.died_at: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        tick = 0
        while not stop.is_set():
            rss, _ = rss_kib(self.pid)
            self.rss_max = max(self.rss_max, rss)
            if not alive(self.pid) and self.died_at is None:
                self.died_at = time.monotonic()
            if tick % 2 == 0:
                try:
                    for c in await admin_get(self.admin, "/api/v1/clusters"):
                        for b in c["backends"]:
                            if (c["name"], b["name"]) in STEADY and b["health"] != "online":
                                self.offline_seen[f"{c['name']}.{b['name']}"] += 1
                except Exception:  # noqa: BLE001 - counted; the final checks say what failed
                    self.admin_errors += 1
            tick += 1
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass


async def at(t0: float, offset: float) -> None:
    await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))


async def drive(args) -> int:
    run = args.run
    proxy, admin = ("127.0.0.1", args.proxy_port), ("127.0.0.1", args.admin_port)
    with open(args.ports_file) as f:
        ports = json.load(f)
    backend_ports = set(ports.values()) | {args.flap_port} | ({args.fpm_port} if args.fpm_port else set())
    ctx = traffic.Ctx(run, proxy, bool(args.fpm_port))
    flapper = Flapper(ctx, args.flap_port, os.path.join(args.tmp, "flap.log"))
    monitor = Monitor(args.pid, admin)
    mon_stop = asyncio.Event()
    seconds = args.seconds
    warm = min(30.0, max(5.0, seconds * 0.1))

    groups = [traffic.normal(ctx, args.rate / args.conns) for _ in range(args.conns)]
    groups += [traffic.slow_read(ctx) for _ in range(3)]
    groups += [traffic.never_read(ctx) for _ in range(2)]
    groups += [traffic.abort_read(ctx, 3.0)]
    groups += [traffic.upload(ctx) for _ in range(2)]
    groups += [traffic.faulty(ctx, 8.0) for _ in range(2)]
    groups += [traffic.burst(ctx, 10.0, 24)]
    if ctx.fcgi:
        groups += [traffic.fcgi(ctx, 8.0)]
    flap_task = asyncio.ensure_future(flapper.run())
    mon_task = asyncio.ensure_future(monitor.run(mon_stop))
    await asyncio.sleep(0.5)  # the flap backend is up before traffic starts
    t0 = time.monotonic()
    cpu0 = {"director": cpu_seconds(args.pid), "backends": cpu_seconds(args.backends_pid), "driver": _own_cpu()}
    tasks = [asyncio.ensure_future(g) for g in groups]
    try:
        await at(t0, warm)
        rss_start, _ = rss_kib(args.pid)
        socks_start = sockets(args.pid, backend_ports, args.proxy_port)
        await at(t0, warm + (seconds - warm) / 2)
        rss_mid, _ = rss_kib(args.pid)
        await at(t0, seconds - 1)
        rss_end, _ = rss_kib(args.pid)
        await at(t0, seconds)
        answered_at_stop = sum(sum(c.values()) for c in ctx.tally.by_group.values())
        cpu = {
            "director": cpu_seconds(args.pid) - cpu0["director"],
            "backends": cpu_seconds(args.backends_pid) - cpu0["backends"],
            "driver": _own_cpu() - cpu0["driver"],
        }
        ctx.stop.set()
        t_stop = time.monotonic()
        # Groups finish the exchange they are in (a slow reader may need a while); the rest
        # are cancelled, which resets their connections.
        done, pending = await asyncio.wait(tasks, timeout=20)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                print(f"traffic task failed: {t.exception()!r}", file=sys.stderr)
        await flap_task
    finally:
        ctx.stop.set()
        for t in tasks:
            t.cancel()
    wind_down = time.monotonic() - t_stop

    # Settle: wait (bounded) until every counter and socket is back, then look once more.
    clusters, problems, socks = [], ["not read"], {}
    deadline = time.monotonic() + args.settle
    while True:
        try:
            clusters = await admin_get(admin, "/api/v1/clusters")
            problems = capacity_problems(clusters)
        except Exception as e:  # noqa: BLE001
            problems = [f"admin API: {e}"]
        socks = sockets(args.pid, backend_ports, args.proxy_port)
        settled = not problems and socks["to_backends"] == 0 and socks["close_wait"] == 0 and socks["clients"] == 0
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    settle_secs = time.monotonic() - t_stop
    mon_stop.set()
    await mon_task
    rss_settled, hwm = rss_kib(args.pid)
    await flapper.stop()

    report = {
        "run": run, "seconds": seconds, "warm": warm, "pid": args.pid, "fcgi": ctx.fcgi,
        "tally": ctx.tally, "answered_at_stop": answered_at_stop, "flapper": flapper, "monitor": monitor,
        "rss": (rss_start, rss_mid, rss_end, rss_settled, max(hwm, monitor.rss_max)),
        "socks_start": socks_start, "socks": socks, "clusters": clusters, "problems": problems,
        "settle_secs": settle_secs, "wind_down": wind_down, "settled": settled, "log": args.director_log,
        "cpu": cpu,
    }
    return print_summary(report, args)


# actix-http logs at ERROR level when a response body stream fails; the faulty backends
# cause that on purpose (a bad chunk, a body cut short), so those lines are only counted.
# actix-http 3.20 wraps the cause (`actix_http::Error { kind: Body, cause: Some("...") }`),
# earlier versions print it quoted: both carry these two parts on one line.
EXPECTED_ERROR = ("Response payload stream error:", '"backend sent a bad response')


def _own_cpu() -> float:
    """This driver's CPU time, with the flap backends it started and waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def director_log_problems(path: str | None) -> tuple[list[str], int]:
    """Panics and unexpected ERROR lines in director's log, and the count of the expected
    ones (warnings about failed backends are expected and not read)."""
    bad, expected = [], 0
    if not path:
        return bad, expected
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if "panicked" in line:
                    bad.append(line.rstrip())
                elif " ERROR " in line:
                    if all(part in line for part in EXPECTED_ERROR):
                        expected += 1
                    else:
                        bad.append(line.rstrip())
    except OSError:
        pass
    return bad, expected


def print_summary(r: dict, args) -> int:
    problems, expected = director_log_problems(r["log"])
    lines, ok = render(r, problems, expected, args)
    text = "\n".join(lines)
    print(text, flush=True)
    if args.summary_file:
        with open(args.summary_file, "w") as f:
            f.write(text + "\n")
    return 0 if ok else 1


async def selfcheck() -> int:
    """Runs the faulty group straight against one faulty backend for 3 s. Without a proxy
    that drops what a backend sends beyond a response, the client reads the smuggled poison
    as the answer to its next request, so the detector must count wrong-client answers;
    if it counts none, a PASS of the soak would mean nothing."""
    from soak_servers import Server

    server = Server("f1", "0000", bad=True)
    port = await server.start(0)
    ctx = traffic.Ctx("0000", ("127.0.0.1", port), False)
    task = asyncio.ensure_future(traffic.faulty(ctx, 100.0))
    await asyncio.sleep(3)
    ctx.stop.set()
    await asyncio.wait_for(task, 20)
    server.reset_all()
    await asyncio.sleep(0.2)  # the handlers see their connections go and end
    n = sum(sum(c.values()) for c in ctx.tally.by_group.values())
    print(f"self-check: {ctx.tally.wrong} wrong-client answers detected in {n} direct exchanges "
          f"with a faulty backend ({'the detector works' if ctx.tally.wrong else 'DETECTOR BROKEN'})")
    return 0 if ctx.tally.wrong else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("freeport")
    sub.add_parser("selfcheck")
    d = sub.add_parser("drive")
    d.add_argument("--run", required=True, help="run id (hex), part of every token")
    d.add_argument("--seconds", type=float, default=600)
    d.add_argument("--proxy-port", type=int, required=True)
    d.add_argument("--admin-port", type=int, required=True)
    d.add_argument("--pid", type=int, required=True, help="director's process id")
    d.add_argument("--backends-pid", type=int, default=0, help="soak_servers.py all's process id")
    d.add_argument("--ports-file", required=True, help="JSON written by soak_servers.py all")
    d.add_argument("--flap-port", type=int, required=True)
    d.add_argument("--fpm-port", type=int, default=0, help="php-fpm's port; 0: no FastCGI traffic")
    d.add_argument("--tmp", required=True)
    d.add_argument("--rate", type=float, default=250.0, help="normal requests per second in total")
    d.add_argument("--conns", type=int, default=12, help="keep-alive connections of the normal group")
    d.add_argument("--settle", type=float, default=30.0, help="longest wait for counters to settle")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--director-log")
    d.add_argument("--summary-file")
    args = p.parse_args()
    if args.cmd == "freeport":
        print(freeport())
        return
    if args.cmd == "selfcheck":
        sys.exit(asyncio.run(selfcheck()))
    sys.exit(asyncio.run(drive(args)))


if __name__ == "__main__":
    main()

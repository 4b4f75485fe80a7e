"""Traffic groups of the soak test: each is an asyncio task (or a few) that sends requests
through director until `ctx.stop` is set, checks every answer against its own token, and
records the outcome in `ctx.tally`.

Groups (path prefix -> cluster, see the config written by bench/soak.sh):
  normal        /app/  -> main    GET/POST, small and medium bodies, keep-alive connections
  slow-read     /app/  -> main    512 KiB answers read at ~64 KiB/s through an 8 KiB buffer
  never-read    /app/  -> main    a 4 MiB answer never read; the connection is held, then reset
  abort-read    /app/  -> main    part of a 256 KiB answer read, then the connection reset
  upload-*      /app/  -> main    stall (expects 408), trickle (pauses below the timeout,
                                  expects 200), abort (reset half-way through the body)
  faulty:KIND   /bad/  -> faulty  backends that break HTTP in the ways soak_servers lists
  burst         /tight/-> tight   bursts beyond capacity: queueing, 503 queue full, 504
  burst-abort   /tight/-> tight   clients that give up while queued
  fcgi          /php/  -> php     GET and POST through php-fpm (when php-fpm is available)
"""

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict

from soak_http import (
    Client,
    Response,
    abort,
    body_for,
    classify_exc,
    crc,
    make_socket,
    read_response,
    token_re,
    upload_for,
)


class Tally:
    """Outcomes by group, wrong-client and corrupt deliveries, with a few examples of each."""

    def __init__(self, run: str):
        self.run = run
        self.re = token_re(run)
        self.body_re = token_re(run, in_body=True)
        self.by_group: dict[str, Counter] = defaultdict(Counter)
        self.causes: dict[str, Counter] = defaultdict(Counter)
        self.wrong = 0
        # Of those, answers that were a backend's late unsolicited bytes (see README, Soak).
        self.wrong_late = 0
        self.corrupt = 0
        self.examples: list[str] = []
        self.intended_aborts = Counter()

    def example(self, text: str) -> None:
        if len(self.examples) < 12:
            self.examples.append(text)

    def foreign(self, resp: Response, token: str) -> list[bytes]:
        """Tokens in the answer that are not this request's own."""
        own = token.encode()
        seen = []
        for values in resp.headers.values():
            for v in values:
                seen += self.re.findall(v.encode("latin-1"))
        seen += self.body_re.findall(resp.body[:4096])
        return [t for t in seen if t != own]

    def record(self, group: str, resp: Response, token: str, fault: str, expect: dict | None = None):
        """Counts one exchange. `expect` (for answers from a backend): size, method, upload."""
        outcome = f"conn:{resp.error}" if resp.error else str(resp.status)
        self.by_group[group][outcome] += 1
        foreign = self.foreign(resp, token)
        if foreign:
            self.wrong += 1
            if any(t.startswith(b"L") for t in foreign):
                self.wrong_late += 1
            self.example(f"WRONG CLIENT {group} token={token} got={foreign[:3]} status={resp.status}")
        elif resp.error is None and 200 <= resp.status < 300 and expect is not None:
            problem = self.verify(resp, token, expect)
            if problem:
                self.corrupt += 1
                self.example(f"CORRUPT {group} token={token}: {problem}")
        if resp.error or resp.status >= 400:
            self.causes[group][f"{outcome} <- {fault}"] += 1

    @staticmethod
    def verify(resp: Response, token: str, expect: dict) -> str | None:
        if "content-length" in resp.headers and "transfer-encoding" in resp.headers:
            return "both Content-Length and Transfer-Encoding (RFC 9112 6.3: drop Content-Length)"
        if resp.header("x-soak-token") != token or resp.header("x-soak-path") != token:
            return f"token headers {resp.header('x-soak-token')!r}/{resp.header('x-soak-path')!r}"
        if expect.get("method") != "HEAD" and resp.body != body_for(token, expect["size"]):
            return f"body of {len(resp.body)} bytes is not the expected {expect['size']}"
        up = expect.get("upload")
        if up is not None and (resp.header("x-soak-up-len"), resp.header("x-soak-up-crc")) != (
            str(len(up)),
            str(crc(up)),
        ):
            return f"upload echo {resp.header('x-soak-up-len')}/{resp.header('x-soak-up-crc')} != {len(up)}/{crc(up)}"
        return None


class Ctx:
    """Shared state of one soak run."""

    def __init__(self, run: str, proxy: tuple[str, int], fcgi: bool):
        self.run = run
        self.proxy = proxy
        self.fcgi = fcgi
        self.stop = asyncio.Event()
        self.tally = Tally(run)
        self.seq = itertools.count(1)
        # (killed at, back at) of every flap of the killed-and-restarted backend.
        self.flaps: list[list[float]] = []

    def token(self) -> str:
        return f"T{self.run}-{next(self.seq)}"

    def fault_for(self, started: float, ended: float, resp: Response) -> str:
        """Which injected fault explains a failed exchange on the main cluster: the flapping
        backend (it served the answer, or it was killed or restarting around the exchange),
        else none."""
        if resp.header("x-soak-backend") == "flap":
            return "flap"
        for killed, back in self.flaps:
            back = back if back else time.monotonic()
            if started <= back + 3.0 and ended >= killed - 0.5:
                return "flap"
        return "none"

    async def pace(self, rate: float, last: float) -> float:
        """Sleeps so a loop runs at most `rate` times a second; returns the new deadline."""
        nxt = max(last + 1.0 / rate, time.monotonic())
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        return nxt


async def keep_alive(ctx: Ctx, rate: float, exchange) -> None:
    """One keep-alive connection running `await exchange(client)` at most `rate` times a
    second until the run stops."""
    client = Client(*ctx.proxy)
    last = time.monotonic()
    try:
        while not ctx.stop.is_set():
            last = await ctx.pace(rate, last)
            await exchange(client)
    finally:
        client.drop()


async def normal(ctx: Ctx, rate: float) -> None:
    """One keep-alive connection: a mix of GETs and POSTs with small and medium bodies."""

    async def exchange(client: Client) -> None:
        tok = ctx.token()
        r = random.random()
        body, chunked, method, size, query = None, False, "GET", random.randint(0, 2048), ""
        if r < 0.10:
            size = random.randint(16 << 10, 256 << 10)
        elif r < 0.15:
            query = f"&delay={random.randint(20, 200)}"
        elif r < 0.18:
            query = "&chunked=1"
            size = random.randint(1, 64 << 10)
        elif r < 0.20:
            method = "HEAD"
        elif r < 0.30:
            method, body = "POST", upload_for(tok, random.randint(1, 2048))
        elif r < 0.36:
            method, body = "POST", upload_for(tok, random.randint(16 << 10, 256 << 10))
            chunked = random.random() < 0.5
        started = time.monotonic()
        resp = await client.request(method, f"/app/r/{tok}?size={size}{query}", tok, body, chunked)
        fault = ctx.fault_for(started, time.monotonic(), resp)
        ctx.tally.record("normal", resp, tok, fault, {"size": size, "method": method, "upload": body})

    await keep_alive(ctx, rate, exchange)


async def slow_read(ctx: Ctx) -> None:
    """Reads a 512 KiB answer at ~64 KiB/s through an 8 KiB receive buffer."""
    size, rate, step = 512 << 10, 64 << 10, 4096
    while not ctx.stop.is_set():
        tok, resp, writer = ctx.token(), Response(), None
        started = time.monotonic()
        try:
            sock = make_socket(rcvbuf=8192)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ctx.proxy), 5)
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
            writer.write(
                f"GET /app/slow/{tok}?size={size} HTTP/1.1\r\nHost: soak.local\r\nX-Soak-Token: {tok}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            feed = asyncio.StreamReader(limit=1 << 20)
            parse = asyncio.ensure_future(read_response(feed, "GET", resp))
            while not parse.done():
                data = await asyncio.wait_for(reader.read(step), 40)
                if not data:
                    feed.feed_eof()
                    break
                feed.feed_data(data)
                await asyncio.sleep(step / rate)
            await asyncio.wait_for(parse, 5)
        except asyncio.CancelledError:
            abort(writer)
            raise
        except BaseException as e:  # noqa: BLE001
            resp.error = classify_exc(e, resp.head_seen)
        finally:
            if writer is not None:
                writer.close()
        fault = ctx.fault_for(started, time.monotonic(), resp)
        ctx.tally.record("slow-read", resp, tok, fault, {"size": size, "method": "GET"})


async def never_read(ctx: Ctx) -> None:
    """Asks for 4 MiB and never reads: director's writes stall until the client resets."""
    while not ctx.stop.is_set():
        tok, writer = ctx.token(), None
        try:
            sock = make_socket(rcvbuf=4096)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ctx.proxy), 5)
            _, writer = await asyncio.open_connection(sock=sock)
            writer.write(
                f"GET /app/never/{tok}?size={4 << 20} HTTP/1.1\r\nHost: soak.local\r\n"
                f"X-Soak-Token: {tok}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            try:
                await asyncio.wait_for(ctx.stop.wait(), random.uniform(8, 20))
            except asyncio.TimeoutError:
                pass
            ctx.tally.intended_aborts["never-read"] += 1
        except OSError:
            ctx.tally.by_group["never-read"]["conn:connect"] += 1
        finally:
            abort(writer)


async def abort_read(ctx: Ctx, rate: float) -> None:
    """Reads part of a 256 KiB answer, then resets the connection."""
    last = time.monotonic()
    while not ctx.stop.is_set():
        last = await ctx.pace(rate, last)
        tok, writer = ctx.token(), None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*ctx.proxy), 5)
            writer.write(
                f"GET /app/abort/{tok}?size={256 << 10} HTTP/1.1\r\nHost: soak.local\r\n"
                f"X-Soak-Token: {tok}\r\n\r\n".encode()
            )
            await writer.drain()
            want, got = random.randint(0, 200 << 10), 0
            while got <= want:
                data = await asyncio.wait_for(reader.read(8192), 10)
                if not data:
                    break
                got += len(data)
            ctx.tally.intended_aborts["abort-read"] += 1
        except (OSError, asyncio.TimeoutError):
            ctx.tally.by_group["abort-read"]["conn:error"] += 1
        finally:
            abort(writer)


async def upload(ctx: Ctx) -> None:
    """Slow uploads in turn: stall (408 expected), trickle (200 expected), abort."""
    kinds = itertools.cycle(["stall", "trickle", "stall", "abort"])
    while not ctx.stop.is_set():
        kind, tok = next(kinds), ctx.token()
        body = upload_for(tok, 64 << 10 if kind != "trickle" else 8 << 10)
        resp, writer, started = Response(), None, time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*ctx.proxy), 5)
            writer.write(
                f"POST /app/up/{tok} HTTP/1.1\r\nHost: soak.local\r\nX-Soak-Token: {tok}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            if kind == "trickle":
                for i in range(0, len(body), 1024):
                    writer.write(body[i : i + 1024])
                    await writer.drain()
                    await asyncio.sleep(0.5)
            else:
                writer.write(body[:4096])
                await writer.drain()
            if kind == "abort":
                await asyncio.sleep(0.5)
                ctx.tally.intended_aborts["upload-abort"] += 1
                continue
            await asyncio.wait_for(read_response(reader, "POST", resp), 15)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001
            resp.error = classify_exc(e, resp.head_seen)
        finally:
            abort(writer)
        if kind == "stall" and resp.status == 408:
            fault = "client stalled its body"
        else:
            fault = ctx.fault_for(started, time.monotonic(), resp)
        ctx.tally.record(f"upload-{kind}", resp, tok, fault, {"size": 0, "method": "POST", "upload": body})
        await asyncio.sleep(random.uniform(0.2, 1.0))


FAULT_MIX = (
    ["ok"] * 10
    + ["extra", "extralate", "headbody", "headlate"] * 2
    + ["badstatus", "garbage", "badchunk", "shortbody", "clconflict", "clte"]
)


async def faulty(ctx: Ctx, rate: float) -> None:
    """Keep-alive traffic to the faulty cluster, a random kind of misbehaviour each time."""

    async def exchange(client: Client) -> None:
        kind, tok = random.choice(FAULT_MIX), ctx.token()
        method = "HEAD" if kind.startswith("head") else "GET"
        resp = await client.request(method, f"/bad/{kind}/{tok}", tok, timeout=15)
        ctx.tally.record(f"faulty:{kind}", resp, tok, kind, {"size": 200, "method": method})

    await keep_alive(ctx, rate, exchange)


async def burst(ctx: Ctx, period: float, width: int) -> None:
    """Every `period` s, `width` concurrent requests to the small `tight` cluster (capacity 4,
    queue of 8 for 1 s, 600 ms per request): some are served, some overflow the queue (503),
    some wait too long (504), and a few give up while queued."""

    async def one(giving_up: bool):
        tok = ctx.token()
        client = Client(*ctx.proxy)
        try:
            if giving_up:
                try:
                    await client.request("GET", f"/tight/{tok}?delay=600", tok, timeout=0.15)
                finally:
                    ctx.tally.intended_aborts["burst-abort"] += 1
                return
            resp = await client.request("GET", f"/tight/{tok}?size=512&delay=600", tok, timeout=15)
            ctx.tally.record("burst", resp, tok, "queue overflow", {"size": 512, "method": "GET"})
        finally:
            client.drop(reset=True)

    while not ctx.stop.is_set():
        await asyncio.gather(*(one(i % 6 == 5) for i in range(width)))
        try:
            await asyncio.wait_for(ctx.stop.wait(), period)
        except asyncio.TimeoutError:
            pass


async def fcgi(ctx: Ctx, rate: float) -> None:
    """GETs and POSTs through php-fpm (the script echoes the tokens like the HTTP backends)."""

    async def exchange(client: Client) -> None:
        tok, size = ctx.token(), random.randint(0, 32 << 10)
        body = upload_for(tok, random.randint(1, 16 << 10)) if random.random() < 0.3 else None
        method = "POST" if body is not None else "GET"
        resp = await client.request(method, f"/php/{tok}?size={size}", tok, body, timeout=15)
        ctx.tally.record("fcgi", resp, tok, "none", {"size": size, "method": method, "upload": body})

    await keep_alive(ctx, rate, exchange)

"""Backends of the soak test (bench/soak.sh): small asyncio HTTP/1.1 servers.

    python3 soak_servers.py all --run RUN --ports-file F   healthy h1..h3 and faulty f1..f3
                                                            on free ports, written to F as JSON
    python3 soak_servers.py one --run RUN --name N --port P one healthy backend on port P (the
                                                            one the driver kills and restarts);
                                                            SIGTERM resets every connection

A healthy backend answers every path except /health with the request's tokens echoed in
X-Soak-Token (from the header) and X-Soak-Path (the last path segment), X-Soak-Backend (its
name), X-Soak-Up-Len / X-Soak-Up-Crc (what it received as the request body), and a body of
?size= bytes derived from the path token (see soak_http.body_for). ?delay=MS waits before the
answer, ?chunked=1 sends it chunked. Large bodies are written with flow control, so a slow
reader slows the backend down too.

A faulty backend misbehaves by the second-to-last path segment, /bad/KIND/TOKEN:
  ok          a normal small answer (the likely victim of anything smuggled before it)
  extra       Content-Length body, then a complete "poison" response in the same write
  extralate   the same, with the poison 5 ms later
  headbody    a HEAD answer followed at once by a body (a poison response)
  headlate    the same, with the poison 5 ms later
  badstatus   "HTTP/1.1 2x0 OK"
  garbage     a line that is not HTTP at all
  badchunk    a good first chunk, then a chunk size that is not hex, then close
  shortbody   half of the Content-Length, then close
  clconflict  two different Content-Length fields (a smuggling vector)
  clte        Content-Length and Transfer-Encoding: chunked together (chunked is the truth)
The poison is a valid response with a token that belongs to no client (P<run>-<n>, or
L<run>-<n> when sent late), so a client that ever sees one got bytes meant for nobody.
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import sys
import zlib
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_http import body_for  # noqa: E402

PIECE = 64 * 1024
_poison_seq = itertools.count(1)


class BadRequest(Exception):
    pass


async def read_request(reader: asyncio.StreamReader):
    """One request: (method, target, headers, body length, body crc); None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(lines[0][:80])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length, checksum = 0, 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            data = await reader.readexactly(size + 2)
            length += size
            checksum = zlib.crc32(data[:-2], checksum)
    elif headers.get("content-length"):
        left = int(headers["content-length"])
        while left:
            data = await reader.read(min(left, PIECE))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            length += len(data)
            checksum = zlib.crc32(data, checksum)
    return parts[0], parts[1], headers, length, checksum & 0xFFFFFFFF


def soak_headers(name: str, headers: dict, path_token: str, up_len: int, up_crc: int) -> str:
    return (
        f"X-Soak-Token: {headers.get('x-soak-token', '')}\r\n"
        f"X-Soak-Path: {path_token}\r\n"
        f"X-Soak-Backend: {name}\r\n"
        f"X-Soak-Up-Len: {up_len}\r\nX-Soak-Up-Crc: {up_crc}\r\n"
    )


def poison(run: str, late: bool = False) -> bytes:
    """A complete response nobody asked for. Its token starts with P, or with L when it is
    sent late (after the answer it follows went out), so the client can say which it got."""
    tok = f"{'L' if late else 'P'}{run}-{next(_poison_seq)}"
    body = body_for(tok, 64)
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Soak-Token: {tok}\r\n"
        f"X-Soak-Path: {tok}\r\nX-Soak-Backend: poison\r\n\r\n"
    ).encode() + body


async def healthy(name, writer, method, target, headers, up_len, up_crc):
    path, _, query = target.partition("?")
    if path == "/health":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        return
    q = {k: v[0] for k, v in parse_qs(query).items()}
    token = path.rsplit("/", 1)[-1]
    size = int(q.get("size", "0"))
    if int(q.get("delay", "0")) > 0:
        await asyncio.sleep(int(q["delay"]) / 1000)
    body = body_for(token, size)
    chunked = q.get("chunked") == "1"
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    head += soak_headers(name, headers, token, up_len, up_crc)
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    writer.write((head + "\r\n").encode())
    if method == "HEAD":
        return
    for i in range(0, len(body), PIECE):
        piece = body[i : i + PIECE]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")


async def faulty(name, run, writer, method, target, headers, up_len, up_crc) -> bool:
    """Answers one /bad/KIND/TOKEN request; returns False when the connection must close."""
    path = target.partition("?")[0]
    segs = path.split("/")
    kind, token = (segs[-2], segs[-1]) if len(segs) >= 3 else ("ok", segs[-1])
    body = body_for(token, 200)
    sh = soak_headers(name, headers, token, up_len, up_crc)
    ok_head = f"HTTP/1.1 200 OK\r\n{sh}Content-Length: {len(body)}\r\n\r\n".encode()
    if kind not in FAULTS or kind == "ok":
        writer.write(ok_head if method == "HEAD" else ok_head + body)
        return True
    if kind == "headbody":  # the client sent HEAD: no body may follow this head
        writer.write(ok_head + poison(run))
        return True
    if kind == "headlate":
        writer.write(ok_head)
        await writer.drain()
        await asyncio.sleep(0.005)
        writer.write(poison(run, late=True))
        return True
    if kind == "extra":
        writer.write(ok_head + body + poison(run))
        return True
    if kind == "extralate":
        writer.write(ok_head + body)
        await writer.drain()
        await asyncio.sleep(0.005)
        writer.write(poison(run, late=True))
        return True
    if kind == "badstatus":
        writer.write(f"HTTP/1.1 2x0 OK\r\n{sh}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True
    if kind == "garbage":
        writer.write(b"SOAK GARBAGE " + token.encode() + b"\r\n\r\n")
        return True
    if kind == "badchunk":
        writer.write(f"HTTP/1.1 200 OK\r\n{sh}Transfer-Encoding: chunked\r\n\r\n".encode())
        writer.write(b"%x\r\n%s\r\n" % (100, body[:100]) + b"zz\r\n" + body[100:] + b"\r\n0\r\n\r\n")
        return False
    if kind == "shortbody":
        writer.write(ok_head + body[:100])
        return False
    if kind == "clconflict":
        writer.write(f"HTTP/1.1 200 OK\r\n{sh}Content-Length: 100\r\nContent-Length: 200\r\n\r\n".encode() + body)
        return True
    if kind == "clte":
        writer.write(
            f"HTTP/1.1 200 OK\r\n{sh}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        return True
    return True


FAULTS = (
    "ok extra extralate headbody headlate badstatus garbage badchunk shortbody clconflict clte".split()
)


class Server:
    """One backend: healthy or faulty, with a registry of its open connections."""

    def __init__(self, name: str, run: str, bad: bool):
        self.name, self.run, self.bad = name, run, bad
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.base_events.Server | None = None

    async def start(self, port: int) -> int:
        self.server = await asyncio.start_server(
            self.handle, "127.0.0.1", port, reuse_address=True, backlog=512, limit=1 << 20
        )
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    break
                method, target, headers, up_len, up_crc = req
                if self.bad:
                    keep = await faulty(self.name, self.run, writer, method, target, headers, up_len, up_crc)
                else:
                    await healthy(self.name, writer, method, target, headers, up_len, up_crc)
                    keep = True
                await writer.drain()
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, BadRequest, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def reset_all(self) -> None:
        """Stops listening and resets every open connection (SO_LINGER 0)."""
        if self.server is not None:
            self.server.close()
        for w in list(self.writers):
            sock = w.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except (OSError, AttributeError):
                pass
            w.transport.abort()


async def run_all(args) -> None:
    servers = {f"h{i}": Server(f"h{i}", args.run, False) for i in (1, 2, 3)}
    servers.update({f"f{i}": Server(f"f{i}", args.run, True) for i in (1, 2, 3)})
    ports = {name: await s.start(0) for name, s in servers.items()}
    tmp = args.ports_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.replace(tmp, args.ports_file)
    await asyncio.Event().wait()


async def run_one(args) -> None:
    server = Server(args.name, args.run, False)
    await server.start(args.port)
    done = asyncio.Event()

    def on_term():
        server.reset_all()
        done.set()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)
    print(f"{args.name} listening on 127.0.0.1:{args.port}", flush=True)
    await done.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("all")
    a.add_argument("--run", required=True)
    a.add_argument("--ports-file", required=True)
    o = sub.add_parser("one")
    o.add_argument("--run", required=True)
    o.add_argument("--name", required=True)
    o.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    asyncio.run(run_all(args) if args.cmd == "all" else run_one(args))


if __name__ == "__main__":
    main()

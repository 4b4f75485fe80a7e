"""Shared pieces of the soak test (bench/soak.sh): request tokens, the bodies derived from
them, and a small HTTP/1.1 client over asyncio streams that reports exactly how an exchange
ended (status, complete or cut, and why).

Python 3.11 standard library only. Every request carries a unique token in its path and in
the X-Soak-Token header; every backend echoes both (X-Soak-Token, X-Soak-Path) and derives
its body from the path token, so the client can tell its own response from anybody else's.
"""

import asyncio
import re
import socket
import zlib

TOKEN_HEADER = "x-soak-token"
# Tokens are "T<run>-<n>"; a faulty backend's smuggled response carries "P<run>-<n>" (poison),
# or "L<run>-<n>" when it was sent late, which belongs to no client, so seeing one anywhere is a
# response delivered to the wrong client.
_TOKEN_RE_CACHE: dict[tuple[str, bool], re.Pattern] = {}


def token_re(run: str, in_body: bool = False) -> re.Pattern:
    """Matches every token (own, foreign or poison) of this run. In a body a token counts only
    with the separator after it: a body is cut at its size, maybe in the middle of a token."""
    pat = _TOKEN_RE_CACHE.get((run, in_body))
    if pat is None:
        end = rb"(?=[|;])" if in_body else rb"(?![0-9])"
        pat = re.compile(rb"[TPL]" + re.escape(run.encode()) + rb"-[0-9]+" + end)
        _TOKEN_RE_CACHE[(run, in_body)] = pat
    return pat


def body_for(token: str, size: int) -> bytes:
    """The body a backend sends for `token`: the token and a separator, repeated, cut to size."""
    if size <= 0:
        return b""
    unit = (token + "|").encode()
    return (unit * (size // len(unit) + 1))[:size]


def upload_for(token: str, size: int) -> bytes:
    """A request body derived from `token` (different from the response body)."""
    if size <= 0:
        return b""
    unit = ("up:" + token + ";").encode()
    return (unit * (size // len(unit) + 1))[:size]


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


class Response:
    """What the client saw. `error` is None for a complete, well-framed response; else one of
    reset / eof-before-head / truncated-body / bad-framing / timeout / refused / other."""

    __slots__ = ("status", "headers", "body", "error", "head_seen", "close")

    def __init__(self):
        self.status = 0
        self.headers: dict[str, list[str]] = {}
        self.body = b""
        self.error: str | None = None
        self.head_seen = False
        self.close = False

    def header(self, name: str) -> str | None:
        v = self.headers.get(name)
        return v[0] if v else None


def classify_exc(e: BaseException, head_seen: bool) -> str:
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(e, asyncio.IncompleteReadError):
        return "truncated-body" if head_seen else "eof-before-head"
    if isinstance(e, (ValueError, asyncio.LimitOverrunError)):
        return "bad-framing"
    if isinstance(e, OSError):
        return "reset"
    return "other:" + type(e).__name__


async def read_response(reader: asyncio.StreamReader, method: str, resp: Response) -> None:
    """Reads one response into `resp` (raises on a cut or malformed one)."""
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("bad status line %r" % line[:80])
    status = int(parts[1])
    headers: dict[str, list[str]] = {}
    while True:
        h = await reader.readline()
        if not h.endswith(b"\n"):
            raise asyncio.IncompleteReadError(h, None)
        if h in (b"\r\n", b"\n"):
            break
        name, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise ValueError("bad header line")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    resp.status, resp.headers, resp.head_seen = status, headers, True
    conn = ",".join(headers.get("connection", [])).lower()
    resp.close = "close" in conn
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return
    te = ",".join(headers.get("transfer-encoding", [])).lower()
    if "chunked" in te:
        chunks = []
        while True:
            size_line = await reader.readline()
            if not size_line.endswith(b"\n"):
                raise asyncio.IncompleteReadError(size_line, None)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = await reader.readexactly(size + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("bad chunk terminator")
            chunks.append(data[:-2])
        resp.body = b"".join(chunks)
    elif "content-length" in headers:
        lengths = set(headers["content-length"])
        if len(lengths) != 1:
            raise ValueError("conflicting content-length")
        resp.body = await reader.readexactly(int(lengths.pop()))
    else:
        resp.body = await reader.read(-1)
        resp.close = True


def make_socket(rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return s


def abort(writer: asyncio.StreamWriter | None) -> None:
    """Closes with a reset (SO_LINGER 0): what a client that vanishes looks like."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    writer.transport.abort()


class Client:
    """One keep-alive client connection to the proxy; reconnects when the server closed."""

    def __init__(self, host: str, port: int, rcvbuf: int | None = None):
        self.host, self.port, self.rcvbuf = host, port, rcvbuf
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        sock = make_socket(self.rcvbuf)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (self.host, self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 20)

    def drop(self, reset: bool = False) -> None:
        if self.writer is not None:
            if reset:
                abort(self.writer)
            else:
                self.writer.close()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        token: str,
        body: bytes | None = None,
        chunked: bool = False,
        timeout: float = 30.0,
        extra: str = "",
    ) -> Response:
        resp = Response()
        try:
            await asyncio.wait_for(self._exchange(method, path, token, body, chunked, extra, resp), timeout)
        except BaseException as e:  # noqa: BLE001 - every way an exchange can end is a result
            if isinstance(e, asyncio.CancelledError):
                self.drop(reset=True)
                raise
            resp.error = classify_exc(e, resp.head_seen)
            self.drop(reset=True)
            return resp
        if resp.close:
            self.drop()
        return resp

    async def _exchange(self, method, path, token, body, chunked, extra, resp):
        if self.writer is None:
            await self.connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: soak.local\r\nX-Soak-Token: {token}\r\n{extra}"
        if body is not None:
            if chunked:
                head += "Transfer-Encoding: chunked\r\n"
            else:
                head += f"Content-Length: {len(body)}\r\n"
        self.writer.write((head + "\r\n").encode("latin-1"))
        if body is not None:
            if chunked:
                step = 16384
                for i in range(0, len(body), step):
                    piece = body[i : i + step]
                    self.writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    await self.writer.drain()
                self.writer.write(b"0\r\n\r\n")
            else:
                self.writer.write(body)
        await self.writer.drain()
        await read_response(self.reader, method, resp)

"""A lean HTTP/1.1 client on asyncio streams: kept-alive connections per origin.

Used where a service makes many small requests and httpx's cost shows: httpx (through
httpcore's pool, which checks every pooled connection on each request, and anyio's streams)
spent 1.5-2 ms of CPU per small POST on the 2-core benchmark machine. This client writes the
request itself and parses the answer's head; the body is read when it is framed by
``Content-Length`` or chunked, or (``read_body=False``) skipped when it is short, so the
connection can be reused. Any framing it does not read closes the connection instead: closing
is always correct. It serves the webhook sender (:mod:`services.notify.webhook_http`, which
needs only the status) and the calls between sibling services (:mod:`shared.web.clients`).

Proxies, redirects, cookies and authentication schemes are the caller's business (both
callers send to a configured origin and want none of them).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, urlsplit

MAX_HEAD = 64 * 1024  # a longer answer head is refused (Http1Error)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Percent-encode what may not stand in a request line (spaces, controls, non-ASCII).
_PRINTABLE = "".join(chr(i) for i in range(33, 127))


class Http1Error(Exception):
    """The origin could not be reached, or broke the connection or the protocol."""


class StaleConnection(Http1Error):
    """A kept-alive connection the origin had closed: nothing of an answer came back."""


class RefusedAddress(Exception):
    """The origin's host is refused by the pool's ``check_host`` (``cause`` says why)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@dataclass(frozen=True)
class Target:
    """Where a request goes, and its request line and ``Host`` header, made once."""

    key: tuple[str, str, int]  # scheme, host, port: the pool's unit of reuse
    host: str
    port: int
    tls: bool
    head: bytes

    @classmethod
    def of(cls, url: str, method: str = "POST") -> Target:
        parts: SplitResult = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise Http1Error("not an absolute http(s) URL")
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        path = quote(parts.path or "/", safe=_PRINTABLE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PRINTABLE)
        name = host.encode("idna").decode() if not host.isascii() else host
        authority = f"[{name}]" if ":" in name else name
        if parts.port is not None:
            authority += f":{parts.port}"
        return cls(
            (parts.scheme, host, port),
            host,
            port,
            parts.scheme == "https",
            f"{method} {path} HTTP/1.1\r\nhost: {authority}\r\n".encode(),
        )

    def request(self, headers: dict[str, str], body: bytes) -> bytes:
        """The whole request: the head made once, ``headers`` and the body."""
        return b"".join(
            (
                self.head,
                b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()),
                b"content-length: %d\r\n\r\n" % len(body),
                body,
            )
        )


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]  # lower-cased names
    body: bytes = b""  # empty when not read (``read_body=False``)


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, keepalive_s: float) -> bool:
        """Idle for less than ``keepalive_s``, and the origin has neither closed it nor
        sent anything unasked (either means it is no longer a clean keep-alive)."""
        return (
            now - self.idle_since < keepalive_s
            and not self.reader.at_eof()
            and not getattr(self.reader, "_buffer", b"")  # bytes nobody asked for
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


@dataclass
class Http1Pool:
    """Idle connections per origin, reused most recently used first.

    ``keepalive_s`` stays below common servers' idle timeouts (uvicorn 5 s), so a connection
    is rarely closed by the origin just as it is reused; when it is, the request goes once
    more on a new connection (:class:`StaleConnection`: nothing of an answer came back).
    ``check_host`` runs before each new connection (e.g. a private-address check) and returns
    the addresses it approved: the connection goes to one of those (pinned; ``Host`` and, for
    https, SNI and the certificate check keep the name), never to a second lookup of the
    name, which could answer differently (DNS rebinding). A reused connection goes to the
    address that was checked when it was opened. ``max_body`` bounds
    a body that is read; with ``read_body=False`` a longer one is not read and the connection
    is closed, with ``read_body=True`` it is an :class:`Http1Error`.
    """

    keepalive_s: float = 4.0
    max_body: int = 64 * 1024
    check_host: Callable[[str], Awaitable[Sequence[str]]] | None = None
    ssl_context: Callable[[], ssl.SSLContext] | None = None
    connections_opened: int = 0
    _idle: dict[tuple[str, str, int], list[_Conn]] = field(default_factory=dict)

    def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    async def exchange(self, target: Target, request: bytes, *, read_body: bool) -> Answer:
        """Send ``request`` (made by :meth:`Target.request`) and read the answer; raises
        :class:`Http1Error` or :class:`RefusedAddress` (the caller bounds the time)."""
        idle = self._idle.setdefault(target.key, [])
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely closed
            if conn.usable(now, self.keepalive_s):
                try:
                    return await self._on(conn, idle, request, read_body)
                except StaleConnection:
                    break  # closed by the origin as it was reused: once more, on a new one
            conn.close()
        return await self._on(await self._connect(target), idle, request, read_body)

    async def _connect(self, target: Target) -> _Conn:
        addresses: Sequence[str] = [target.host]
        if self.check_host is not None:
            try:
                addresses = await self.check_host(target.host)
            except (LookupError, ValueError) as exc:
                raise RefusedAddress(exc) from exc
            if not addresses:
                raise RefusedAddress(LookupError("no address"))
        context = None
        if target.tls:
            context = self.ssl_context() if self.ssl_context else ssl.create_default_context()
        failure: OSError | None = None
        for address in addresses:  # the checked ones only, in order
            try:
                reader, writer = await asyncio.open_connection(
                    address,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            except OSError as exc:
                failure = exc
                continue
            self.connections_opened += 1
            return _Conn(reader, writer)
        assert failure is not None
        raise Http1Error(type(failure).__name__) from failure

    async def _on(self, conn: _Conn, idle: list[_Conn], request: bytes, read_body: bool) -> Answer:
        """One exchange on ``conn``; puts it back when it may be reused, else closes it."""
        keep = False
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            answer, keep = await _answer(conn.reader, read_body, self.max_body)
            return answer
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            nothing_back = isinstance(exc, ConnectionError) or (
                isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            )
            kind = StaleConnection if nothing_back else Http1Error
            raise kind(type(exc).__name__) from exc
        finally:
            if keep:
                conn.idle_since = time.monotonic()
                idle.append(conn)
            else:
                conn.close()


async def _answer(
    reader: asyncio.StreamReader, read_body: bool, max_body: int
) -> tuple[Answer, bool]:
    """The answer, and whether the connection may carry another request."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ValueError("answer head too long")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        status = int(rest[:3])
        if not version.startswith(b"HTTP/1.") or not 100 <= status <= 599:
            raise ValueError("not an HTTP/1.x answer")
        if status >= 200 or status == 101:
            break  # 1xx informational answers precede the real one
    fields: dict[bytes, bytes] = {}
    ambiguous = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header")
        name = name.strip().lower()
        if name in fields and name in (b"content-length", b"transfer-encoding"):
            ambiguous = True
        fields[name] = value.strip()
    answer = Answer(status, fields)
    keep = version == b"HTTP/1.1" and b"close" not in fields.get(b"connection", b"").lower()
    if status in (204, 304) or status == 101:
        return answer, keep and status != 101 and not ambiguous
    if ambiguous:
        if read_body:
            raise ValueError("ambiguous answer framing")
        return answer, False
    length = fields.get(b"content-length")
    chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
    if not read_body:
        if chunked or b"transfer-encoding" in fields or length is None or not length.isdigit():
            return answer, False
        if int(length) > max_body:
            return answer, False
        if int(length):
            await reader.readexactly(int(length))
        return answer, keep
    if chunked:
        answer.body = await _chunked(reader, max_body)
        return answer, keep
    if b"transfer-encoding" in fields:
        raise ValueError("unsupported transfer coding")
    if length is not None:
        if not length.isdigit() or int(length) > max_body:
            raise ValueError("answer body too long or its length malformed")
        answer.body = await reader.readexactly(int(length))
        return answer, keep
    parts: list[bytes] = []  # framed by the connection's end
    total = 0
    while data := await reader.read(64 * 1024):
        total += len(data)
        if total > max_body:
            raise ValueError("answer body too long")
        parts.append(data)
    answer.body = b"".join(parts)
    return answer, False


async def _chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > max_body:
            raise ValueError("answer body too long")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("malformed chunk")

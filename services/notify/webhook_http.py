"""The webhook sender's HTTP/1.1 client: kept-alive connections per receiver, bounded.

A webhook is one small POST whose answer only matters for its status code. httpx (through
httpcore's pool, which checks every pooled connection on each request, and anyio's streams)
spent about 1.5 ms of CPU per webhook on the 2-core benchmark machine, more than the rest of
a notification; this client writes the request itself on asyncio streams and reads the
status line and headers, and a ``Content-Length`` body so the connection can be reused.
Any other answer framing (chunked, until close) closes the connection instead of being
parsed: the status code is known from the head, and closing is always correct.

Each receiver (scheme, host, port) has its own idle connections and its own limit of
requests at once, taken before the dispatcher's overall limit, so a slow case system holds
at most its own share of the sends. Where the environment configures a proxy for the URL
(``HTTP_PROXY``/``HTTPS_PROXY``), the request goes through httpx, which honours it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, urlsplit

import httpx

MAX_HEAD = 64 * 1024  # a longer answer head is refused (connect_error)
MAX_BODY = 64 * 1024  # a longer Content-Length body is not read: the connection is closed
DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookConnectError(Exception):
    """The receiver could not be reached, or broke the connection or the protocol."""


class StaleConnection(WebhookConnectError):
    """A kept-alive connection the receiver had closed: nothing of an answer came back."""


class RefusedAddress(Exception):
    """The receiver's host is refused by the address check (``error_type`` says why)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, keepalive_s: float) -> bool:
        """Idle for less than ``keepalive_s``, and the receiver has neither closed it nor
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
class _Receiver:
    """One receiver's idle connections and its limit of requests at once."""

    slots: asyncio.Semaphore
    idle: list[_Conn] = field(default_factory=list)


@dataclass(frozen=True)
class _Target:
    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    head: bytes  # request line and Host header


# Percent-encode what may not stand in a request line (spaces, controls, non-ASCII).
_PRINTABLE = "".join(chr(i) for i in range(33, 127))


def _target(url: str) -> _Target:
    parts: SplitResult = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise WebhookConnectError("not an absolute http(s) URL")
    host = parts.hostname
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    path = quote(parts.path or "/", safe=_PRINTABLE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PRINTABLE)
    name = host.encode("idna").decode() if not host.isascii() else host
    authority = f"[{name}]" if ":" in name else name
    if parts.port is not None:
        authority += f":{parts.port}"
    return _Target(
        (parts.scheme, host, port),
        host,
        port,
        parts.scheme == "https",
        f"POST {path} HTTP/1.1\r\nhost: {authority}\r\n".encode(),
    )


class WebhookClient:
    """POSTs webhook bodies; :meth:`post` returns the receiver's status code."""

    def __init__(
        self,
        *,
        timeout_s: float,
        per_receiver: int,
        overall: asyncio.Semaphore,
        keepalive_s: float = 4.0,
        check_host: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.per_receiver = per_receiver
        self.overall = overall
        # Below common servers' idle timeouts (uvicorn 5 s), so a connection is rarely
        # closed by the receiver just as it is reused.
        self.keepalive_s = keepalive_s
        # Run before each new connection (the private-address check): a reused
        # connection goes to the address that was checked when it was opened.
        self.check_host = check_host
        self._receivers: dict[tuple[str, str, int], _Receiver] = {}
        self._ssl: ssl.SSLContext | None = None
        self._httpx: httpx.AsyncClient | None = None
        # Read once: the environment does not change under a running worker.
        self._proxies = urllib.request.getproxies_environment()
        self.connections_opened = 0

    async def aclose(self) -> None:
        """Close every idle connection (and the proxy client, if one was made)."""
        for receiver in self._receivers.values():
            for conn in receiver.idle:
                conn.close()
            receiver.idle.clear()
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    async def post(self, url: str, body: bytes, headers: Callable[[], Mapping[str, str]]) -> int:
        """Send ``body`` to ``url`` with ``headers()`` (made once it is this send's turn);
        the status code, or raises :class:`TimeoutError`, :class:`WebhookConnectError` or
        :class:`RefusedAddress`."""
        target = _target(url)
        receiver = self._receivers.get(target.key)
        if receiver is None:
            receiver = _Receiver(asyncio.Semaphore(self.per_receiver))
            self._receivers[target.key] = receiver
        async with receiver.slots, self.overall:
            fields = headers()
            if self._proxies and self._proxied(target):
                return await self._post_via_proxy(url, body, fields)
            request = b"".join(
                (
                    target.head,
                    b"".join(f"{k}: {v}\r\n".encode() for k, v in fields.items()),
                    b"content-length: %d\r\n\r\n" % len(body),
                    body,
                )
            )
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(target, receiver, request)

    async def _exchange(self, target: _Target, receiver: _Receiver, request: bytes) -> int:
        now = time.monotonic()
        while receiver.idle:
            conn = receiver.idle.pop()  # the most recently used: the least likely closed
            if conn.usable(now, self.keepalive_s):
                try:
                    return await self._on(conn, receiver, request)
                except StaleConnection:
                    # The receiver closed the idle connection as it was reused: the request
                    # goes once more, on a new connection (receivers dedupe by webhook-id).
                    break
            conn.close()
        return await self._on(await self._connect(target), receiver, request)

    async def _connect(self, target: _Target) -> _Conn:
        if self.check_host is not None:
            try:
                await self.check_host(target.host)
            except (LookupError, ValueError) as exc:
                raise RefusedAddress(exc) from exc
        try:
            if target.tls:
                reader, writer = await asyncio.open_connection(
                    target.host, target.port, ssl=self._tls(), server_hostname=target.host
                )
            else:
                reader, writer = await asyncio.open_connection(target.host, target.port)
        except OSError as exc:
            raise WebhookConnectError(type(exc).__name__) from exc
        self.connections_opened += 1
        return _Conn(reader, writer)

    async def _on(self, conn: _Conn, receiver: _Receiver, request: bytes) -> int:
        """One exchange on ``conn``; puts it back when it may be reused, else closes it."""
        keep = False
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            status, keep = await _answer(conn.reader)
            return status
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            nothing_back = isinstance(exc, ConnectionError) or (
                isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            )
            kind = StaleConnection if nothing_back else WebhookConnectError
            raise kind(type(exc).__name__) from exc
        finally:
            if keep:
                conn.idle_since = time.monotonic()
                receiver.idle.append(conn)
            else:
                conn.close()

    def _proxied(self, target: _Target) -> bool:
        """Whether the environment sends requests to this receiver through a proxy."""
        if not self._proxies.get(target.key[0]) and not self._proxies.get("all"):
            return False
        return not urllib.request.proxy_bypass(f"{target.host}:{target.port}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            # The same trust as httpx's default (certifi's bundle).
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _post_via_proxy(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(
                timeout=self.timeout_s,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self.per_receiver),
            )
        try:
            response = await self._httpx.post(url, content=body, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise TimeoutError(type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise WebhookConnectError(type(exc).__name__) from exc
        return response.status_code


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status code of the answer, and whether the connection may carry another."""
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
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header")
        name = name.strip().lower()
        if name in fields and name in (b"content-length", b"transfer-encoding"):
            return status, False  # ambiguous framing: do not reuse
        fields[name] = value.strip()
    keep = version == b"HTTP/1.1" and b"close" not in fields.get(b"connection", b"").lower()
    if status in (204, 304) or status == 101:
        return status, keep and status != 101
    length = fields.get(b"content-length")
    if b"transfer-encoding" in fields or length is None or not length.isdigit():
        return status, False
    n = int(length)
    if n > MAX_BODY:
        return status, False
    if n:
        await reader.readexactly(n)
    return status, keep

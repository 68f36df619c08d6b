"""A lean HTTP/1.1 load generator: pre-encoded requests over keep-alive connections.

httpx costs about as much CPU per request as the API it measures; on a 2-core machine
that CPU is taken from the API. Here every request is encoded once, before the run, and
an answer is parsed only as far as a benchmark needs: the status, ``Content-Length``, the
body and a check of the body (e.g. the verdict).

Open loop (:meth:`LoadGenerator.open_loop`): request ``i`` is due at ``start + i / rate``;
its latency is measured from when it was due, so a request that waits for a free
connection (at most ``connections`` are on the wire) counts that wait
(coordinated-omission safe). Closed loop (:meth:`LoadGenerator.closed_loop`): each
connection sends its next request as soon as it has an answer.

Only for loopback benchmarks against this project's own processes.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Check = Callable[[int, bytes], bool]
"""Whether an answer (status, body) is the right one for its request."""


@dataclass
class Answer:
    """One request's outcome; ``latency_s`` from ``at``, when it was due (open loop) or
    sent (closed loop), on the ``time.perf_counter`` clock."""

    latency_s: float = float("nan")
    status: int = 0
    right: bool = True
    error: str | None = None
    at: float = float("nan")


def encode_post(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A complete HTTP/1.1 keep-alive POST of a JSON ``body``."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request on the wire."""

    def __init__(self, gen: LoadGenerator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.current: tuple[int, float] | None = None  # (request index, start time)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, index: int, start: float) -> None:
        assert self.transport is not None
        self.current = (index, start)
        self.transport.write(self.gen.requests[index])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while self.current is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                length = 0
            else:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            if len(buf) < end + 4 + length:
                return
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            status = int(head[9:12])
            index, start = self.current
            self.current = None
            self.gen.done(self, index, start, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.gen.lost(self, exc)


class LoadGenerator:
    """``requests`` (pre-encoded) to ``host``:``port`` over ``connections`` connections
    (to several ports, replicas of one API, in turn); ``checks[i]`` judges the answer to
    ``requests[i]``."""

    def __init__(
        self,
        host: str,
        port: int | Sequence[int],
        requests: Sequence[bytes],
        checks: Sequence[Check],
        *,
        connections: int = 64,
    ) -> None:
        if len(requests) != len(checks) or not requests:
            raise ValueError("one check per request, and at least one request")
        self.host = host
        self.ports = [port] if isinstance(port, int) else list(port)
        self.requests = requests
        self.checks = checks
        self.n_connections = connections
        self.conns: list[_Connection] = []
        self.free: collections.deque[_Connection] = collections.deque()
        self.backlog: collections.deque[tuple[int, float]] = collections.deque()
        self.answers: list[Answer] = []
        self.outstanding = 0
        self.idle = asyncio.Event()
        self.next_of: Callable[[], tuple[int, float] | None] | None = None  # closed loop

    async def connect(self) -> None:
        """Opens the connections (call once before a run)."""
        loop = asyncio.get_running_loop()
        for i in range(self.n_connections - len(self.conns)):
            port = self.ports[i % len(self.ports)]
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, port)
            self.conns.append(conn)
            self.free.append(conn)

    async def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.gather(*(c.closed for c in self.conns))
        self.conns.clear()
        self.free.clear()

    # -- dispatch -------------------------------------------------------------------------

    def _submit(self, index: int, start: float) -> None:
        self.outstanding += 1
        self.idle.clear()
        if self.free:
            self.free.popleft().send(index, start)
        else:
            self.backlog.append((index, start))

    def done(self, conn: _Connection, index: int, start: float, status: int, body: bytes) -> None:
        now = time.perf_counter()
        right = status == 200 and self.checks[index](status, body)
        self.answers.append(Answer(now - start, status, right, at=start))
        self._finish(conn)

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        if conn in self.free:
            self.free.remove(conn)
        if conn.current is not None:
            _, start = conn.current
            conn.current = None
            self.answers.append(
                Answer(
                    time.perf_counter() - start,
                    0,
                    False,
                    type(exc).__name__ if exc else "closed",
                    at=start,
                )
            )
            self.outstanding -= 1
        if not self.conns:  # nothing left to send on: the waiting requests fail
            while self.backlog:
                _, start = self.backlog.popleft()
                self.answers.append(
                    Answer(time.perf_counter() - start, 0, False, "no connection", at=start)
                )
                self.outstanding -= 1
        if not self.outstanding:
            self.idle.set()

    def _finish(self, conn: _Connection) -> None:
        self.outstanding -= 1
        nxt = self.backlog.popleft() if self.backlog else None
        if nxt is None and self.next_of is not None:
            nxt = self.next_of()
            if nxt is not None:
                self.outstanding += 1
        if nxt is not None:
            conn.send(*nxt)
        else:
            self.free.append(conn)
        if not self.outstanding:
            self.idle.set()

    # -- runs -----------------------------------------------------------------------------

    async def open_loop(
        self, n: int, rate: float, *, first: int = 0
    ) -> tuple[list[Answer], float, float]:
        """Requests ``first``..``first + n - 1`` (modulo the list) at ``rate`` per second;
        returns the answers (timed from when each was due), the seconds to issue them and
        the seconds until all were answered."""
        self.answers = []
        self.next_of = None
        start = time.perf_counter()
        i = 0
        total = len(self.requests)
        while i < n:
            now = time.perf_counter()
            while i < n and start + i / rate <= now:
                self._submit((first + i) % total, start + i / rate)
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        issued = time.perf_counter() - start
        if self.outstanding:
            await self.idle.wait()
        return self.answers, issued, time.perf_counter() - start

    async def closed_loop(
        self, seconds: float, *, first: int = 0, connections: int | None = None
    ) -> tuple[list[Answer], float]:
        """``connections`` (default: all) each send their next request on an answer, for
        ``seconds``; returns the answers (timed from their send) and the elapsed seconds."""
        self.answers = []
        total = len(self.requests)
        counter = iter(range(first, first + 10**9))
        start = time.perf_counter()
        stop = start + seconds

        def next_of() -> tuple[int, float] | None:
            now = time.perf_counter()
            return (next(counter) % total, now) if now < stop else None

        self.next_of = next_of
        for _ in range(min(len(self.free), connections or len(self.free))):
            self._submit(next(counter) % total, time.perf_counter())
        if self.outstanding:
            await self.idle.wait()
        self.next_of = None
        return self.answers, time.perf_counter() - start


def verdict_check(allowed: bool) -> Check:
    """A check that the JSON body says ``"allowed": <allowed>`` (compact JSON)."""
    want = b'"allowed":true' if allowed else b'"allowed":false'

    def check(status: int, body: bytes) -> bool:
        return want in body

    return check

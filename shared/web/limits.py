"""Bounds on what a client may make a service hold: request bodies, slow heads, idle links.

Two layers, both set in ``VK_HTTP__*`` (:class:`shared.config.HttpSettings`):

* :class:`BodyLimitMiddleware` (pure ASGI, installed by :func:`shared.web.app.create_app`)
  answers **413** problem+json *before the body is read* when ``Content-Length`` is over
  the operation's limit, and counts a body without one (chunked) as it streams, stopping
  the operation at the first byte past the limit. One limit for every operation
  (``max_body_bytes``) and larger ones for named operations (``body_limits``, e.g. the
  directory's import). A body that stalls for ``body_idle_timeout_s`` is answered 408.
  FastAPI reads a JSON body before the operation's dependencies (authentication among
  them) run: without this a 50 MB body was held in memory before the token was looked at.
* :func:`protocol_class` is the HTTP/1.1 protocol ``vardkedja serve`` runs under uvicorn
  (:func:`uvicorn_options`): uvicorn's httptools protocol with a **deadline for the request
  head**. A connection must deliver a complete head within ``header_timeout_s`` of being
  opened (or of the previous answer, on a kept-alive connection), and a head may be at most
  ``max_header_bytes``; uvicorn itself has neither, and its keep-alive timer is reset by
  every byte, so a client sending a header a byte at a time held its connection for ever.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.config import HttpSettings
from shared.web.errors import PROBLEM_JSON, AppError


class BodyTooLarge(AppError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class BodyTooSlow(AppError):
    status = 408
    slug = "request-timeout"
    title = "The request body did not arrive in time"


class _Abort(Exception):
    """Raised from ``receive`` to stop the operation; answered by the middleware."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.slug)
        self.error = error


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


class BodyLimitMiddleware:
    """Refuses request bodies over the operation's limit (413) before reading them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        limits: dict[str, int] | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits or {})  # "METHOD /path" -> bytes
        self.idle_timeout_s = idle_timeout_s

    def limit_of(self, scope: Scope) -> int:
        """The body limit of the request's operation."""
        return self.limits.get(f"{scope.get('method', '')} {scope.get('path', '')}", self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        too_large = BodyTooLarge(f"at most {_size(limit)} ({limit} bytes) for this operation")
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), b"")
        if declared.strip().isdigit() and int(declared) > limit:
            # Not read at all (nor is the caller looked at): the connection closes after it.
            await _answer(scope, send, too_large)
            return
        started = False
        received = 0
        more = True
        stopped: AppError | None = None  # why the body was cut off

        def stop(error: AppError) -> _Abort:
            nonlocal stopped
            stopped = error
            return _Abort(error)

        async def counted_receive() -> Message:
            nonlocal received, more
            if not more or self.idle_timeout_s is None:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        message = await receive()
                except TimeoutError:
                    slow = BodyTooSlow(f"no part of the body for {self.idle_timeout_s:g} s")
                    raise stop(slow) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if received > limit:
                    raise stop(too_large)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if stopped is not None:
                # The operation turned the cut-off into an answer of its own (FastAPI
                # answers a body it could not read with 400/422): ours replaces it.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _answer(scope, send, stopped)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _Abort as abort:
            if not started:
                await _answer(scope, send, abort.error)


async def _answer(scope: Scope, send: Send, error: AppError) -> None:
    state = scope.get("state", {})
    problem = error.problem(scope.get("path"), state.get("trace_id"))
    body = json.dumps(problem.model_dump(exclude_none=True)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is not read: the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the server's protocol: a deadline for the request head --------------------------------


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is slow or big.

    The deadline runs from the connection's start, and from each answer on a kept-alive
    connection (when no other request is under way), to the end of the next request head.
    """

    header_timeout_s: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._reading_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._disarm()
                self._refuse_large_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_header_bytes:  # a whole head that came in one read
            self._refuse_large_head()
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._reading_head = True
            self._head_bytes = 0
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_large_head(self) -> None:
        body = b"Request header fields too large."
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


def protocol_class(settings: HttpSettings) -> type[HeadDeadlineProtocol]:
    """The server protocol with ``settings``' head deadline and head size."""
    return type(
        "HeadDeadlineProtocol",
        (HeadDeadlineProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


def uvicorn_options(settings: HttpSettings) -> dict[str, Any]:
    """What ``uvicorn.run`` needs to serve with these bounds (address, protocol, timeouts)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_class(settings),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }

"""The webhook sender's HTTP/1.1 client: kept-alive connections per receiver, bounded.

A webhook is one small POST whose answer only matters for its status code. httpx spent about
1.5 ms of CPU per webhook on the 2-core benchmark machine, more than the rest of a
notification; this client sends through :class:`shared.web.http1.Http1Pool`, which writes the
request itself on asyncio streams and reads the status line and headers, and a short
``Content-Length`` body so the connection can be reused. Any other answer framing (chunked,
until close) closes the connection instead of being parsed: the status code is known from
the head, and closing is always correct.

Each receiver (scheme, host, port) has its own idle connections and its own limit of
requests at once, taken before the dispatcher's overall limit, so a slow case system holds
at most its own share of the sends. Where the environment configures a proxy for the URL
(``HTTP_PROXY``/``HTTPS_PROXY``), the request goes through httpx, which honours it.

The address check (``check_host``) returns the addresses it approved and the connection goes
to one of them (:class:`shared.web.http1.Http1Pool` pins it), so a name that resolves to a
public address for the check and to a private one a moment later (DNS rebinding) never
reaches the private one. Through a proxy the check runs as well before each webhook.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from shared.web.http1 import Http1Error, Http1Pool, RefusedAddress, StaleConnection, Target

__all__ = ["RefusedAddress", "StaleConnection", "WebhookClient", "WebhookConnectError"]

MAX_BODY = 64 * 1024  # a longer Content-Length body is not read: the connection is closed

# The receiver could not be reached, or broke the connection or the protocol.
WebhookConnectError = Http1Error


class WebhookClient:
    """POSTs webhook bodies; :meth:`post` returns the receiver's status code."""

    def __init__(
        self,
        *,
        timeout_s: float,
        per_receiver: int,
        overall: asyncio.Semaphore,
        keepalive_s: float = 4.0,
        check_host: Callable[[str], Awaitable[Sequence[str]]] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.per_receiver = per_receiver
        self.overall = overall
        self._check_host = check_host
        self._pool = Http1Pool(
            keepalive_s=keepalive_s,
            max_body=MAX_BODY,
            check_host=check_host,
            ssl_context=self._tls,
        )
        # Per receiver (scheme, host, port): its limit of requests at once.
        self._receivers: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None
        self._httpx: httpx.AsyncClient | None = None
        # Read once: the environment does not change under a running worker.
        self._proxies = urllib.request.getproxies_environment()

    @property
    def connections_opened(self) -> int:
        return self._pool.connections_opened

    async def aclose(self) -> None:
        """Close every idle connection (and the proxy client, if one was made)."""
        self._pool.aclose()
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    async def post(self, url: str, body: bytes, headers: Callable[[], Mapping[str, str]]) -> int:
        """Send ``body`` to ``url`` with ``headers()`` (made once it is this send's turn);
        the status code, or raises :class:`TimeoutError`, :class:`WebhookConnectError` or
        :class:`RefusedAddress`."""
        target = Target.of(url)
        slots = self._receivers.get(target.key)
        if slots is None:
            slots = self._receivers[target.key] = asyncio.Semaphore(self.per_receiver)
        async with slots, self.overall:
            fields = dict(headers())
            if self._proxies and self._proxied(target):
                # The proxy connects (and looks the name up) itself: the address cannot be
                # pinned, but a name that resolves to a private address here is refused too.
                if self._check_host is not None:
                    try:
                        await self._check_host(target.host)
                    except (LookupError, ValueError) as exc:
                        raise RefusedAddress(exc) from exc
                return await self._post_via_proxy(url, body, fields)
            async with asyncio.timeout(self.timeout_s):
                answer = await self._pool.exchange(
                    target, target.request(fields, body), read_body=False
                )
                return answer.status

    def _proxied(self, target: Target) -> bool:
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

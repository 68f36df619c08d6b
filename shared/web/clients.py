"""Calls from one service to another service *of the same member* over HTTP.

Members talk to each other only through Kafka; within a member, a service may ask its
siblings (the referral service asks the consent service for a decision and the directory
for routing). The caller presents a short-lived token of its own (``sub`` =
``service:<name>``, the member's ``org``, the scopes it needs), signed with its configured
key, and re-signed before it expires. Errors are raised as :class:`ServiceCallFailed`
without the answer's body (it may hold personal data).

The calls go through :class:`shared.web.http1.Http1Pool` (kept-alive HTTP/1.1 on asyncio
streams: about a tenth of httpx's CPU per call, which showed in the referral benchmark as a
fifth of the sending API's time). httpx carries them instead where a test hands in a
transport (an ASGI app in the same process) or the environment puts a proxy in the way.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import httpx

from shared.identity.auth import Signer, mint_token
from shared.web.errors import ServiceUnavailable
from shared.web.http1 import Http1Error, Http1Pool, Target
from shared.web.observability import current_traceparent, request_id_var


class ServiceCallFailed(ServiceUnavailable):
    slug = "dependency-unavailable"
    title = "A service this operation depends on did not answer"
    transient = True  # a worker waits and retries instead of counting a failed attempt


MAX_ANSWER = 8 * 1024 * 1024  # a sibling's answer is small JSON; a longer one is an error
MAX_CONNECTIONS = 100  # calls at once to one sibling; more wait for a turn


@dataclass(frozen=True)
class ServiceAnswer:
    """A sibling's answer: its status and body."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class ServiceClient:
    """An HTTP client to one sibling service, with its own service token."""

    def __init__(
        self,
        *,
        base_url: str,
        service: str,
        org: str,
        scopes: list[str],
        private_key_pem: str = "",
        ttl_seconds: int = 300,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.org = org
        self.scopes = scopes
        self.private_key_pem = private_key_pem or None
        self.ttl_seconds = ttl_seconds
        self._token: str | None = None
        self._token_until = 0.0
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._pool: Http1Pool | None = None
        scheme, _, rest = self.base_url.partition("://")
        proxies = urllib.request.getproxies_environment()
        proxied = bool(proxies.get(scheme) or proxies.get("all")) and not (
            urllib.request.proxy_bypass(rest.split("/", 1)[0])
        )
        if transport is not None or proxied:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout, transport=transport
            )
        else:
            self._pool = Http1Pool(max_body=MAX_ANSWER)
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)  # as httpx's default pool limit
        self._targets: dict[str, Target] = {}

    def _bearer(self) -> str:
        now = time.monotonic()
        if self._token is None or now > self._token_until:
            self._token = mint_token(
                sub=f"service:{self.service}",
                org=self.org,
                scopes=self.scopes,
                ttl_seconds=self.ttl_seconds,
                signer=Signer(private_key_pem=self.private_key_pem),
            )
            self._token_until = now + self.ttl_seconds * 0.8
        return self._token

    async def post(self, path: str, body: dict[str, Any], *, what: str) -> ServiceAnswer:
        """POST ``body`` to ``path``; a transport failure, a timeout or a 5xx raises
        ServiceCallFailed (``what`` names the call, e.g. "consent decision"). 4xx answers
        are returned."""
        headers = {
            "authorization": f"Bearer {self._bearer()}",
            "content-type": "application/json",
        }
        # The sibling's records (its audit record of this call among them) carry the
        # caller's request id and trace, so one request can be followed across services.
        rid, traceparent = request_id_var.get(), current_traceparent()
        if rid:
            headers["x-request-id"] = rid
        if traceparent:
            headers["traceparent"] = traceparent
        content = json.dumps(body, separators=(",", ":")).encode()
        try:
            answer = await self._send(path, headers, content)
        except (httpx.HTTPError, Http1Error, TimeoutError) as exc:
            raise ServiceCallFailed(f"{what}: {type(exc).__name__}") from exc
        if answer.status_code >= 500:
            raise ServiceCallFailed(f"{what}: status {answer.status_code}")
        return answer

    async def _send(self, path: str, headers: dict[str, str], content: bytes) -> ServiceAnswer:
        if self._pool is None:
            assert self._client is not None
            response = await self._client.post(path, content=content, headers=headers)
            return ServiceAnswer(response.status_code, response.content)
        target = self._targets.get(path)
        if target is None:
            target = self._targets[path] = Target.of(self.base_url + path)
        async with asyncio.timeout(self.timeout), self._slots:
            answer = await self._pool.exchange(
                target, target.request(headers, content), read_body=True
            )
        return ServiceAnswer(answer.status, answer.body)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._pool is not None:
            self._pool.aclose()

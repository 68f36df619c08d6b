"""Calls from one service to another service *of the same member* over HTTP.

Members talk to each other only through Kafka; within a member, a service may ask its
siblings (the referral service asks the consent service for a decision and the directory
for routing). The caller presents a short-lived token of its own (``sub`` =
``service:<name>``, the member's ``org``, the scopes it needs), signed with its configured
key, and re-signed before it expires. Errors are raised as :class:`ServiceCallFailed`
without the answer's body (it may hold personal data).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared.auth import mint_token
from shared.errors import ServiceUnavailable
from shared.observability import current_traceparent, request_id_var


class ServiceCallFailed(ServiceUnavailable):
    slug = "dependency-unavailable"
    title = "A service this operation depends on did not answer"
    transient = True  # a worker waits and retries instead of counting a failed attempt


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
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport
        )

    def _bearer(self) -> str:
        now = time.monotonic()
        if self._token is None or now > self._token_until:
            self._token = mint_token(
                sub=f"service:{self.service}",
                org=self.org,
                scopes=self.scopes,
                ttl_seconds=self.ttl_seconds,
                private_key_pem=self.private_key_pem,
            )
            self._token_until = now + self.ttl_seconds * 0.8
        return self._token

    async def post(self, path: str, body: dict[str, Any], *, what: str) -> httpx.Response:
        """POST ``body`` to ``path``; a transport failure or a 5xx raises ServiceCallFailed
        (``what`` names the call, e.g. "consent decision"). 4xx answers are returned."""
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        # The sibling's records (its audit record of this call among them) carry the
        # caller's request id and trace, so one request can be followed across services.
        rid, traceparent = request_id_var.get(), current_traceparent()
        if rid:
            headers["X-Request-ID"] = rid
        if traceparent:
            headers["traceparent"] = traceparent
        try:
            response = await self._client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceCallFailed(f"{what}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ServiceCallFailed(f"{what}: status {response.status_code}")
        return response

    async def aclose(self) -> None:
        await self._client.aclose()

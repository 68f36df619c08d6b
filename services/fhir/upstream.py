"""Calls from the facade to this member's own services, as the caller.

The caller's bearer token goes on unchanged (the services check its scopes and unit claim,
apply the consent decision and audit the access as for any other caller), with the
request id and trace, and the caller's ``Idempotency-Key`` and ``If-Match`` where an
interaction carries them. An answer that is not a success becomes an ``OperationOutcome``
(:func:`services.fhir.outcome.from_problem`) without the facade reading its body further.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import httpx
from fastapi import Request
from fastapi.responses import Response

from services.fhir.outcome import FhirError, from_problem
from services.fhir.settings import FhirSettings
from shared.web.observability import current_traceparent, request_id_var

Service = Literal["referral", "directory", "consent", "notify"]
PASSED_ON: Final = ("authorization", "idempotency-key", "if-match")


class UpstreamAnswer(Exception):
    """A service's answer that is not a success; the facade answers it as an outcome."""

    def __init__(self, status: int, content: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.content = content
        # Where the service's fields are in the resource sent (field -> FHIR element).
        self.paths: Mapping[str, str] = {}


async def upstream_answer(_: Request, exc: Exception) -> Response:
    """The exception handler: the service's problem as an ``OperationOutcome``."""
    assert isinstance(exc, UpstreamAnswer)
    return from_problem(exc.status, exc.content, exc.paths)


class Upstream:
    """One HTTP client per service of this member (a transport may be handed in: tests)."""

    def __init__(
        self,
        settings: FhirSettings,
        transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        urls: dict[Service, str] = {
            "referral": settings.referral_url,
            "directory": settings.directory_url,
            "consent": settings.consent_url,
            "notify": settings.notify_url,
        }
        self._clients = {
            name: httpx.AsyncClient(
                base_url=url,
                timeout=settings.timeout_s,
                transport=(transports or {}).get(name),
            )
            for name, url in urls.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def ready(self, service: Service) -> bool:
        """Whether ``service`` answers its readiness (no caller: an operator's probe)."""
        try:
            return (await self._clients[service].get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def call(
        self,
        request: Request,
        service: Service,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The service's answer to ``method path`` as the caller; raises
        :class:`UpstreamAnswer` for anything but 2xx."""
        sent = {k: v for k, v in request.headers.items() if k in PASSED_ON}
        sent.update(headers or {})
        if rid := request_id_var.get():
            sent["x-request-id"] = rid
        if tp := current_traceparent():
            sent["traceparent"] = tp
        try:
            answer = await self._clients[service].request(
                method, path, params=params, json=json, headers=sent
            )
        except httpx.HTTPError as exc:
            raise FhirError(
                503,
                f"the member's {service} service did not answer",
                code="transient",
                headers={"Retry-After": "5"},
            ) from exc
        if answer.status_code >= 300:
            raise UpstreamAnswer(answer.status_code, answer.content)
        return answer

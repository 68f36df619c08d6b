"""What every interaction of the facade uses: its base URL, FHIR answers, the upstream."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle

from services.fhir.mapping import validated
from services.fhir.outcome import FHIR_JSON
from services.fhir.upstream import Upstream


def base_of(request: Request) -> str:
    """The facade's base URL as the caller reached it."""
    return str(request.base_url).rstrip("/") + "/fhir/R4"


def upstream_of(request: Request) -> Upstream:
    up: Upstream = request.app.state.upstream
    return up


def fhir(
    resource: dict[str, Any],
    *,
    status: int = 200,
    version: int | str | None = None,
    location: str | None = None,
) -> JSONResponse:
    """A FHIR answer; with ``version``, its ``ETag`` (weak, as FHIR has it)."""
    headers = {"ETag": f'W/"{version}"'} if version is not None else {}
    if location:
        headers["Location"] = location
    return JSONResponse(resource, status_code=status, media_type=FHIR_JSON, headers=headers)


def searchset(
    request: Request,
    resource_type: str,
    entries: list[tuple[dict[str, Any], str]],
    next_page: str | None,
    total: int | None = None,
) -> dict[str, Any]:
    """A ``searchset`` Bundle of ``(resource, mode)`` entries (``match`` or ``include``)
    with its ``self`` and, more to come, ``next`` link: the same search with the opaque
    ``_page`` the service gave."""
    base = base_of(request)
    here = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"]
    links = [{"relation": "self", "url": str(request.url)}]
    if next_page:
        query = urlencode([*here, ("_page", next_page)])
        links.append({"relation": "next", "url": f"{base}/{resource_type}?{query}"})
    body: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": mode},
            }
            for r, mode in entries
        ],
    }
    return validated(Bundle, body)

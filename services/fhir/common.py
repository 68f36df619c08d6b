"""What every interaction of the facade uses: its base URL, FHIR answers, the upstream."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

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

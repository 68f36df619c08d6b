"""The facade's application: ``/fhir/R4`` over this member's services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.fhir import capability, sending, tasks
from services.fhir.outcome import FhirError, fhir_error, http_error, invalid_request
from services.fhir.settings import FhirSettings
from services.fhir.upstream import Service, Upstream, UpstreamAnswer, upstream_answer

BASE = "/fhir/R4"
VERSION = "0.1.0"


def create_fhir_app(
    *,
    member: str,
    settings: FhirSettings | None = None,
    transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
    token_endpoint: str = "",
) -> FastAPI:
    """The facade of ``member`` (its orgnr); ``transports`` reach the services in-process."""
    settings = settings or FhirSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = Upstream(settings, transports)
        try:
            yield
        finally:
            await app.state.upstream.aclose()

    app = FastAPI(
        title="vardkedja FHIR R4 facade",
        version=VERSION,
        description="Task + ServiceRequest over this member's referral service (FHIR 4.0.1).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.fhir_settings = settings
    app.state.member = member
    app.state.version = VERSION
    app.state.token_endpoint = token_endpoint
    app.include_router(capability.router, prefix=BASE, tags=["conformance"])
    app.include_router(tasks.router, prefix=BASE, tags=["Task"])
    app.include_router(sending.router, prefix=BASE, tags=["Task"])
    app.add_exception_handler(FhirError, fhir_error)
    app.add_exception_handler(UpstreamAnswer, upstream_answer)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    return app

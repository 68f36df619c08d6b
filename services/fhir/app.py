"""The facade's application: ``/fhir/R4`` over this member's services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.fhir import (
    capability,
    careplan,
    consent,
    directory,
    operations,
    sending,
    subscriptions,
    tasks,
)
from services.fhir.common import upstream_of
from services.fhir.outcome import (
    FhirError,
    fhir_error,
    http_error,
    invalid_request,
    outcome_responses,
)
from services.fhir.settings import FhirSettings
from services.fhir.upstream import Service, Upstream, UpstreamAnswer, upstream_answer
from shared.config import HttpSettings
from shared.web.docs import install_docs
from shared.web.limits import BodyLimitMiddleware
from shared.web.observability import RequestContextMiddleware

BASE = "/fhir/R4"
VERSION = "0.1.0"


def create_fhir_app(
    *,
    member: str,
    settings: FhirSettings | None = None,
    http: HttpSettings | None = None,
    transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
    token_endpoint: str = "",
) -> FastAPI:
    """The facade of ``member`` (its orgnr); ``transports`` reach the services in-process."""
    settings = settings or FhirSettings()
    http = http or HttpSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.upstream.aclose()

    app = FastAPI(
        title="vardkedja FHIR R4 facade",
        version=VERSION,
        description=(
            "FHIR 4.0.1 over this member's services: Task + ServiceRequest (the referral "
            "service), HealthcareService, Organization, Location, Endpoint and "
            "`HealthcareService/$resolve` (the directory), Consent and `Consent/$decide` (the "
            "consent service), CarePlan (SIP and remissmöte plans), and Subscription (the "
            "R5 backport: a Task's status changed, id-only, signed; notify). The caller's bearer "
            "token is passed on: the same scopes, unit claim, consent decisions and audit as "
            "the JSON APIs (ADR 0029)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    # Bodies over the limit: 413 before they are read; then request ids, logs and metrics.
    app.add_middleware(
        BodyLimitMiddleware,
        default=http.max_body_bytes,
        idle_timeout_s=http.body_idle_timeout_s,
    )
    app.add_middleware(RequestContextMiddleware, service="fhir")
    # Made here, closed at shutdown: an app served without its lifespan (in a test) works too.
    app.state.upstream = Upstream(settings, transports)
    app.state.fhir_settings = settings
    app.state.member = member
    app.state.version = VERSION
    app.state.token_endpoint = token_endpoint
    app.include_router(capability.router, prefix=BASE, tags=["conformance"])
    app.include_router(operations.router, prefix=BASE, tags=["conformance"])
    errors = outcome_responses(400, 401, 403, 404, 422, 503)
    app.include_router(tasks.router, prefix=BASE, tags=["Task"], responses=errors)
    app.include_router(sending.router, prefix=BASE, tags=["Task"], responses=errors)
    app.include_router(directory.router, prefix=BASE, tags=["Directory"], responses=errors)
    app.include_router(consent.router, prefix=BASE, tags=["Consent"], responses=errors)
    app.include_router(careplan.router, prefix=BASE, tags=["CarePlan"], responses=errors)
    app.include_router(subscriptions.router, prefix=BASE, tags=["Subscription"], responses=errors)
    app.add_exception_handler(FhirError, fhir_error)
    app.add_exception_handler(UpstreamAnswer, upstream_answer)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    _operations_routes(app)
    return app


def _operations_routes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness",
        description="Answers 200 while the process runs. No authentication.",
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness",
        description="200 once this member's referral service answers its readiness, else 503.",
        responses={503: {"description": "the referral service is not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        ready = await upstream_of(request).ready("referral")
        return JSONResponse({"status": "ok" if ready else "unavailable"}, 200 if ready else 503)

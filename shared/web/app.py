"""The FastAPI application of a service: one factory for all four.

Request dependencies: :data:`DbSession` owns the transaction of a request — it commits
*before* the response is sent (``scope="function"``; ADR 0004), rolls back on any error,
and services only flush. :data:`Ctx` gives the service context (outbox, auditor, settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings, check_production, get_settings
from shared.data import migrations
from shared.data.db import utcnow
from shared.identity.audit import RefusalAuditMiddleware
from shared.identity.auth import Caller, TokenVerifier, current_caller
from shared.identity.auth.dependencies import UnitResolver
from shared.messaging.kafka import broker_reachable
from shared.service import ServiceContext, ServiceSpec, build_context, freeze_startup_objects
from shared.web.docs import install_docs
from shared.web.errors import (
    PROBLEM_JSON,
    AppError,
    Conflict,
    InvalidInput,
    Problem,
    install_problem_handlers,
)
from shared.web.field_rules import describe_rules
from shared.web.limits import BodyLimitMiddleware, BodyTooLarge
from shared.web.nul import refuse_nul_characters
from shared.web.observability import RequestContextMiddleware

log = logging.getLogger("vardkedja.app")


async def get_ctx(request: Request) -> ServiceContext:
    # async: FastAPI runs a plain ``def`` dependency on a worker thread, once per request.
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: commit before the response on success, roll back on error."""
    ctx: ServiceContext = request.app.state.ctx
    async with ctx.db.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


class IdempotencyKeyReused(AppError):
    status = 422
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request"


class IdempotencyInProgress(Conflict):
    slug = "idempotency-in-progress"
    title = "A request with this Idempotency-Key is being processed; retry shortly"


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=255,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Retry-safe creation: the same key and body return the first answer again; "
        "the same key with another body is refused (422).",
    ),
]


class Idempotency:
    """Replays the stored answer of a creating POST retried with the same Idempotency-Key."""

    def __init__(self, ctx: ServiceContext, session: AsyncSession, caller: Caller) -> None:
        self.table = ctx.spec.infra.idempotency
        self.session = session
        self.caller = self.scope_of(caller)

    @staticmethod
    def scope_of(caller: Caller) -> str:
        """Whose keys these are: the member, the unit the token acts for and the subject.

        One subject acting for two units (a user working at both, a system) has two sets of
        keys: unit B must never get unit A's answer replayed. The unit and subject are
        hashed together (unambiguous, and within the column whatever their lengths)."""
        who = json.dumps([caller.unit, caller.sub], ensure_ascii=False)
        return f"{caller.org}:{hashlib.sha256(who.encode()).hexdigest()}"

    @staticmethod
    def fingerprint(route: str, body: BaseModel) -> str:
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()

    async def replay(self, key: str | None, fingerprint: str) -> Response | None:
        """The stored response for ``key``, or None when the key is new (or absent)."""
        if key is None:
            return None
        t = self.table
        row = (
            await self.session.execute(select(t).where(t.c.caller == self.caller, t.c.key == key))
        ).first()
        if row is None:
            return None
        if row.request_hash != fingerprint:
            raise IdempotencyKeyReused("send a new Idempotency-Key for a different request")
        headers = dict(row.response_headers)
        headers["Idempotent-Replayed"] = "true"
        return Response(
            content=row.response_body,
            status_code=row.status_code,
            headers=headers,
            media_type="application/json",
        )

    async def remember(
        self,
        key: str | None,
        fingerprint: str,
        status_code: int,
        body: BaseModel,
        headers: dict[str, str],
    ) -> None:
        """Store the answer in the request's transaction (so it exists iff the effect does)."""
        if key is None:
            return
        # A concurrent request with the same key won: this whole request rolls back.
        try:
            await self.session.execute(
                self.table.insert().values(
                    caller=self.caller,
                    key=key,
                    request_hash=fingerprint,
                    status_code=status_code,
                    response_body=body.model_dump_json().encode(),
                    response_headers=headers,
                    created_at=utcnow(),
                )
            )
        except IntegrityError as exc:
            raise IdempotencyInProgress() from exc


class Health(BaseModel):
    status: str
    service: str
    member: str


class Readiness(BaseModel):
    status: str
    database: bool
    broker: bool


API_NOTE = (
    "Authenticate with a bearer JWT (`vardkedja token` mints one in development). "
    "Errors are RFC 9457 `application/problem+json`."
)
"""Said at the end of every service's API description."""


def _unit_resolver(
    ctx: ServiceContext, find: Callable[[AsyncSession, str, str], Awaitable[str | None]]
) -> UnitResolver:
    """Resolves an HSA-id in a token's ``unit`` claim to this member's unit id, in a
    read-only transaction of its own (the caller is known before the request's session)."""
    member = ctx.settings.member.orgnr

    async def resolve(hsa_id: str) -> str | None:
        async with ctx.db.transaction() as session:
            return await find(session, member, hsa_id)

    return resolve


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    """The API application of ``spec`` for one member."""
    settings = settings or get_settings()
    check_production(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await migrations.upgrade(spec.migrations_dir, settings.db_url)
        warming = asyncio.ensure_future(spec.on_api_start(ctx)) if spec.on_api_start else None
        freeze_startup_objects()
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
                with contextlib.suppress(BaseException):
                    await warming
            await ctx.db.dispose()

    ctx = build_context(spec, settings)
    app = FastAPI(
        title=f"{spec.title} — {settings.member.name}",
        description=f"{spec.description.rstrip()}\n\n{API_NOTE}",
        version=spec.version,
        lifespan=lifespan,
        openapi_tags=[
            *spec.openapi_tags,
            {"name": "operations", "description": "Health, readiness and metrics for operators."},
        ],
        responses={},
        # The docs page is served with its assets, offline (shared.web.docs); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings.auth)
    if spec.unit_by_hsa_id is not None:
        app.state.unit_resolver = _unit_resolver(ctx, spec.unit_by_hsa_id)
    # Starlette runs the last added outermost: request ids are set before a refusal's audit.
    app.add_middleware(RefusalAuditMiddleware)
    # Bodies over the operation's limit: 413 before they are read (FastAPI reads a JSON body
    # before the dependencies that authenticate the caller).
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.http.max_body_bytes,
        limits=spec.body_limits_of(settings),
        idle_timeout_s=settings.http.body_idle_timeout_s,
    )
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    install_problem_handlers(app)
    # Who calls first (401, or 403 for another member's token), then what the request
    # holds: a NUL anywhere is refused before anything runs (shared.web.nul).
    edge = [Depends(current_caller), Depends(refuse_nul_characters)]
    for router in spec.routers:
        app.include_router(router, dependencies=edge)
    _operations_routes(app, ctx)
    _customise_openapi(app, spec, settings)
    return app


def _operations_routes(app: FastAPI, ctx: ServiceContext) -> None:
    settings = ctx.settings

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness",
        description="Answers 200 while the process runs. No authentication.",
        response_model=Health,
    )
    async def healthz() -> Health:
        return Health(status="ok", service=ctx.spec.name, member=settings.member.orgnr)

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: database and broker reachable",
        description="200 when the service's database answers and the Kafka broker answers a "
        "metadata request; 503 (problem+json) otherwise. No authentication.",
        response_model=Readiness,
        responses={503: {"description": "Not ready", "content": {PROBLEM_JSON: {}}}},
    )
    async def readyz() -> JSONResponse:
        try:
            await ctx.db.ping()
            db_ok = True
        except Exception:
            db_ok = False
        broker_ok = await broker_reachable(settings.kafka, timeout=2.0)
        ready = Readiness(
            status="ready" if db_ok and broker_ok else "not ready",
            database=db_ok,
            broker=broker_ok,
        )
        if db_ok and broker_ok:
            return JSONResponse(ready.model_dump())
        problem = Problem(
            type="https://vardkedja.se/problems/not-ready",
            title="Not ready",
            status=503,
            detail=f"database={'up' if db_ok else 'down'}, broker={'up' if broker_ok else 'down'}",
        )
        return JSONResponse(
            problem.model_dump(exclude_none=True), status_code=503, media_type=PROBLEM_JSON
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        description="Prometheus text format. Labels carry route templates and kinds only.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "metrics"}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_NULL: dict[str, Any] = {"type": "null"}


def _optional_not_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an optional parameter without its ``null`` branch.

    ``X | None = None`` reads as "X or null", but a header, query or cookie parameter is
    either sent (as X) or left out: it has no null, and the text ``null`` is no X.
    """
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or _NULL not in branches:
        return schema
    rest = [b for b in branches if b != _NULL]
    outer = {k: v for k, v in schema.items() if k != "anyOf"}
    if outer.get("default", ...) is None:
        del outer["default"]
    if len(rest) == 1:
        return {**rest[0], **outer}
    return {"anyOf": rest, **outer}


def _customise_openapi(app: FastAPI, spec: ServiceSpec, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name, sub in components["Problem"].pop("$defs", {}).items():
            components[name] = sub
        describe_rules(components)  # the rule a field's name stands for (shared.web.field_rules)
        # FastAPI's default 422 schema is replaced by problem+json everywhere.
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        example = InvalidInput.field("name", "missing", "Field required").problem("/v1/...")
        for route, path in schema.get("paths", {}).items():
            for method, op in path.items():
                for parameter in op.get("parameters", []):
                    if not parameter.get("required"):
                        parameter["schema"] = _optional_not_nullable(parameter["schema"])
                responses = op.get("responses", {})
                if "requestBody" in op and "413" not in responses:
                    limit = spec.body_limits_of(settings).get(
                        f"{method.upper()} {route}", settings.http.max_body_bytes
                    )
                    responses["413"] = {
                        "description": f"The body is over {limit} bytes (not read)",
                        "content": {
                            PROBLEM_JSON: {
                                "schema": {"$ref": "#/components/schemas/Problem"},
                                "example": BodyTooLarge(f"at most {limit} bytes")
                                .problem(route)
                                .model_dump(exclude_none=True),
                            }
                        },
                    }
                if "422" in responses:
                    responses["422"] = {
                        "description": "The request is invalid (each field and rule named)",
                        "content": {
                            PROBLEM_JSON: {
                                "schema": {"$ref": "#/components/schemas/Problem"},
                                "example": example.model_dump(exclude_none=True),
                            }
                        },
                    }
        schema["info"]["x-member"] = {
            "orgnr": settings.member.orgnr,
            "name": settings.member.name,
            "kind": str(settings.member.kind),
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

"""RFC 9457 problem details for every error any service returns.

Domain errors subclass :class:`AppError`; one set of handlers renders them, FastAPI's
validation errors and unexpected exceptions as ``application/problem+json``. A problem
never echoes the request's values (they may be personal data): validation problems name
the field and the rule only. A body that cannot be read at all (not UTF-8) is the
documented 422 like malformed JSON, and a 405 lists in ``Allow`` every method of the path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("vardkedja.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://vardkedja.se/problems/"


class FieldProblem(BaseModel):
    """One invalid field: where it is and which rule it broke."""

    field: str = Field(description="dotted path of the field, e.g. `person.personnummer`")
    rule: str = Field(description="machine-readable rule, e.g. `missing`, `luhn`")
    message: str = Field(description="human-readable explanation; never the submitted value")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(examples=[PROBLEM_BASE + "validation"])
    title: str = Field(examples=["The request is invalid"])
    status: int = Field(examples=[422])
    detail: str | None = Field(default=None, examples=["2 fields are invalid"])
    instance: str | None = Field(default=None, description="the request path")
    trace_id: str | None = Field(default=None, description="quote it when reporting a problem")
    errors: list[FieldProblem] | None = None
    allowed: list[str] | None = Field(
        default=None, description="for conflicts: the transitions or values that are allowed"
    )


class AppError(Exception):
    """Base class of every domain error. Subclasses set ``status`` and ``slug``."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] | None = None,
        allowed: Sequence[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.allowed = list(allowed) if allowed else None
        self.headers = headers or {}

    @classmethod
    def kind(cls, slug: str, title: str) -> type[Self]:
        """A problem type of this status, declared in one line:
        ``ConsentNotFound = NotFound.kind("consent-not-found", "No such consent ...")``.
        Its class name (in logs' ``error_type``) is the slug in CamelCase."""
        name = "".join(part.capitalize() for part in slug.split("-"))
        return type(name, (cls,), {"slug": slug, "title": title, "__qualname__": name})

    def problem(self, instance: str | None = None, trace_id: str | None = None) -> Problem:
        return Problem(
            type=PROBLEM_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            trace_id=trace_id,
            errors=self.errors,
            allowed=self.allowed,
        )


class InvalidInput(AppError):
    status = 422
    slug = "validation"
    title = "The request is invalid"

    @classmethod
    def field(cls, field: str, rule: str, message: str) -> InvalidInput:
        """One invalid field."""
        return cls(
            f"{field}: {message}", errors=[FieldProblem(field=field, rule=rule, message=message)]
        )

    @classmethod
    def fields(cls, problems: list[tuple[str, str]]) -> InvalidInput:
        """Several invalid fields, each ``(field, rule)``."""
        n = len(problems)
        return cls(
            f"{n} field{'s' * (n != 1)} invalid",
            errors=[
                FieldProblem(field=f, rule=r, message=r.replace("_", " ")) for f, r in problems
            ],
        )


class Unauthorized(AppError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="vardkedja"'})


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class PreconditionFailed(AppError):
    status = 412
    slug = "precondition-failed"
    title = "The resource has changed (If-Match does not match)"


class PreconditionRequired(AppError):
    status = 428
    slug = "precondition-required"
    title = "If-Match is required for this change"


class ServiceUnavailable(AppError):
    status = 503
    slug = "unavailable"
    title = "A dependency is unavailable"


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for an operation: the listed errors plus 401 and 422."""
    by_status: dict[int, list[type[AppError]]] = {}
    all_errors: tuple[type[AppError], ...] = (Unauthorized, InvalidInput, *errors)
    for err in all_errors:
        by_status.setdefault(err.status, []).append(err)
    out: dict[int | str, dict[str, Any]] = {}
    for status, errs in sorted(by_status.items()):
        first = errs[0]
        out[status] = {
            "description": " / ".join(e.title for e in errs),
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": first().problem(instance="/v1/...").model_dump(exclude_none=True),
                }
            },
        }
    return out


def _trace_id(request: Request) -> str | None:
    return getattr(request.state, "trace_id", None)


def _render(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """Turn pydantic error dicts into field problems, dropping the submitted values."""
    out = []
    for err in errors:
        out.append(
            FieldProblem(
                field=_field_path(err.get("loc", ())),
                rule=str(err.get("type", "invalid")),
                message=str(err.get("msg", "invalid value")),
            )
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return _render(request, exc.problem(request.url.path, _trace_id(request)), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = field_problems(exc.errors())
        n = len(problems)
        problem = InvalidInput(
            f"{n} field{'s' if n != 1 else ''} invalid", errors=problems
        ).problem(request.url.path, _trace_id(request))
        return _render(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _unreadable_body(exc):
            # A body that is not UTF-8 (or cannot be parsed at all) is an invalid request
            # like malformed JSON: the documented 422, naming the body.
            unreadable = InvalidInput.field(
                "body", "json_invalid", "the body is not JSON in UTF-8"
            ).problem(request.url.path, _trace_id(request))
            return _render(request, unreadable)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # The router names the methods of the one route that answered; the path's
            # template may be served by several.
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = ", ".join(allowed_methods(request))
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        problem = Problem(
            type=PROBLEM_BASE + slug,
            title=str(exc.detail) if isinstance(exc.detail, str) else "HTTP error",
            status=exc.status_code,
            instance=request.url.path,
            trace_id=_trace_id(request),
        )
        return _render(request, problem, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from sqlalchemy.orm.exc import StaleDataError

        from shared.data.db import is_infrastructure_error

        if isinstance(exc, StaleDataError):
            # A versioned row changed between this request's read and its write (a worker
            # applying an event, or another request): its If-Match no longer holds, and
            # nothing was committed. The exception text names tables only; not logged.
            log.info("concurrent change", extra={"path_template": _route_template(request)})
            changed = PreconditionFailed(
                "It changed while this request ran; read it again (its new ETag) and send "
                "the change once more if it still applies."
            )
            return _render(request, changed.problem(request.url.path, _trace_id(request)))
        if is_infrastructure_error(exc):
            # The database (or a sibling) cannot serve now: nothing was committed, and the
            # same request (with its Idempotency-Key) may be sent again.
            log.warning(
                "dependency unavailable",
                extra={"error_type": type(exc).__name__, "path_template": _route_template(request)},
            )
            unavailable = Problem(
                type=PROBLEM_BASE + ServiceUnavailable.slug,
                title=ServiceUnavailable.title,
                status=503,
                detail="The request was not completed; send it again (with its Idempotency-Key).",
                instance=request.url.path,
                trace_id=_trace_id(request),
            )
            return _render(request, unavailable, {"Retry-After": "2"})
        # The exception text may contain personal data: log its type only, plus the trace id.
        log.error(
            "unhandled error",
            extra={"error_type": type(exc).__name__, "path_template": _route_template(request)},
        )
        problem = Problem(
            type=PROBLEM_BASE + "internal",
            title="Internal error",
            status=500,
            detail="The error was logged; quote the trace id when reporting it.",
            instance=request.url.path,
            trace_id=_trace_id(request),
        )
        return _render(request, problem)


# FastAPI's answer when it cannot read a request body (for JSON: not UTF-8, or nested too
# deeply to parse); it chains the parser's exception.
_BODY_PARSE_ERROR = "There was an error parsing the body"


def _unreadable_body(exc: StarletteHTTPException) -> bool:
    return (
        exc.status_code == 400
        and exc.detail == _BODY_PARSE_ERROR
        and isinstance(exc.__cause__, Exception)
    )


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path template the request was routed to, sorted.

    A template may be served by several routes (``GET`` and ``PUT`` declared apart); a
    path that only a later template would match (``/v1/units/import`` as a unit id) is
    answered for its own template, as the OpenAPI document lists it.
    """
    routed = request.scope.get("route")
    contexts = list(iter_route_contexts(request.app.router.routes))
    template = next((c.path for c in contexts if c.original_route is routed), None)
    methods: set[str] = set()
    for context in contexts:
        if template is not None and context.path == template:
            methods |= context.methods or set()
    return sorted(methods)


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")

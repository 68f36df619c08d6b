"""Every error of the facade is an ``OperationOutcome`` (FHIR R4 §3.1.0.5).

A problem+json answer of one of the member's services (RFC 9457, ADR 0009) becomes one
issue per invalid field (``expression`` = the field's path, ``details.coding`` = its rule)
or one issue for the whole problem; a conflict's allowed transitions are listed in the
issue's ``diagnostics``. Nothing the caller sent is echoed: the services' problems never
hold submitted values, and the facade's own do not either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fhir.resources.R4B.operationoutcome import OperationOutcome
from starlette.exceptions import HTTPException as StarletteHTTPException

FHIR_JSON: Final = "application/fhir+json"
RULE_SYSTEM: Final = "https://vardkedja.se/fhir/CodeSystem/rule"
PROBLEM_SYSTEM: Final = "https://vardkedja.se/problems"

# The issue type (IssueType value set) of each HTTP status.
_ISSUE_CODE: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
}


class FhirError(Exception):
    """An error the facade itself raises: an HTTP status, an issue type and words."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: str | None = None,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code or _ISSUE_CODE.get(status, "exception")
        self.diagnostics = diagnostics
        self.expression = expression
        self.rule = rule
        self.headers = headers or {}


def issue(
    status: int,
    diagnostics: str,
    *,
    code: str | None = None,
    expression: str | None = None,
    rule: str | None = None,
) -> dict[str, Any]:
    """One ``OperationOutcome.issue``."""
    out: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": code or _ISSUE_CODE.get(status, "exception"),
        "diagnostics": diagnostics,
    }
    if rule:
        out["details"] = {"coding": [{"system": RULE_SYSTEM, "code": rule}], "text": diagnostics}
    if expression:
        out["expression"] = [expression]
    return out


def outcome_response(
    status: int, issues: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    """An ``OperationOutcome`` answer, validated by the model library."""
    body = OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues})
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


def from_problem(status: int, content: bytes, paths: Mapping[str, str] | None = None) -> Response:
    """A service's answer that is not a success, as an ``OperationOutcome``; ``paths`` put
    a field of the service's API where it is in the resource sent (its first part)."""
    try:
        problem: dict[str, Any] = json.loads(content)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = str(problem.get("title") or f"the service answered {status}")
    detail = problem.get("detail")
    words = f"{title}: {detail}" if detail and detail != title else title
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1] or None
    issues = [
        issue(
            status,
            f"{e.get('field')}: {e.get('message')}",
            expression=_where(str(e.get("field") or ""), paths or {}),
            rule=e.get("rule"),
        )
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    if problem.get("allowed"):
        words += "; allowed: " + ", ".join(str(a) for a in problem["allowed"])
    if not issues:
        issues = [issue(status, words, rule=slug)]
    return outcome_response(status, issues)


def _where(field: str, paths: Mapping[str, str]) -> str | None:
    first = field.split(".", 1)[0]
    return paths.get(first, field) or None


async def fhir_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return outcome_response(
        exc.status,
        [
            issue(
                exc.status, exc.diagnostics, code=exc.code, expression=exc.expression, rule=exc.rule
            )
        ],
        exc.headers,
    )


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    words = {404: "no such resource type or operation", 405: "the interaction is not supported"}
    return outcome_response(
        exc.status_code, [issue(exc.status_code, words.get(exc.status_code, str(exc.detail)))]
    )


async def invalid_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        issues.append(
            issue(
                400,
                f"{where}: {err.get('msg', 'invalid')}",
                expression=where,
                rule=str(err.get("type", "invalid")),
            )
        )
    return outcome_response(400, issues)


_WHY: Final = {
    400: "a parameter or the body is not valid FHIR for this interaction",
    401: "no valid bearer token",
    403: "the token's scopes or unit do not allow it, or no basis allows the share",
    404: "no such resource for your unit",
    409: "the step is not allowed now (the allowed ones are listed)",
    412: "the resource changed since you read it (If-Match)",
    422: "the resource breaks a rule of the referral API (the element is named)",
    428: "If-Match is required",
    503: "one of this member's services did not answer",
}


def outcome_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=``: each status answered with an ``OperationOutcome``."""
    return {
        status: {
            "description": _WHY[status],
            "content": {
                FHIR_JSON: {
                    "example": {
                        "resourceType": "OperationOutcome",
                        "issue": [issue(status, _WHY[status])],
                    }
                }
            },
        }
        for status in statuses
    }

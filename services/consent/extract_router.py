"""HTTP API of the person's audit extract (loggutdrag), as JSON or a printable page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.consent import extract
from services.consent.api import PersonStep
from services.consent.schemas import AuditExtract, AuditExtractRequest
from shared.domain.swedish import time_sv
from shared.identity.audit import AuditUnavailable
from shared.identity.identifiers import mask_personnummer
from shared.web.errors import Forbidden, InvalidInput, problem_responses

# Beside the person search, under the same path and tag.
extract_router = APIRouter(prefix="/v1/persons", tags=["persons"])


@extract_router.post(
    "/audit-extract",
    response_model=AuditExtract,
    summary="The person's audit extract (loggutdrag)",
    description=(
        "Every access to the person's data in this member's four services (directory, "
        "consent, referral, notify): who, in which unit, when, what and with which outcome, "
        "oldest first, optionally within `since`/`until`. Each entry has its codes and also "
        "the same in words for the person: the action in Swedish (`docs/audit-actions.md`), "
        "the unit's and the huvudman's names as the directory knows them, and the time in "
        "Swedish local time. The other services' records reach "
        "the consent service as events on the member's internal topic (ADR 0011), so the "
        "newest may lag by seconds. `format: html` gives a printable page. The personnummer "
        "goes in the body, never in the URL. Audited. Scope `consent:person`."
    ),
    responses={
        **problem_responses(Forbidden, AuditUnavailable),
        200: {
            "description": "The extract, as JSON or (with `format: html`) a printable page",
            "content": {"text/html": {"example": "<!doctype html>..."}},
        },
    },
)
async def audit_extract(body: AuditExtractRequest, step: PersonStep) -> Any:
    if body.since and body.until and body.until <= body.since:
        raise InvalidInput.field("until", "end_before_start", "until must be after since")
    work = step.work
    entries = await extract.audit_entries(
        work,
        audit_table=step.ctx.spec.infra.audit,
        personnummer=body.personnummer,
        since=body.since,
        until=body.until,
    )
    await step.accessed("person.audit_extract", body.personnummer)
    result = AuditExtract(
        person=mask_personnummer(body.personnummer),
        member_orgnr=work.member,
        member_name=work.settings.member.name,
        generated_at=work.now,
        generated_at_local=time_sv(work.now),
        since=body.since,
        until=body.until,
        services=["consent", "directory", "notify", "referral"],
        entries=await extract.in_words(work, entries),
    )
    if body.format == "html":
        return HTMLResponse(extract.render_html(result))
    return result

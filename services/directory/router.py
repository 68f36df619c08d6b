"""HTTP API of the directory service (thin: validation, auth, then the service layer)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from pydantic import BaseModel

from services.directory import replica, service, territory
from services.directory.models import Unit
from services.directory.schemas import (
    CloseRequest,
    ReplicaPage,
    ReplicaUnitOut,
    ReviewRequest,
    UnitCreate,
    UnitOut,
    UnitPage,
    UnitUpdate,
)
from services.directory.service import StatusConflict, UnitNotFound, VersionMismatch
from shared.data.db import utcnow
from shared.data.work import Work
from shared.identity.auth import Caller, require_scopes
from shared.identity.identifiers import HsaId, Kommunkod, Organisationsnummer
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.errors import Conflict, Forbidden, PreconditionRequired, problem_responses
from shared.web.etag import etag, if_match_version
from shared.web.pagination import decode_cursor, next_cursor

router = APIRouter(prefix="/v1", tags=["units"])
replica_router = APIRouter(prefix="/v1/replica", tags=["replica"])

Writer = Annotated[Caller, Depends(require_scopes("directory:write"))]
MEMBER_ADMIN = "member_admin"
Reader = Annotated[Caller, Depends(require_scopes("directory:read"))]


def _writer_work(caller: Writer, session: DbSession, ctx: Ctx) -> Work:
    return Work(session, ctx.outbox, ctx.settings, caller)


def _reader_work(caller: Reader, session: DbSession, ctx: Ctx) -> Work:
    return Work(session, ctx.outbox, ctx.settings, caller)


WriterWork = Annotated[Work, Depends(_writer_work)]
"""The request's :class:`~shared.data.work.Work`, for a caller with ``directory:write``."""
ReaderWork = Annotated[Work, Depends(_reader_work)]
"""The request's :class:`~shared.data.work.Work`, for a caller with ``directory:read``."""
UnitId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="unit id")]
Cursor = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=500)]
HsaIdQuery = Annotated[HsaId | None, Query(description="the unit's HSA-id")]

IfMatchOptional = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="the unit's `ETag`; when given, the change is refused (412) if the unit "
        "has changed since",
    ),
]
IfMatchRequired = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="required: the `ETag` of the version you edited (412 if it changed, "
        "428 if missing)",
    ),
]


UNIT_RULE = (
    " **Who may change a unit:** a token with a `unit` claim changes only that unit; the "
    "`member_admin` role changes any unit of the member, and so does a token without a "
    "`unit` claim (the member's own directory administration, as for an import). Another "
    "unit's token answers 403."
)


def ensure_may_change(caller: Caller, unit_id: str) -> None:
    """A unit's token changes only its own unit; ``member_admin`` and member-level tokens
    (no ``unit`` claim) any unit of the member (the rule in :data:`UNIT_RULE`)."""
    if caller.unit is None or caller.unit == unit_id or caller.has_role(MEMBER_ADMIN):
        return
    raise Forbidden("a unit's token changes only its own unit (other units: member_admin)")


def _out(unit: Unit, response: Response) -> UnitOut:
    response.headers["ETag"] = etag(unit.version)
    return UnitOut.model_validate(unit, from_attributes=True)


async def _own_unit_to_change(work: Work, unit_id: str) -> Unit:
    """The caller's unit ``unit_id``, if the caller may change it (:func:`ensure_may_change`)."""
    assert work.caller is not None  # a WriterWork
    ensure_may_change(work.caller, unit_id)
    return await service.get_own_unit(work, unit_id)


@router.post(
    "/units",
    status_code=status.HTTP_201_CREATED,
    response_model=UnitOut,
    summary="Create a unit/function of your own member",
    description=(
        "Creates a unit owned by the caller's member and publishes it on "
        "`vardkedja.directory`, from where every member's replica picks it up within "
        "seconds. Units are functions, never named persons: contact paths are functional "
        "mailboxes, switchboards, secure-mail addresses, postal addresses or the unit's "
        "inbox. A unit covers only kommuner your member serves by its record "
        "(`PUT /v1/member`: a kommun its own kommunkod, a region its county's); any other "
        "kommunkod is refused with 422 (`kommunkoder`, rule `outside_territory`). "
        "Send an `Idempotency-Key` to retry safely. Scope `directory:write`."
    ),
    responses=problem_responses(Forbidden, Conflict),
)
async def create_unit(
    body: UnitCreate,
    caller: Writer,
    work: WriterWork,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> UnitOut | Response:
    idem = Idempotency(ctx, work.session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/units", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    await territory.check_own_units(
        session=work.session, owner_orgnr=caller.org, kommunkoder=body.kommunkoder
    )
    unit = await service.create_unit(work, body)
    out = _out(unit, response)
    headers = {"ETag": etag(unit.version), "Location": f"/v1/units/{unit.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@router.get(
    "/units",
    response_model=UnitPage,
    summary="List your member's own units",
    description="Your member's units ordered by id, with cursor pagination; `hsa_id` "
    "finds the unit with that HSA-id (at most one). Scope `directory:read`.",
    responses=problem_responses(Forbidden),
)
async def list_units(
    caller: Reader,
    session: DbSession,
    hsa_id: HsaIdQuery = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> UnitPage:
    rows = await service.list_own(
        session=session,
        owner_orgnr=caller.org,
        after=decode_cursor(cursor),
        limit=limit + 1,
        hsa_id=hsa_id,
    )
    return UnitPage(
        items=[UnitOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda r: r.id),
    )


class StaleUnit(BaseModel):
    """A unit whose review is due."""

    unit: UnitOut
    due_since: dt.date


@router.get(
    "/units/stale",
    response_model=list[StaleUnit],
    summary="List your units that are due for review",
    description="Your member's units (not inactive) that nobody has reviewed within the "
    "review period (`VK_DIRECTORY__REVIEW_AFTER_DAYS`, default 182 days), oldest first. "
    "The worker also sends one review-due event per unit and due date, which the notify "
    "service turns into a reminder. Scope `directory:read`.",
    responses=problem_responses(Forbidden),
)
async def list_stale_units(caller: Reader, session: DbSession, ctx: Ctx) -> list[StaleUnit]:
    stale = await service.list_stale(
        session=session,
        owner_orgnr=caller.org,
        today=utcnow().date(),
        period_days=ctx.settings.directory.review_after_days,
    )
    return [
        StaleUnit(unit=UnitOut.model_validate(u, from_attributes=True), due_since=due)
        for u, due in sorted(stale, key=lambda ud: (ud[1], ud[0].id))
    ]


@router.get(
    "/units/{unit_id}",
    response_model=UnitOut,
    summary="Read one of your member's own units",
    description="The owner's copy of a unit, with its `ETag` for a later update. "
    "Scope `directory:read`.",
    responses=problem_responses(Forbidden, UnitNotFound),
)
async def get_unit(unit_id: UnitId, work: ReaderWork, response: Response) -> UnitOut:
    return _out(await service.get_own_unit(work, unit_id), response)


@router.put(
    "/units/{unit_id}",
    response_model=UnitOut,
    summary="Update a unit (If-Match required)",
    description=(
        "Replaces the unit's description with the body. Send the `ETag` you read as "
        "`If-Match`: if someone changed the unit since, the update is refused with 412 and "
        "nothing is stored. The change is broadcast to every member. Another member's unit "
        "answers 404. The kommuner must lie in your member's territory, as on creation "
        "(422, rule `outside_territory`). Scope `directory:write`." + UNIT_RULE
    ),
    responses=problem_responses(Forbidden, UnitNotFound, VersionMismatch, PreconditionRequired),
)
async def update_unit(
    unit_id: UnitId,
    body: UnitUpdate,
    work: WriterWork,
    response: Response,
    if_match: IfMatchRequired = None,
) -> UnitOut:
    expected = if_match_version(if_match)
    if expected is None:
        raise PreconditionRequired("send the unit's ETag as If-Match")
    unit = await _own_unit_to_change(work, unit_id)
    await territory.check_own_units(
        session=work.session, owner_orgnr=unit.owner_orgnr, kommunkoder=body.kommunkoder
    )
    return _out(await service.update_unit(work, unit, body, expected), response)


async def _status_change(
    work: Work,
    unit_id: str,
    action: str,
    response: Response,
    if_match: str | None,
    message: str | None = None,
) -> UnitOut:
    unit = await service.change_status(
        work,
        await _own_unit_to_change(work, unit_id),
        action,
        message=message,
        expected_version=if_match_version(if_match),
    )
    return _out(unit, response)


_STATUS_ERRORS = problem_responses(Forbidden, UnitNotFound, StatusConflict, VersionMismatch)


@router.post(
    "/units/{unit_id}/close",
    response_model=UnitOut,
    summary="Close a unit temporarily, with a message",
    description="From `active` to `temporarily_closed`. The message (where to turn meanwhile) "
    "is shown to every member. 409 lists the allowed actions otherwise. Scope "
    "`directory:write`." + UNIT_RULE,
    responses=_STATUS_ERRORS,
)
async def close_unit(
    unit_id: UnitId,
    body: CloseRequest,
    work: WriterWork,
    response: Response,
    if_match: IfMatchOptional = None,
) -> UnitOut:
    return await _status_change(work, unit_id, "close", response, if_match, body.message)


def _status_action(action: str, summary: str, description: str) -> None:
    """Register ``POST /v1/units/{unit_id}/<action>`` for a status change without a body."""

    async def endpoint(
        unit_id: UnitId, work: WriterWork, response: Response, if_match: IfMatchOptional = None
    ) -> UnitOut:
        return await _status_change(work, unit_id, action, response, if_match)

    endpoint.__name__ = f"{action}_unit"
    router.post(
        f"/units/{{unit_id}}/{action}",
        response_model=UnitOut,
        summary=summary,
        description=description,
        responses=_STATUS_ERRORS,
    )(endpoint)


_status_action(
    "reopen",
    "Reopen a closed or inactive unit",
    "From `temporarily_closed` or `inactive` to `active`. Scope `directory:write`." + UNIT_RULE,
)
_status_action(
    "deactivate",
    "Make a unit inactive",
    "The unit stays listed as inactive (routing never proposes it). Scope `directory:write`."
    + UNIT_RULE,
)


@router.post(
    "/units/{unit_id}/review",
    response_model=UnitOut,
    summary="Mark a unit as reviewed",
    description="Records that a function (e.g. the vårdkedjekoordinator) confirmed the entry "
    "today; entries not reviewed for a long time are listed as stale. Scope "
    "`directory:write`." + UNIT_RULE,
    responses=problem_responses(Forbidden, UnitNotFound, VersionMismatch),
)
async def review_unit(
    unit_id: UnitId,
    body: ReviewRequest,
    work: WriterWork,
    response: Response,
    if_match: IfMatchOptional = None,
) -> UnitOut:
    unit = await service.mark_reviewed(
        work,
        await _own_unit_to_change(work, unit_id),
        body.reviewed_by,
        expected_version=if_match_version(if_match),
    )
    return _out(unit, response)


@replica_router.get(
    "/units",
    response_model=ReplicaPage,
    summary="List the federated replica",
    description=(
        "Units of every member as received over `vardkedja.directory`, ordered by unit id, "
        "with cursor pagination. Filter by owning member, kommunkod and HSA-id. "
        "Scope `directory:read`."
    ),
    responses=problem_responses(Forbidden),
)
async def list_replica(
    caller: Reader,
    session: DbSession,
    member: Annotated[Organisationsnummer | None, Query(description="owning member")] = None,
    kommunkod: Annotated[Kommunkod | None, Query(description="SCB kommunkod")] = None,
    hsa_id: HsaIdQuery = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> ReplicaPage:
    rows = await replica.list_replica(
        session=session,
        member=member,
        kommunkod=kommunkod,
        hsa_id=hsa_id,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    return ReplicaPage(
        items=[ReplicaUnitOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda r: r.unit_id),
    )


@replica_router.get(
    "/units/{unit_id}",
    response_model=ReplicaUnitOut,
    summary="Read one unit from the federated replica",
    description="Any member's unit as last received. Scope `directory:read`.",
    responses=problem_responses(Forbidden, UnitNotFound),
)
async def get_replica_unit(unit_id: UnitId, caller: Reader, session: DbSession) -> ReplicaUnitOut:
    row = await replica.get_replica_unit(session=session, unit_id=unit_id)
    return ReplicaUnitOut.model_validate(row, from_attributes=True)

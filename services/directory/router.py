"""HTTP API of the directory service (thin: validation, auth, then the service layer)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from services.directory import service
from services.directory.schemas import ReplicaPage, ReplicaUnitOut, UnitCreate, UnitOut
from shared.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.auth import Caller, require_scopes
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, problem_responses
from shared.identifiers import Kommunkod, Organisationsnummer

router = APIRouter(prefix="/v1", tags=["units"])
replica_router = APIRouter(prefix="/v1/replica", tags=["replica"])

Writer = Annotated[Caller, Depends(require_scopes("directory:write"))]
Reader = Annotated[Caller, Depends(require_scopes("directory:read"))]
UnitId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="unit id")]


class UnitNotFound(NotFound):
    slug = "unit-not-found"
    title = "No such unit in this member's directory"


def _out(unit: object) -> UnitOut:
    return UnitOut.model_validate(unit, from_attributes=True)


def _etag(version: int) -> str:
    return f'"{version}"'


@router.post(
    "/units",
    status_code=status.HTTP_201_CREATED,
    response_model=UnitOut,
    summary="Create a unit/function of your own member",
    description=(
        "Creates a unit owned by the caller's member and publishes it on "
        "`vardkedja.directory`, from where every member's replica picks it up within "
        "seconds. Units are functions, never named persons. Send an `Idempotency-Key` to "
        "retry safely. Scope `directory:write`."
    ),
    responses=problem_responses(Forbidden, Conflict),
)
async def create_unit(
    body: UnitCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> UnitOut | Response:
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/units", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    unit = await service.create_unit(
        session=session, outbox=ctx.outbox, owner_orgnr=caller.org, data=body
    )
    out = _out(unit)
    headers = {"ETag": _etag(unit.version), "Location": f"/v1/units/{unit.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@router.get(
    "/units/{unit_id}",
    response_model=UnitOut,
    summary="Read one of your member's own units",
    description="The owner's copy of a unit, with its `ETag`. Scope `directory:read`.",
    responses=problem_responses(Forbidden, UnitNotFound),
)
async def get_unit(
    unit_id: UnitId, caller: Reader, session: DbSession, response: Response
) -> UnitOut:
    unit = await service.get_own_unit(session=session, unit_id=unit_id, owner_orgnr=caller.org)
    if unit is None:
        raise UnitNotFound()
    response.headers["ETag"] = _etag(unit.version)
    return _out(unit)


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        # validate=True: urlsafe_b64decode silently drops characters outside the alphabet,
        # so garbage decoded to "" and restarted the listing from the first page.
        after = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
        if not after:
            raise ValueError("empty cursor")
        return after
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.field("cursor", "cursor", "not a cursor from a previous page") from exc


@replica_router.get(
    "/units",
    response_model=ReplicaPage,
    summary="List the federated replica",
    description=(
        "Units of every member as received over `vardkedja.directory`, ordered by unit id, "
        "with cursor pagination. Filter by owning member and kommunkod. "
        "Scope `directory:read`."
    ),
    responses=problem_responses(Forbidden),
)
async def list_replica(
    caller: Reader,
    session: DbSession,
    member: Annotated[Organisationsnummer | None, Query(description="owning member")] = None,
    kommunkod: Annotated[Kommunkod | None, Query(description="SCB kommunkod")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReplicaPage:
    rows = await service.list_replica(
        session=session,
        member=member,
        kommunkod=kommunkod,
        after=_decode_cursor(cursor),
        limit=limit + 1,
    )
    items = [ReplicaUnitOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    next_cursor = (
        base64.urlsafe_b64encode(items[-1].unit_id.encode()).decode() if len(rows) > limit else None
    )
    return ReplicaPage(items=items, next_cursor=next_cursor)


@replica_router.get(
    "/units/{unit_id}",
    response_model=ReplicaUnitOut,
    summary="Read one unit from the federated replica",
    description="Any member's unit as last received. Scope `directory:read`.",
    responses=problem_responses(Forbidden, UnitNotFound),
)
async def get_replica_unit(unit_id: UnitId, caller: Reader, session: DbSession) -> ReplicaUnitOut:
    row = await service.get_replica_unit(session=session, unit_id=unit_id)
    if row is None:
        raise UnitNotFound("not (yet) in this member's replica")
    return ReplicaUnitOut.model_validate(row, from_attributes=True)

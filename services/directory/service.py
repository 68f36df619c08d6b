"""Domain rules of the directory: the member's own units (create, change, close, review)
and their reviews falling due. The replica of every member's units is
:mod:`services.directory.replica`; member records are :mod:`services.directory.members`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.codes import UnitStatus
from services.directory.models import Unit
from services.directory.repository import UnitRepository
from services.directory.schemas import UnitFields
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    UNIT_CHANGED_V1,
    UNIT_REVIEW_DUE_V1,
    UnitChangedV1,
    UnitReviewDueV1,
)
from shared.web.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from shared.web.etag import etag

# The fields every member sees; the event carries exactly these (plus id and version).
PUBLIC_FIELDS = (
    "owner_orgnr",
    "name",
    "kind",
    "mission",
    "target_groups",
    "interventions",
    "kommunkoder",
    "contact_paths",
    "opening_hours",
    "referral_kinds",
    "status",
    "status_message",
    "parent_unit_id",
    "valid_from",
    "valid_to",
    "reviewed_at",
    "reviewed_by",
    "capacity",
    "hsa_id",
)

# Which status change is allowed from which status.
TRANSITIONS: dict[str, dict[UnitStatus, set[UnitStatus]]] = {
    "close": {UnitStatus.ACTIVE: {UnitStatus.TEMPORARILY_CLOSED}},
    "reopen": {
        UnitStatus.TEMPORARILY_CLOSED: {UnitStatus.ACTIVE},
        UnitStatus.INACTIVE: {UnitStatus.ACTIVE},
    },
    "deactivate": {
        UnitStatus.ACTIVE: {UnitStatus.INACTIVE},
        UnitStatus.TEMPORARILY_CLOSED: {UnitStatus.INACTIVE},
    },
}


UnitNotFound = NotFound.kind("unit-not-found", "No such unit in this member's directory")
StatusConflict = Conflict.kind(
    "unit-status-conflict", "This change is not allowed from the unit's current status"
)
VersionMismatch = PreconditionFailed.kind(
    "unit-version-mismatch",
    "The unit has changed since you read it (If-Match does not match its ETag)",
)


def unit_event(*, unit: Unit) -> UnitChangedV1:
    """Builds the broadcast form of a unit: organisational data only."""
    values: dict[str, Any] = {f: getattr(unit, f) for f in PUBLIC_FIELDS}
    return UnitChangedV1(
        unit_id=unit.id, version=unit.version, changed_at=unit.updated_at, **values
    )


def owner(work: Work) -> str:
    """Whose units a step changes: the caller's member, or this instance's member when
    no one asked (a timer)."""
    return work.caller.org if work.caller is not None else work.member


async def publish_unit(work: Work, unit: Unit) -> None:
    """Puts the unit's current state in the outbox towards ``vardkedja.directory``."""
    await work.publish(
        topics.DIRECTORY,
        UNIT_CHANGED_V1,
        unit_event(unit=unit),
        subject=unit.id,
        key=unit.id,
        aggversion=unit.version,
    )


def _fields(data: UnitFields) -> dict[str, Any]:
    """The model as stored: nested objects as JSON-ready dicts, codes as strings."""
    dumped: dict[str, Any] = data.model_dump(mode="json")
    for name in ("valid_from", "valid_to"):  # Date columns want dates, not strings
        dumped[name] = getattr(data, name)
    return dumped


async def _check_parent(
    *, repo: UnitRepository, owner_orgnr: str, parent_id: str | None, unit_id: str | None
) -> None:
    if parent_id is None:
        return
    seen = {unit_id} if unit_id else set()
    current: str | None = parent_id
    while current is not None:
        if current in seen:
            raise InvalidInput.field("parent_unit_id", "parent_cycle", "parent chain loops")
        seen.add(current)
        parent = await repo.get_owned(current, owner_orgnr)
        if parent is None:
            raise InvalidInput.field(
                "parent_unit_id", "unknown_parent", "no unit of your member has this id"
            )
        current = parent.parent_unit_id


async def _check_hsa_id(repo: UnitRepository, hsa_id: str | None, unit_id: str | None) -> None:
    """Refuses an HSA-id another unit of this directory already has (``hsa_id_in_use``)."""
    if hsa_id is None:
        return
    holder = await repo.by_hsa_id(hsa_id)
    if holder is not None and holder.id != unit_id:
        raise InvalidInput.field("hsa_id", "hsa_id_in_use", "another unit has this HSA-id")


async def create_unit(work: Work, data: UnitFields) -> Unit:
    """Creates a unit of the :func:`owner` and announces it to the federation."""
    repo = UnitRepository(work.session)
    await _check_parent(
        repo=repo, owner_orgnr=owner(work), parent_id=data.parent_unit_id, unit_id=None
    )
    await _check_hsa_id(repo, data.hsa_id, None)
    unit = Unit(owner_orgnr=owner(work), status=str(UnitStatus.ACTIVE), **_fields(data))
    await repo.add(unit)
    await publish_unit(work, unit)
    return unit


async def unit_by_hsa_id(session: AsyncSession, member: str, hsa_id: str) -> str | None:
    """The id of ``member``'s own unit with ``hsa_id`` (a token's unit claim), if any."""
    unit = await UnitRepository(session).by_hsa_id(hsa_id)
    return unit.id if unit is not None and unit.owner_orgnr == member else None


async def get_own_unit(work: Work, unit_id: str) -> Unit:
    """Gets a unit of the :func:`owner` by id (UnitNotFound for another member's or unknown)."""
    unit = await UnitRepository(work.session).get_owned(unit_id, owner(work))
    if unit is None:
        raise UnitNotFound()
    return unit


async def _changed(work: Work, unit: Unit) -> Unit:
    """Stores a change of ``unit`` and announces its new state."""
    await work.session.flush()  # version_id_col bumps the version and guards concurrent writers
    await publish_unit(work, unit)
    return unit


def check_version(unit: Unit, expected: int | None) -> None:
    """Refuses a change based on an older version than the stored one."""
    if expected is not None and expected != unit.version:
        raise VersionMismatch(headers={"ETag": etag(unit.version)})


async def update_unit(work: Work, unit: Unit, data: UnitFields, expected_version: int) -> Unit:
    """Replaces a unit's description (optimistic concurrency on ``expected_version``)."""
    check_version(unit, expected_version)
    repo = UnitRepository(work.session)
    await _check_parent(
        repo=repo, owner_orgnr=unit.owner_orgnr, parent_id=data.parent_unit_id, unit_id=unit.id
    )
    await _check_hsa_id(repo, data.hsa_id, unit.id)
    for name, value in _fields(data).items():
        setattr(unit, name, value)
    return await _changed(work, unit)


async def change_status(
    work: Work,
    unit: Unit,
    action: str,
    *,
    message: str | None = None,
    expected_version: int | None = None,
) -> Unit:
    """Closes, reopens or deactivates a unit; 409 lists what is allowed from its status."""
    check_version(unit, expected_version)
    allowed = TRANSITIONS[action]
    current = UnitStatus(unit.status)
    if current not in allowed:
        possible = sorted(a for a, by_status in TRANSITIONS.items() if current in by_status)
        raise StatusConflict(f"the unit is {current}", allowed=possible)
    (target,) = allowed[current]
    unit.status = str(target)
    unit.status_message = message if target is UnitStatus.TEMPORARILY_CLOSED else None
    return await _changed(work, unit)


async def mark_reviewed(
    work: Work, unit: Unit, reviewed_by: str, *, expected_version: int | None = None
) -> Unit:
    """Records that a function checked the entry now."""
    check_version(unit, expected_version)
    unit.reviewed_at = work.now
    unit.reviewed_by = reviewed_by
    return await _changed(work, unit)


async def list_own(
    *,
    session: AsyncSession,
    owner_orgnr: str,
    after: str | None,
    limit: int,
    hsa_id: str | None = None,
) -> list[Unit]:
    """Lists the member's own units ordered by id, after the cursor ``after``."""
    return await UnitRepository(session).page_owned(
        owner_orgnr, after=after, limit=limit, hsa_id=hsa_id
    )


def review_due_date(*, unit: Unit, period_days: int) -> dt.date:
    """The date a unit's review falls due: the last review (or creation) plus the period."""
    base = unit.reviewed_at or unit.created_at
    return base.date() + dt.timedelta(days=period_days)


async def list_stale(
    *, session: AsyncSession, owner_orgnr: str, today: dt.date, period_days: int
) -> list[tuple[Unit, dt.date]]:
    """The member's own units (not inactive) whose review is due, with their due dates."""
    out = []
    for unit in await UnitRepository(session).all_owned(owner_orgnr):
        due = review_due_date(unit=unit, period_days=period_days)
        if unit.status != UnitStatus.INACTIVE and due <= today:
            out.append((unit, due))
    return out


async def emit_review_due(work: Work) -> int:
    """Puts one review-due event per stale unit of this member and due date on its internal
    topic (the notify service turns it into a reminder); returns how many were sent now."""
    sent = 0
    for unit, due in await list_stale(
        session=work.session,
        owner_orgnr=work.member,
        today=work.now.date(),
        period_days=work.settings.directory.review_after_days,
    ):
        if unit.review_due_sent_for == due:
            continue
        await work.publish(
            topics.internal(work.member),
            UNIT_REVIEW_DUE_V1,
            UnitReviewDueV1(
                unit_id=unit.id,
                unit_name=unit.name,
                last_reviewed_at=unit.reviewed_at,
                due_since=due,
            ),
            subject=unit.id,
            key=unit.id,
        )
        # A marker, not a change of the unit: a Core UPDATE leaves its version (ETag) alone.
        await UnitRepository(work.session).mark_review_due_sent(unit.id, due)
        sent += 1
    return sent

"""Domain rules of the directory: owning units and keeping the replica."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.codes import UnitStatus
from services.directory.hours import OpeningHours
from services.directory.models import MemberRecord, ReplicaUnit, Unit
from services.directory.repository import MemberRepository, ReplicaRepository, UnitRepository
from services.directory.schemas import Capacity, ContactPath, MemberIn, TargetGroup, UnitFields
from shared.data.db import utcnow
from shared.data.work import Work
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    UNIT_REVIEW_DUE_V1,
    MemberChangedV1,
    UnitChangedV1,
    UnitReviewDueV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer
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


class UnitNotFound(NotFound):
    slug = "unit-not-found"
    title = "No such unit in this member's directory"


class StatusConflict(Conflict):
    slug = "unit-status-conflict"
    title = "This change is not allowed from the unit's current status"


class VersionMismatch(PreconditionFailed):
    slug = "unit-version-mismatch"
    title = "The unit has changed since you read it (If-Match does not match its ETag)"


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


async def create_unit(work: Work, data: UnitFields) -> Unit:
    """Creates a unit of the :func:`owner` and announces it to the federation."""
    repo = UnitRepository(work.session)
    await _check_parent(
        repo=repo, owner_orgnr=owner(work), parent_id=data.parent_unit_id, unit_id=None
    )
    unit = Unit(owner_orgnr=owner(work), status=str(UnitStatus.ACTIVE), **_fields(data))
    await repo.add(unit)
    await publish_unit(work, unit)
    return unit


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
    await _check_parent(
        repo=UnitRepository(work.session),
        owner_orgnr=unit.owner_orgnr,
        parent_id=data.parent_unit_id,
        unit_id=unit.id,
    )
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
    *, session: AsyncSession, owner_orgnr: str, after: str | None, limit: int
) -> list[Unit]:
    """Lists the member's own units ordered by id, after the cursor ``after``."""
    return await UnitRepository(session).page_owned(owner_orgnr, after=after, limit=limit)


async def get_replica_unit(*, session: AsyncSession, unit_id: str) -> ReplicaUnit:
    """Gets a unit of any member from the replica."""
    row = await ReplicaRepository(session).get(unit_id)
    if row is None:
        raise UnitNotFound("not (yet) in this member's replica")
    return row


async def list_replica(
    *,
    session: AsyncSession,
    member: str | None,
    kommunkod: str | None,
    after: str | None,
    limit: int,
) -> list[ReplicaUnit]:
    """Lists replica units ordered by id, after the cursor ``after``."""
    return await ReplicaRepository(session).page(
        member=member, kommunkod=kommunkod, after=after, limit=limit
    )


_NESTED: dict[str, TypeAdapter[Any]] = {
    "target_groups": TypeAdapter(list[TargetGroup]),
    "contact_paths": TypeAdapter(list[ContactPath]),
    "opening_hours": TypeAdapter(OpeningHours | None),
    "capacity": TypeAdapter(Capacity | None),
}


def _validated_nested(payload: UnitChangedV1) -> dict[str, Any]:
    """The nested objects of a received unit, checked with the same rules as the API."""
    out: dict[str, Any] = {}
    for name, adapter in _NESTED.items():
        try:
            value = adapter.validate_python(getattr(payload, name))
        except ValidationError as exc:
            raise Reject("invalid_unit", f"{name} does not follow the directory schema") from exc
        out[name] = adapter.dump_python(value, mode="json")
    return out


# Next change_seq per replica database. The replica has one writer (the member's replica
# consumer; one worker process per member and service), so the counter is read from the
# database once and then kept in memory instead of a max() query per applied event.
_change_seq: dict[str, int] = {}


async def _next_change_seq(session: AsyncSession, repo: ReplicaRepository) -> int:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    key = engine.url.render_as_string(hide_password=True)
    if key not in _change_seq:
        _change_seq[key] = await repo.max_change_seq()
    _change_seq[key] += 1
    return _change_seq[key]


async def apply_unit_changed(
    *, session: AsyncSession, event: CloudEvent, payload: UnitChangedV1
) -> bool:
    """Applies a broadcast unit state to the replica unless it is stale; True if applied."""
    return await apply_units_changed(session=session, changes=[(event, payload)]) == 1


async def apply_units_changed(
    *, session: AsyncSession, changes: list[tuple[CloudEvent, UnitChangedV1]]
) -> int:
    """Applies broadcast unit states (in order) to the replica, skipping stale ones; returns
    how many units changed. One read and at most two writes however many units."""
    latest: dict[str, tuple[CloudEvent, UnitChangedV1, dict[str, Any]]] = {}
    for event, payload in changes:
        nested = _validated_nested(payload)
        seen = latest.get(payload.unit_id)
        if newer(seen[1].version if seen else None, payload.version):
            latest[payload.unit_id] = (event, payload, nested)
    repo = ReplicaRepository(session)
    stored = await repo.versions(list(latest))
    received_at = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for unit_id, (event, payload, nested) in latest.items():
        current = stored.get(unit_id)
        if not newer(current, payload.version):
            continue  # a redelivered or reordered older state never rolls the replica back
        row = {name: nested.get(name, getattr(payload, name)) for name in PUBLIC_FIELDS}
        row.update(
            unit_id=unit_id,
            version=payload.version,
            changed_at=payload.changed_at,
            received_at=received_at,
            source_event_id=event.id,
            change_seq=await _next_change_seq(session, repo),
        )
        (inserts if current is None else updates).append(row)
    await repo.insert_many(inserts)
    await repo.update_many(updates)
    return len(inserts) + len(updates)


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


# --- member records -------------------------------------------------------------------


class MemberNotFound(NotFound):
    slug = "member-not-found"
    title = "No record of this member has reached the directory"


class MemberVersionMismatch(PreconditionFailed):
    slug = "member-version-mismatch"
    title = "The member record has changed since you read it (If-Match does not match)"


def member_key(orgnr: str) -> str:
    """The record's key on ``vardkedja.directory`` (apart from the units' ids)."""
    return f"member:{orgnr}"


async def set_own_member(
    work: Work, data: MemberIn, *, expected_version: int | None = None
) -> MemberRecord:
    """Sets this member's own record and announces it to the federation (no event when
    nothing changed)."""
    orgnr = work.member
    repo = MemberRepository(work.session)
    record = await repo.get(orgnr)
    if expected_version is not None and (record is None or record.version != expected_version):
        raise MemberVersionMismatch(f"the record is at version {record.version if record else 0}")
    values = {
        "name": data.name,
        "kind": str(data.kind),
        "county_code": data.county_code,
        "kommunkoder": list(data.kommunkoder),
    }
    if record is not None and all(getattr(record, k) == v for k, v in values.items()):
        return record
    if record is None:
        record = MemberRecord(orgnr=orgnr, version=0)
        work.session.add(record)
    for name, value in values.items():
        setattr(record, name, value)
    record.version += 1
    record.changed_at = record.received_at = work.now
    await work.session.flush()
    await work.publish(
        topics.DIRECTORY,
        MEMBER_CHANGED_V1,
        MemberChangedV1(
            orgnr=orgnr, version=record.version, changed_at=record.changed_at, **values
        ),
        subject=orgnr,
        key=member_key(orgnr),
        aggversion=record.version,
    )
    return record


async def apply_member_changed(*, session: AsyncSession, payload: MemberChangedV1) -> bool:
    """Keeps another member's record (or a rebuilt own one) unless it is stale."""
    repo = MemberRepository(session)
    record = await repo.get(payload.orgnr)
    if not newer(record.version if record else None, payload.version):
        return False
    if record is None:
        record = MemberRecord(orgnr=payload.orgnr)
        session.add(record)
    for name in ("name", "kind", "county_code", "version", "changed_at"):
        setattr(record, name, getattr(payload, name))
    record.kommunkoder = list(payload.kommunkoder)
    record.received_at = utcnow()
    await session.flush()
    return True


async def member_names(*, session: AsyncSession) -> dict[str, str]:
    """Every known member's name by organisationsnummer."""
    return {m.orgnr: m.name for m in await MemberRepository(session).all()}


async def members_serving(*, session: AsyncSession, kommunkod: str) -> list[str]:
    """The members whose record says they serve ``kommunkod``."""
    return [m.orgnr for m in await MemberRepository(session).all() if kommunkod in m.kommunkoder]

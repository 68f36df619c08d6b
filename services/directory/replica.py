"""The replica: every member's units as broadcast on ``vardkedja.directory``, kept here.

A received state moves a unit's copy on only when it is newer than the one held
(:func:`shared.messaging.ownership.newer`); the handlers have checked who sent it
(:mod:`services.directory.handlers`). Reading the replica: :func:`get_replica_unit`,
:func:`list_replica`.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import ReplicaUnit
from services.directory.repository import ReplicaRepository
from services.directory.schemas import Capacity, ContactPath, TargetGroup
from services.directory.service import PUBLIC_FIELDS, UnitNotFound
from shared.data.db import utcnow
from shared.domain.hours import OpeningHours
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import UnitChangedV1
from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer


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
    hsa_id: str | None = None,
) -> list[ReplicaUnit]:
    """Lists replica units ordered by id, after the cursor ``after``."""
    return await ReplicaRepository(session).page(
        member=member, kommunkod=kommunkod, after=after, limit=limit, hsa_id=hsa_id
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

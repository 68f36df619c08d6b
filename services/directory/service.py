"""Domain rules of the directory: owning units and keeping the replica."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import ReplicaUnit, Unit
from services.directory.repository import ReplicaRepository, UnitRepository
from services.directory.schemas import UnitCreate
from shared.events import CloudEvent, topics
from shared.events.payloads import UNIT_CHANGED_V1, UnitChangedV1
from shared.outbox import Outbox


def unit_event(*, unit: Unit) -> UnitChangedV1:
    """Builds the broadcast form of a unit: organisational data only."""
    return UnitChangedV1(
        unit_id=unit.id,
        owner_orgnr=unit.owner_orgnr,
        name=unit.name,
        kind=unit.kind,
        kommunkoder=list(unit.kommunkoder),
        status=unit.status,
        version=unit.version,
        changed_at=unit.updated_at,
    )


async def publish_unit(*, session: AsyncSession, outbox: Outbox, unit: Unit) -> None:
    """Puts the unit's current state in the outbox towards ``vardkedja.directory``."""
    await outbox.publish(
        session,
        topics.DIRECTORY,
        UNIT_CHANGED_V1,
        unit_event(unit=unit),
        subject=unit.id,
        key=unit.id,
        aggversion=unit.version,
    )


async def create_unit(
    *, session: AsyncSession, outbox: Outbox, owner_orgnr: str, data: UnitCreate
) -> Unit:
    """Creates a unit of ``owner_orgnr`` and announces it to the federation."""
    unit = Unit(
        owner_orgnr=owner_orgnr,
        name=data.name,
        kind=str(data.kind),
        kommunkoder=list(data.kommunkoder),
        status=str(data.status),
    )
    await UnitRepository(session).add(unit)
    await publish_unit(session=session, outbox=outbox, unit=unit)
    return unit


async def get_own_unit(*, session: AsyncSession, unit_id: str, owner_orgnr: str) -> Unit | None:
    """Gets a unit of ``owner_orgnr`` by id (None for another member's or an unknown id)."""
    return await UnitRepository(session).get_owned(unit_id, owner_orgnr)


async def get_replica_unit(*, session: AsyncSession, unit_id: str) -> ReplicaUnit | None:
    """Gets a unit of any member from the replica."""
    return await ReplicaRepository(session).get(unit_id)


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


async def apply_unit_changed(
    *, session: AsyncSession, event: CloudEvent, payload: UnitChangedV1
) -> bool:
    """Applies a broadcast unit state to the replica unless it is stale; True if applied."""
    repo = ReplicaRepository(session)
    current = await repo.get(payload.unit_id)
    if current is not None and current.version >= payload.version:
        return False  # a redelivered or reordered older state never rolls the replica back
    if current is None:
        current = ReplicaUnit(unit_id=payload.unit_id)
        session.add(current)
    current.owner_orgnr = payload.owner_orgnr
    current.name = payload.name
    current.kind = payload.kind
    current.kommunkoder = list(payload.kommunkoder)
    current.status = payload.status
    current.version = payload.version
    current.changed_at = payload.changed_at
    current.source_event_id = event.id
    await session.flush()
    return True

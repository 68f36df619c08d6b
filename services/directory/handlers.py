"""Event handlers of the directory worker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import members, replica, service, territory
from services.directory.codes import UnitStatus
from services.directory.repository import MemberRepository, ReplicaRepository, UnitRepository
from shared.data.work import Work
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import ConsumerSpec, Delivery, Reject
from shared.messaging.ownership import require_owner, require_sender
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext


async def _owned_changes(
    session: AsyncSession, deliveries: list[Delivery]
) -> list[tuple[CloudEvent, UnitChangedV1]]:
    """The events and their units, each checked (else Reject): the sender publishes its own
    unit (``sender_not_owner``); the first owner of a unit id binds it, so an event naming
    another owner changes nothing (``not_owner``), a forged version included; and the unit
    covers only kommuner its owner's record serves (``outside_territory``, ADR 0013)."""
    payloads = []
    for delivery in deliveries:
        payload = delivery.payload
        assert isinstance(payload, UnitChangedV1)
        require_sender(
            delivery.event, payload.owner_orgnr, "a member may only publish its own units"
        )
        payloads.append(payload)
    ids = list({p.unit_id for p in payloads})
    bound = await UnitRepository(session).owners(ids)  # this member's own units
    bound.update(await ReplicaRepository(session).owners([i for i in ids if i not in bound]))
    records = {
        r.orgnr: r
        for r in await MemberRepository(session).load_many({p.owner_orgnr for p in payloads})
    }
    for payload in payloads:
        owner = bound.setdefault(payload.unit_id, payload.owner_orgnr)
        require_owner(owner, payload.owner_orgnr, "the unit id belongs to another member")
        record = records.get(payload.owner_orgnr)
        # Until the owner's record arrives the unit is kept: routing sends nothing to it
        # before the record says the member serves its kommuner. An inactive unit is never
        # routed, so its owner can always retire one that lies outside.
        if record is None or payload.status == UnitStatus.INACTIVE:
            continue
        if territory.outside(payload.kommunkoder, territory.served(record)):
            raise Reject(
                territory.OUTSIDE_TERRITORY,
                "the unit covers a kommun its member's record does not serve",
            )
    return [(d.event, p) for d, p in zip(deliveries, payloads, strict=True)]


async def on_unit_changed(session: AsyncSession, delivery: Delivery) -> None:
    """Keep the replica: only the owning member may publish its units."""
    changes = await _owned_changes(session, [delivery])
    await replica.apply_units_changed(session=session, changes=changes)


async def on_units_changed(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """The same for a run of events (a catch-up or a rebuild): one read, two writes."""
    changes = await _owned_changes(session, deliveries)
    await replica.apply_units_changed(session=session, changes=changes)


async def on_member_changed(session: AsyncSession, delivery: Delivery) -> None:
    """Keep the member records: only a member may describe itself."""
    payload = delivery.payload
    assert isinstance(payload, MemberChangedV1)
    require_sender(delivery.event, payload.orgnr, "a member may only describe itself")
    problem = territory.record_problem(
        kind=payload.kind, county_code=payload.county_code, kommunkoder=payload.kommunkoder
    )
    if problem is not None:
        raise Reject(territory.OUTSIDE_TERRITORY, problem)
    await members.apply_member_changed(session=session, payload=payload)


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="replica",
            topics=[topics.DIRECTORY],
            handlers={UNIT_CHANGED_V1: on_unit_changed, MEMBER_CHANGED_V1: on_member_changed},
            batch_handlers={UNIT_CHANGED_V1: on_units_changed},
        )
    ]


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The review-due check, run by the directory worker."""

    async def check() -> None:
        async with ctx.db.transaction() as session:
            await service.emit_review_due(Work(session, ctx.outbox, ctx.settings))

    interval = ctx.settings.directory.stale_check_interval_s
    return [PeriodicJob("review-due", interval, check)]

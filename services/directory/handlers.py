"""Event handlers of the directory worker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import service
from shared.db import utcnow
from shared.events import CloudEvent, topics
from shared.events.payloads import (
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.inbox import ConsumerSpec, Delivery, Reject
from shared.periodic import PeriodicJob
from shared.service import ServiceContext


def _owned_change(delivery: Delivery) -> tuple[CloudEvent, UnitChangedV1]:
    """The event and its unit, if the sender owns the unit (else Reject)."""
    payload = delivery.payload
    assert isinstance(payload, UnitChangedV1)
    if delivery.event.sender_orgnr != payload.owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "a member may only publish its own units")
    return delivery.event, payload


async def on_unit_changed(session: AsyncSession, delivery: Delivery) -> None:
    """Keep the replica: only the owning member may publish its units."""
    await service.apply_units_changed(session=session, changes=[_owned_change(delivery)])


async def on_units_changed(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """The same for a run of events (a catch-up or a rebuild): one read, two writes."""
    changes = [_owned_change(d) for d in deliveries]
    await service.apply_units_changed(session=session, changes=changes)


async def on_member_changed(session: AsyncSession, delivery: Delivery) -> None:
    """Keep the member records: only a member may describe itself."""
    payload = delivery.payload
    assert isinstance(payload, MemberChangedV1)
    if delivery.event.sender_orgnr != payload.orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "a member may only describe itself")
    await service.apply_member_changed(session=session, payload=payload)


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
    settings = ctx.settings

    async def check() -> None:
        async with ctx.db.transaction() as session:
            await service.emit_review_due(
                session=session,
                outbox=ctx.outbox,
                owner_orgnr=settings.member.orgnr,
                today=utcnow().date(),
                period_days=settings.directory.review_after_days,
            )

    return [PeriodicJob("review-due", settings.directory.stale_check_interval_s, check)]

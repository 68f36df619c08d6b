"""Event handlers of the directory worker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import service
from shared.db import utcnow
from shared.events import topics
from shared.events.payloads import UNIT_CHANGED_V1, UnitChangedV1
from shared.inbox import ConsumerSpec, Delivery, Reject
from shared.periodic import PeriodicJob
from shared.service import ServiceContext


async def on_unit_changed(session: AsyncSession, delivery: Delivery) -> None:
    """Keep the replica: only the owning member may publish its units."""
    payload = delivery.payload
    assert isinstance(payload, UnitChangedV1)
    if delivery.event.sender_orgnr != payload.owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "a member may only publish its own units")
    await service.apply_unit_changed(session=session, event=delivery.event, payload=payload)


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="replica",
            topics=[topics.DIRECTORY],
            handlers={UNIT_CHANGED_V1: on_unit_changed},
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

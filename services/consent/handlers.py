"""Event handlers of the consent worker and its periodic expiry check."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.consent import service
from services.consent.repository import ConsentRepository, CopyRepository, TombstoneRepository
from shared.data.db import utcnow
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    AUDIT_RECORDED_V1,
    CONSENT_ENDED_V1,
    CONSENT_RECORDED_V1,
    AuditRecordedV1,
    ConsentEndedV1,
    ConsentRecordedV1,
)
from shared.messaging.inbox import BatchHandler, ConsumerSpec, Delivery, Handler, Reject
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext


async def _check_copy_owner(session: AsyncSession, event: CloudEvent, consent_id: str) -> None:
    """The first owner of a consent id binds it (``not_owner`` for any other member): the
    member whose copy or end this member keeps, or this member for its own consents. So an
    event of another member, whatever version it claims, changes nothing."""
    owner: str | None = None
    for repo in (CopyRepository(session), TombstoneRepository(session)):
        row = await repo.get(consent_id)
        if row is not None:
            owner = row.owner_orgnr
            break
    else:
        own = await ConsentRepository(session).get(consent_id)
        owner = None if own is None else own.owner_orgnr
    if owner is not None and event.sender_orgnr != owner.replace("-", ""):
        raise Reject("not_owner", "the consent id belongs to another member")


def _handlers(ctx: ServiceContext) -> tuple[Handler, Handler, Handler]:
    settings = ctx.settings

    async def on_consent_recorded(session: AsyncSession, delivery: Delivery) -> None:
        """Keep a copy of a consent that names this member."""
        assert isinstance(delivery.payload, ConsentRecordedV1)
        await _check_copy_owner(session, delivery.event, delivery.payload.consent_id)
        await service.apply_consent_recorded(
            session=session, settings=settings, event=delivery.event, payload=delivery.payload
        )

    async def on_consent_ended(session: AsyncSession, delivery: Delivery) -> None:
        """Mark the copy withdrawn, expired or superseded."""
        assert isinstance(delivery.payload, ConsentEndedV1)
        await _check_copy_owner(session, delivery.event, delivery.payload.consent_id)
        await service.apply_consent_ended(
            session=session, settings=settings, event=delivery.event, payload=delivery.payload
        )

    async def on_audit_recorded(session: AsyncSession, delivery: Delivery) -> None:
        """Keep another service's audit record for the person's audit extract."""
        assert isinstance(delivery.payload, AuditRecordedV1)
        await service.apply_audit_recorded(
            session=session, settings=settings, event=delivery.event, payload=delivery.payload
        )

    return on_consent_recorded, on_consent_ended, on_audit_recorded


def _audit_batch(ctx: ServiceContext) -> BatchHandler:
    settings = ctx.settings

    async def on_audit_records(session: AsyncSession, deliveries: list[Delivery]) -> None:
        """A run of audit records: kept with one look and one insert."""
        arrived = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, AuditRecordedV1)
            arrived.append((delivery.event, delivery.payload))
        await service.apply_audit_records(session=session, settings=settings, arrived=arrived)

    return on_audit_records


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """Copies of consents from the inbound topic; audit records from the internal topic."""
    recorded, ended, audited = _handlers(ctx)
    orgnr = ctx.settings.member.orgnr
    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(orgnr)],
            handlers={CONSENT_RECORDED_V1: recorded, CONSENT_ENDED_V1: ended},
        ),
        ConsumerSpec(
            name="audit",
            topics=[topics.internal(orgnr)],
            handlers={AUDIT_RECORDED_V1: audited},
            batch_handlers={AUDIT_RECORDED_V1: _audit_batch(ctx)},
        ),
    ]


TOMBSTONE_PRUNE_INTERVAL_S = 3600.0
"""How often the worker prunes tombstones whose copy never came (ADR 0016)."""


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The expiry check (consents past their end date expire and their parties are told)
    and the hourly pruning of tombstones that waited out their retention."""
    settings = ctx.settings

    async def check() -> None:
        more = True
        while more:
            async with ctx.db.transaction() as session:
                more = (
                    await service.expire_due(
                        session=session,
                        outbox=ctx.outbox,
                        owner_orgnr=settings.member.orgnr,
                        today=utcnow().date(),
                    )
                    > 0
                )

    async def prune() -> None:
        async with ctx.db.transaction() as session:
            await service.prune_tombstones(session=session, settings=settings)

    return [
        PeriodicJob("consent-expiry", settings.consent.expiry_check_interval_s, check),
        PeriodicJob("consent-tombstones", TOMBSTONE_PRUNE_INTERVAL_S, prune),
    ]

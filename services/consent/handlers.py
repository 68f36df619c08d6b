"""Event handlers of the consent worker and its periodic jobs: the expiry check and the
pruning of tombstones. Each event, and each run of a job, is one unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.consent import copies, extract, known_units, records
from services.consent.decision import swedish_day
from shared.data.work import Work
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    AUDIT_RECORDED_V1,
    CONSENT_ENDED_V1,
    CONSENT_NARROWED_V1,
    CONSENT_RECORDED_V1,
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    AuditRecordedV1,
    ConsentEndedV1,
    ConsentNarrowedV1,
    ConsentRecordedV1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import BatchHandler, ConsumerSpec, Delivery, Handler
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext

Apply = Callable[[Work, CloudEvent, Any], Awaitable[bool]]


def _work(ctx: ServiceContext, session: AsyncSession) -> Work:
    """The unit of work of an event or a job: no caller (the member's own worker)."""
    return Work(session, ctx.outbox, ctx.settings)


def _handler(ctx: ServiceContext, payload_type: type[Any], apply: Apply) -> Handler:
    async def handle(session: AsyncSession, delivery: Delivery) -> None:
        assert isinstance(delivery.payload, payload_type)
        await apply(_work(ctx, session), delivery.event, delivery.payload)

    handle.__doc__ = apply.__doc__
    return handle


def _audit_batch(ctx: ServiceContext) -> BatchHandler:
    async def on_audit_records(session: AsyncSession, deliveries: list[Delivery]) -> None:
        """A run of audit records: kept with one look and one insert."""
        arrived = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, AuditRecordedV1)
            arrived.append((delivery.event, delivery.payload))
        await extract.apply_audit_records(_work(ctx, session), arrived)

    return on_audit_records


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """Copies of consents from the inbound topic (kept, narrowed or marked ended); other
    services' audit records from the internal topic (kept for the person's audit extract);
    the names of every member's units and of the members from the directory topic (the
    names the extract shows)."""
    orgnr = ctx.settings.member.orgnr
    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(orgnr)],
            handlers={
                CONSENT_RECORDED_V1: _handler(
                    ctx, ConsentRecordedV1, copies.apply_consent_recorded
                ),
                CONSENT_ENDED_V1: _handler(ctx, ConsentEndedV1, copies.apply_consent_ended),
                CONSENT_NARROWED_V1: _handler(
                    ctx, ConsentNarrowedV1, copies.apply_consent_narrowed
                ),
            },
        ),
        ConsumerSpec(
            name="audit",
            topics=[topics.internal(orgnr)],
            handlers={
                AUDIT_RECORDED_V1: _handler(ctx, AuditRecordedV1, extract.apply_audit_recorded)
            },
            batch_handlers={AUDIT_RECORDED_V1: _audit_batch(ctx)},
        ),
        ConsumerSpec(
            name="directory",
            topics=[topics.DIRECTORY],
            handlers={
                UNIT_CHANGED_V1: _handler(ctx, UnitChangedV1, known_units.apply_unit_changed),
                MEMBER_CHANGED_V1: _handler(ctx, MemberChangedV1, known_units.apply_member_changed),
            },
        ),
    ]


TOMBSTONE_PRUNE_INTERVAL_S = 3600.0
"""How often the worker prunes tombstones whose copy never came (ADR 0016)."""


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The expiry check (consents past their end date expire and their parties are told)
    and the hourly pruning of tombstones that waited out their retention."""

    async def check() -> None:
        more = True
        while more:
            async with ctx.db.transaction() as session:
                work = _work(ctx, session)
                more = await records.expire_due(work, today=swedish_day(work.now)) > 0

    async def prune() -> None:
        async with ctx.db.transaction() as session:
            await copies.prune_tombstones(_work(ctx, session))

    return [
        PeriodicJob("consent-expiry", ctx.settings.consent.expiry_check_interval_s, check),
        PeriodicJob("consent-tombstones", TOMBSTONE_PRUNE_INTERVAL_S, prune),
    ]

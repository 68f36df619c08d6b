"""Event handlers of the referral worker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral import deadlines, meetings, service
from services.referral.codes import Actor
from services.referral.repository import (
    IncomingRepository,
    KnownUnitRepository,
    RecipientRepository,
)
from shared.identity.person import member_secret
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    PLAN_ACTION_END_REQUESTED_V1,
    PLAN_SHARED_V1,
    REFERRAL_SENT_V1,
    REFERRAL_TRANSITIONED_V1,
    UNIT_CHANGED_V1,
    ConsentEndedV1,
    PlanActionEndRequestedV1,
    PlanSharedV1,
    ReferralSentV1,
    ReferralTransitionedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import ConsumerSpec, Delivery, Reject
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext


def _digits(orgnr: str) -> str:
    return orgnr.replace("-", "")


async def _check_step_owner(
    session: AsyncSession, event: CloudEvent, payload: ReferralTransitionedV1
) -> None:
    """Only the member a copy binds may move it (``not_owner``): the sender of a task filed
    here (a withdrawal), or the member holding a task this member sent (a reported step),
    whose version (``receiver_version``) then only moves forward."""
    if payload.actor == Actor.SENDER:
        incoming = await IncomingRepository(session).get(payload.task_id)
        owner = None if incoming is None else incoming.sender_orgnr
    else:
        recipient = await RecipientRepository(session).get(payload.task_id)
        owner = None if recipient is None else recipient.orgnr
    if owner is not None and event.sender_orgnr != _digits(owner):
        raise Reject("not_owner", "the task is held by another member")


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """This member's inbound topic (referrals and their steps) and the directory topic
    (which units exist and what they receive)."""
    settings = ctx.settings

    async def on_sent(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralSentV1)
        await service.receive_referral(
            session=session,
            outbox=ctx.outbox,
            clients=service.clients_of(ctx),
            settings=settings,
            secret=member_secret(settings),
            event=delivery.event,
            payload=payload,
        )

    async def on_sent_many(session: AsyncSession, deliveries: list[Delivery]) -> None:
        arrived = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, ReferralSentV1)
            arrived.append((delivery.event, delivery.payload))
        await service.receive_referrals(
            session=session,
            outbox=ctx.outbox,
            clients=service.clients_of(ctx),
            settings=settings,
            secret=member_secret(settings),
            arrived=arrived,
        )

    async def on_transitioned(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralTransitionedV1)
        await _check_step_owner(session, delivery.event, payload)
        # Steps taken by the sender (a withdrawal) travel to the receiver; every step of
        # the receiver (actor holder or system) travels back to the sender.
        apply = (
            service.apply_withdrawal
            if payload.actor == Actor.SENDER
            else service.apply_reported_transition
        )
        await apply(
            session=session,
            outbox=ctx.outbox,
            settings=settings,
            event=delivery.event,
            payload=payload,
        )
        # A participant that accepts after the plan was recorded gets the plan then.
        await meetings.share_on_acceptance(
            session=session,
            outbox=ctx.outbox,
            clients=service.clients_of(ctx),
            settings=settings,
            payload=payload,
        )

    async def on_transitioned_many(session: AsyncSession, deliveries: list[Delivery]) -> None:
        payloads = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, ReferralTransitionedV1)
            payloads.append(delivery.payload)
        await service.prefetch_reported(session=session, payloads=payloads)
        for delivery in deliveries:
            await on_transitioned(session, delivery)

    async def on_consent_ended(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ConsentEndedV1)
        await service.cancel_for_consent(
            session=session,
            outbox=ctx.outbox,
            settings=settings,
            event=delivery.event,
            payload=payload,
        )
        if payload.reason != "superseded":  # a new consent takes over
            await meetings.close_for_consent(
                session=session, settings=settings, consent_id=payload.consent_id
            )

    async def on_plan_shared(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, PlanSharedV1)
        await meetings.apply_plan_shared(
            session=session,
            outbox=ctx.outbox,
            clients=service.clients_of(ctx),
            settings=settings,
            secret=member_secret(settings),
            event=delivery.event,
            payload=payload,
        )

    async def on_end_requested(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, PlanActionEndRequestedV1)
        await meetings.apply_end_request(
            session=session,
            outbox=ctx.outbox,
            clients=service.clients_of(ctx),
            settings=settings,
            event=delivery.event,
            payload=payload,
        )

    async def on_unit(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, UnitChangedV1)
        owner = _digits(payload.owner_orgnr)
        if delivery.event.sender_orgnr != owner:
            raise Reject("sender_not_owner", "a member may only publish its own units")
        # The first owner binds the unit id: another member's event about it (a forged
        # version included) changes nothing, so the owner's next update still applies.
        known = await KnownUnitRepository(session).get(payload.unit_id)
        if known is not None and _digits(known.owner_orgnr) != owner:
            raise Reject("not_owner", "the unit id belongs to another member")
        await service.apply_unit_changed(session=session, payload=payload)

    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(settings.member.orgnr)],
            handlers={
                REFERRAL_SENT_V1: on_sent,
                REFERRAL_TRANSITIONED_V1: on_transitioned,
                CONSENT_ENDED_V1: on_consent_ended,
                PLAN_SHARED_V1: on_plan_shared,
                PLAN_ACTION_END_REQUESTED_V1: on_end_requested,
            },
            # A run of arriving referrals: their receive-time decisions asked at once; a
            # run of reported steps: what they read, loaded at once.
            batch_handlers={
                REFERRAL_SENT_V1: on_sent_many,
                REFERRAL_TRANSITIONED_V1: on_transitioned_many,
            },
        ),
        ConsumerSpec(
            name="directory",
            topics=[topics.DIRECTORY],
            handlers={UNIT_CHANGED_V1: on_unit},
        ),
    ]


TOMBSTONE_PRUNE_INTERVAL_S = 3600.0
"""How often the worker prunes tombstones past their retention (ADR 0016)."""


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The deadline check (discharge dates, plan follow-ups) and the hourly pruning of
    tombstones past their retention, run by the referral worker."""
    settings = ctx.settings

    async def check() -> None:
        async with ctx.db.transaction() as session:
            await deadlines.check(
                session=session,
                outbox=ctx.outbox,
                me=settings.member.orgnr,
                near_days=settings.referral.near_working_days,
            )

    async def prune() -> None:
        async with ctx.db.transaction() as session:
            await service.prune_tombstones(session=session, settings=settings)

    return [
        PeriodicJob("deadlines", settings.referral.deadline_check_interval_s, check),
        PeriodicJob("referral-tombstones", TOMBSTONE_PRUNE_INTERVAL_S, prune),
    ]

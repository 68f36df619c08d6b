"""Event handlers of the referral worker: each delivery is one unit of work (a ``Work``
without a caller) handed to the domain module of its room."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral import (
    attachment_receiving,
    attachments,
    basis_ended,
    closed_loop,
    deadlines,
    discharge_receiving,
    invitations,
    komplettering,
    plan_copies,
    plans,
    receiving,
    units,
)
from services.referral.codes import Actor
from services.referral.siblings import clients_of
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    CONSENT_NARROWED_V1,
    MEMBER_CHANGED_V1,
    PLAN_ACTION_STEP_REQUESTED_V1,
    PLAN_REVISION_REQUESTED_V1,
    PLAN_SHARED_V1,
    REFERRAL_ATTACHMENT_CHUNK_V1,
    REFERRAL_DISCHARGE_RECORDED_V1,
    REFERRAL_INFORMATION_SUPPLIED_V1,
    REFERRAL_SENT_V1,
    REFERRAL_TRANSITIONED_V1,
    UNIT_CHANGED_V1,
    ConsentEndedV1,
    ConsentNarrowedV1,
    MemberChangedV1,
    PlanActionStepRequestedV1,
    PlanRevisionRequestedV1,
    PlanSharedV1,
    ReferralAttachmentChunkV1,
    ReferralDischargeRecordedV1,
    ReferralInformationSuppliedV1,
    ReferralSentV1,
    ReferralTransitionedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import ConsumerSpec, Delivery
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """This member's inbound topic (referrals, their steps and the answers to the holders'
    questions) and the directory topic
    (which units exist and what they receive)."""
    settings = ctx.settings

    def work(session: AsyncSession) -> Work:
        return Work(session, ctx.outbox, settings)

    async def on_sent(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralSentV1)
        await receiving.receive_referral(work(session), clients_of(ctx), delivery.event, payload)

    async def on_sent_many(session: AsyncSession, deliveries: list[Delivery]) -> None:
        arrived = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, ReferralSentV1)
            arrived.append((delivery.event, delivery.payload))
        await receiving.receive_referrals(work(session), clients_of(ctx), arrived)

    async def on_transitioned(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralTransitionedV1)
        step = work(session)
        await closed_loop.check_step_owner(step, delivery.event, payload)
        # Steps taken by the sender (a withdrawal) travel to the receiver; every step of
        # the receiver (actor holder or system) travels back to the sender.
        apply = (
            closed_loop.apply_withdrawal
            if payload.actor == Actor.SENDER
            else closed_loop.apply_reported_transition
        )
        await apply(step, delivery.event, payload)
        # An invited unit forwarded its invitation: the meeting invites the unit it named.
        await invitations.follow_forward(step, clients_of(ctx), payload)
        # A participant that accepts after the plan was recorded gets the plan then.
        await plans.share_on_acceptance(step, clients_of(ctx), payload)

    async def on_transitioned_many(session: AsyncSession, deliveries: list[Delivery]) -> None:
        payloads = []
        for delivery in deliveries:
            assert isinstance(delivery.payload, ReferralTransitionedV1)
            payloads.append(delivery.payload)
        await closed_loop.prefetch_reported(work(session), payloads)
        for delivery in deliveries:
            await on_transitioned(session, delivery)

    async def on_information_supplied(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralInformationSuppliedV1)
        await komplettering.apply_answer(work(session), delivery.event, payload)

    async def on_attachment_chunk(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralAttachmentChunkV1)
        await attachment_receiving.receive_chunk(work(session), delivery.event, payload)

    async def on_discharge_recorded(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ReferralDischargeRecordedV1)
        await discharge_receiving.apply_discharge_recorded(work(session), delivery.event, payload)

    async def on_consent_ended(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ConsentEndedV1)
        step = work(session)
        await basis_ended.cancel_for_consent(step, delivery.event, payload)
        if payload.reason != "superseded":  # a new consent takes over
            await plan_copies.close_for_consent(step, payload.consent_id)

    async def on_consent_narrowed(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, ConsentNarrowedV1)
        step = work(session)
        withdrawn = await basis_ended.narrow_for_consent(step, delivery.event, payload)
        if withdrawn:  # only the plans shared for a withdrawn purpose close
            await plan_copies.close_for_consent(step, payload.consent_id, purposes=withdrawn)

    async def on_plan_shared(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, PlanSharedV1)
        await plan_copies.apply_plan_shared(work(session), clients_of(ctx), delivery.event, payload)

    async def on_step_requested(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, PlanActionStepRequestedV1)
        await plans.apply_step_request(work(session), clients_of(ctx), delivery.event, payload)

    async def on_revision_requested(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, PlanRevisionRequestedV1)
        await plans.apply_revision_request(work(session), clients_of(ctx), delivery.event, payload)

    async def on_member(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, MemberChangedV1)
        await units.apply_member_changed(session, delivery.event, payload)

    async def on_unit(session: AsyncSession, delivery: Delivery) -> None:
        payload = delivery.payload
        assert isinstance(payload, UnitChangedV1)
        await units.check_unit_owner(session, delivery.event, payload)
        await units.apply_unit_changed(session=session, payload=payload)

    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(settings.member.orgnr)],
            handlers={
                REFERRAL_SENT_V1: on_sent,
                REFERRAL_TRANSITIONED_V1: on_transitioned,
                REFERRAL_ATTACHMENT_CHUNK_V1: on_attachment_chunk,
                REFERRAL_INFORMATION_SUPPLIED_V1: on_information_supplied,
                REFERRAL_DISCHARGE_RECORDED_V1: on_discharge_recorded,
                CONSENT_ENDED_V1: on_consent_ended,
                CONSENT_NARROWED_V1: on_consent_narrowed,
                PLAN_SHARED_V1: on_plan_shared,
                PLAN_ACTION_STEP_REQUESTED_V1: on_step_requested,
                PLAN_REVISION_REQUESTED_V1: on_revision_requested,
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
            handlers={UNIT_CHANGED_V1: on_unit, MEMBER_CHANGED_V1: on_member},
        ),
    ]


TOMBSTONE_PRUNE_INTERVAL_S = 3600.0
"""How often the worker prunes tombstones past their retention (ADR 0016)."""


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The deadline check (discharge dates, plan follow-ups), the hourly pruning of
    tombstones past their retention, and the pruning of attached documents (drafts past
    their hold, documents of tasks final long enough: ADR 0023), run by the referral
    worker."""
    settings = ctx.settings

    async def check() -> None:
        async with ctx.db.transaction() as session:
            await deadlines.check(Work(session, ctx.outbox, settings))

    async def prune() -> None:
        async with ctx.db.transaction() as session:
            await basis_ended.prune_tombstones(Work(session, ctx.outbox, settings))

    async def prune_attachments() -> None:
        async with ctx.db.transaction() as session:
            await attachments.prune(Work(session, ctx.outbox, settings))

    return [
        PeriodicJob("deadlines", settings.referral.deadline_check_interval_s, check),
        PeriodicJob("referral-tombstones", TOMBSTONE_PRUNE_INTERVAL_S, prune),
        PeriodicJob(
            "referral-attachments", settings.referral.attachment_prune_interval_s, prune_attachments
        ),
    ]

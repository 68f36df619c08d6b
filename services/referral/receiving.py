"""Receiving: a referral of another member (or of this one) arrives on the inbound topic.

The receiver's consent service decides again when the task arrives (its copy of the
consent, or the stated legal basis); the task is filed in the receiving unit's own inbox
(``delivered``) or refused (``undeliverable``, nothing about the person kept), and either
way the sender is told. A withdrawal that came before the referral (a tombstone, ADR 0016)
answers it at once, and a consent heard to have ended, or to have lost the referral kind's
purpose, is no basis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral import attachment_receiving
from services.referral.codes import Actor, Status
from services.referral.details import UnitRef
from services.referral.models import (
    ConsentNarrowing,
    ConsentTombstone,
    Incoming,
    KnownUnit,
    TaskTombstone,
)
from services.referral.moves import Report, Step, history, tell_sender
from services.referral.repository import (
    ConsentNarrowingRepository,
    ConsentTombstoneRepository,
    IncomingRepository,
    KnownUnitRepository,
    TaskTombstoneRepository,
)
from services.referral.sending import categories
from services.referral.siblings import Clients, Decision, Question, claim, decide
from services.referral.units import unit_problem
from shared.data.work import Work
from shared.domain.calendar import end_of_day
from shared.domain.content import ReferralContent
from shared.domain.kinds import ReferralKind, spec
from shared.identity.person import member_secret, person_key
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_RECEIVED_V1,
    ReferralReceivedV1,
    ReferralSentV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import require_sender

RECEIVE_CONCURRENCY = 32
"""Decisions a worker asks for at once when it receives a batch of referrals."""


@dataclass
class _Arrival:
    """What the receiver found before asking its consent service about an arriving referral:
    already filed (a replay), withdrawn before it came (a tombstone), a problem of the unit
    or of its basis, or the question to ask."""

    filed: bool = False
    withdrawn: TaskTombstone | None = None
    problem: str | None = None
    question: Question | None = None


@dataclass(frozen=True)
class _Known:
    """What this member holds about a run of arriving referrals, read in one query per
    table (not one per referral): tasks already filed, withdrawals that came first, the
    recipient units, and consents heard to have ended or narrowed."""

    filed: set[str]
    withdrawn: dict[str, TaskTombstone]
    units: dict[str, KnownUnit]
    ended: dict[str, ConsentTombstone]
    narrowed: dict[str, ConsentNarrowing]

    @classmethod
    async def of(cls, session: AsyncSession, payloads: Sequence[ReferralSentV1]) -> _Known:
        tasks = [p.task_id for p in payloads]
        consents = [p.basis.consent_id for p in payloads if p.basis.consent_id is not None]
        return cls(
            filed=await IncomingRepository(session).existing_ids(tasks),
            withdrawn={
                t.task_id: t for t in await TaskTombstoneRepository(session).load_many(tasks)
            },
            units={
                u.unit_id: u
                for u in await KnownUnitRepository(session).load_many(
                    p.recipient_unit_id for p in payloads
                )
            },
            ended={
                c.consent_id: c
                for c in await ConsentTombstoneRepository(session).load_many(consents)
            },
            narrowed={
                c.consent_id: c
                for c in await ConsentNarrowingRepository(session).load_many(consents)
            },
        )


def _arrival(work: Work, known: _Known, event: CloudEvent, payload: ReferralSentV1) -> _Arrival:
    me = work.member
    if payload.recipient_orgnr != me:
        raise Reject("not_recipient", "the referral is addressed to another member")
    require_sender(event, payload.sender_orgnr, "a member may only send its own referrals")
    if payload.basis.kind == "same_member" and (
        event.sender_orgnr != work.settings.member.digits or payload.sender_orgnr != me
    ):
        raise Reject("no_basis", "same_member is no basis for a referral from another member")
    if payload.task_id in known.filed:
        return _Arrival(filed=True)  # already filed (a replay after a broker loss)
    tombstone = known.withdrawn.get(payload.task_id)
    if tombstone is not None and tombstone.sender_orgnr == payload.sender_orgnr:
        return _Arrival(withdrawn=tombstone)  # the sender withdrew it before it came
    kind = ReferralKind(payload.kind)
    ref = UnitRef(orgnr=me, unit_id=payload.recipient_unit_id)
    unit = known.units.get(payload.recipient_unit_id)
    problem = unit_problem(unit, ref, kind, invitation=bool(payload.details.get("invitation")))
    if problem is not None:
        return _Arrival(problem=problem)
    if payload.basis.consent_id is not None:
        # This service heard the consent end (ADR 0016); its consent service may lag.
        ended = known.ended.get(payload.basis.consent_id)
        if ended is not None:
            return _Arrival(problem=f"no_basis_at_receiver: consent_{ended.reason}")
        narrowed = known.narrowed.get(payload.basis.consent_id)
        if narrowed is not None and spec(kind).purpose in narrowed.withdrawn_purposes:
            return _Arrival(problem="no_basis_at_receiver: purpose_withdrawn")
    return _Arrival(
        question=Question(
            personnummer=payload.person.personnummer,
            kind=kind,
            categories=categories(kind, payload.person.protected_identity),
            sender={"orgnr": payload.sender_orgnr, "unit_id": payload.sender_unit_id},
            recipient={"orgnr": me, "unit_id": payload.recipient_unit_id},
            legal_basis=claim(payload.basis.model_dump()),
            arrived_from=event.sender_orgnr,
        )
    )


async def receive_referrals(
    work: Work, clients: Clients, arrived: Sequence[tuple[CloudEvent, ReferralSentV1]]
) -> list[Status]:
    """:func:`receive_referral` for a batch: the receive-time decisions are asked for
    concurrently (the consent service answers them together), then each referral is filed
    or refused in order, in the work's one transaction."""
    known = await _Known.of(work.session, [payload for _event, payload in arrived])
    arrivals = [_arrival(work, known, event, payload) for event, payload in arrived]
    gate = asyncio.Semaphore(RECEIVE_CONCURRENCY)

    async def ask(arrival: _Arrival) -> Decision | None:
        if arrival.question is None:
            return None
        async with gate:
            return await decide(clients, work.settings, arrival.question)

    answers = await asyncio.gather(*(ask(a) for a in arrivals))
    return [
        await _file(work, payload, arrival, answer)
        for (_event, payload), arrival, answer in zip(arrived, arrivals, answers, strict=True)
    ]


async def receive_referral(
    work: Work, clients: Clients, event: CloudEvent, payload: ReferralSentV1
) -> Status:
    """Checks an arriving referral again and files it in the receiving unit's inbox
    (``delivered``), or refuses it (``undeliverable``, nothing about the person kept);
    either way the sender is told."""
    (status,) = await receive_referrals(work, clients, [(event, payload)])
    return status


async def _file(
    work: Work, payload: ReferralSentV1, arrival: _Arrival, answer: Decision | None
) -> Status:
    """Files the referral (``delivered``) or records why not (``undeliverable``, or
    ``withdrawn`` when the sender's withdrawal came first)."""
    if arrival.filed:
        return Status.DELIVERED
    if arrival.withdrawn is not None:
        return await _withdrawn_before_arrival(work, payload, arrival.withdrawn)
    reason = arrival.problem
    if answer is not None and not answer.allowed:
        reason = "no_basis_at_receiver: " + ", ".join(answer.codes)
    if reason is not None:
        return await _not_filed(work, payload, Step(Status.UNDELIVERABLE, Actor.SYSTEM, reason))
    incoming = Incoming(
        id=payload.task_id,
        referral_id=payload.referral_id,
        personnummer=payload.person.personnummer,
        person_key=person_key(member_secret(work.settings), payload.person.personnummer),
        protected_identity=payload.person.protected_identity,
        **ReferralContent.of(payload).columns(),
        sender_orgnr=payload.sender_orgnr,
        sender_unit_id=payload.sender_unit_id,
        unit_id=payload.recipient_unit_id,
        status=Status.DELIVERED.value,
        basis=payload.basis.model_dump(exclude_none=True),
        consent_id=payload.basis.consent_id,
        acknowledge_by=payload.acknowledge_by,
        received_at=work.now,
    )
    work.session.add(incoming)
    delivered = Step(Status.DELIVERED, Actor.SYSTEM)
    work.session.add(
        history(work, task_id=incoming.id, side="receiver", frm=Status.SENT, step=delivered)
    )
    await work.session.flush()
    # Documents whose pieces came before the referral (ADR 0023) are stored now.
    await attachment_receiving.on_filed(work, incoming)
    await work.publish(
        topics.internal(work.member),
        REFERRAL_RECEIVED_V1,
        ReferralReceivedV1(
            referral_id=incoming.id,
            kind=incoming.kind,
            unit_id=incoming.unit_id,
            sender_orgnr=incoming.sender_orgnr,
            sender_unit_id=incoming.sender_unit_id,
            urgency=incoming.urgency,
            acknowledge_by=spec(incoming.kind).acknowledge_due_at(incoming.urgency, work.now)
            or end_of_day(incoming.acknowledge_by),
            received_at=work.now,
            protected_identity=incoming.protected_identity,
        ),
        subject=incoming.id,
        key=incoming.id,
    )
    await tell_sender(
        work,
        payload,
        Report(
            Status.SENT,
            Status.DELIVERED,
            Actor.SYSTEM,
            incoming.unit_id,
            None,
            version=incoming.version,
        ),
    )
    return Status.DELIVERED


async def _withdrawn_before_arrival(
    work: Work, payload: ReferralSentV1, tombstone: TaskTombstone
) -> Status:
    """A referral whose withdrawal came first: never filed (nothing about the person kept,
    nothing for the unit's inbox); the step is kept and the sender gets its confirmation."""
    withdrawn = Step(
        Status.WITHDRAWN,
        Actor.SENDER,
        "withdrawn by the sender before it arrived",
        by_orgnr=tombstone.sender_orgnr,
        by_unit_id=tombstone.by_unit_id,
    )
    status = await _not_filed(work, payload, withdrawn)
    await work.session.delete(tombstone)  # the step above now answers a late duplicate
    await work.session.flush()
    return status


async def _not_filed(work: Work, payload: ReferralSentV1, step: Step) -> Status:
    """Keeps the step of a referral that is not filed here (only the step: nothing about
    the person) and answers the sender with it."""
    work.session.add(
        history(work, task_id=payload.task_id, side="receiver", frm=Status.SENT, step=step)
    )
    await attachment_receiving.drop_task(work, payload.task_id)  # pieces that came first
    report = Report(Status.SENT, step.to, Actor.SYSTEM, None, step.reason, version=1)
    await tell_sender(work, payload, report)
    return step.to

"""When a referral's basis ends: a consent withdrawn or expired cancels every open task
resting on it, on this member's side whether it sent or received the task, and what the
receiver keeps of the person afterwards (ADR 0021). A consent narrowed (some purposes
withdrawn, the rest still in force) cancels only the tasks whose kind's purpose was
withdrawn, and every unit holding a task on it is told what it still covers. The ends and
narrowings heard, and withdrawals that came before their referral, are remembered until the
inbox's retention (ADR 0016).
"""

from __future__ import annotations

import datetime as dt

from services.referral import attachment_receiving
from services.referral.codes import Actor, Status
from services.referral.models import ConsentNarrowing, ConsentTombstone, Incoming, Recipient
from services.referral.moves import Report, Step, move_incoming, move_recipient, tell_sender
from services.referral.repository import (
    ConsentNarrowingRepository,
    ConsentTombstoneRepository,
    IncomingRepository,
    RecipientRepository,
    ReferralRepository,
    TaskTombstoneRepository,
)
from shared.data.work import Work
from shared.domain.kinds import KINDS, spec
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_BASIS_NARROWED_V1,
    ConsentEndedV1,
    ConsentNarrowedV1,
    ReferralBasisNarrowedV1,
)
from shared.messaging.ownership import newer, require_owner, require_sender

REGISTERED = frozenset({Status.ACCEPTED.value, Status.IN_PROGRESS.value})
"""A referral the receiving unit accepted (or began working on) is its own case."""

KEPT_DETAILS = ("invitation", "meeting_id")
"""What of a forgotten task's details stays: whether it was an invitation, and to what."""


async def cancel_for_consent(work: Work, event: CloudEvent, payload: ConsentEndedV1) -> int:
    """A consent was withdrawn or expired: every open task resting on it is cancelled, on
    this member's side whether it sent or received the task (both sides are told by their
    own consent event; the receiver also reports to the sender). Returns how many."""
    require_sender(event, payload.owner_orgnr, "only the recording member ends its consent")
    if payload.reason == "superseded":
        return 0  # a new consent takes over; referrals on the old one stay
    session = work.session
    # Remembered, so that a task on it arriving later is not filed (ADR 0016).
    if await ConsentTombstoneRepository(session).get(payload.consent_id) is None:
        session.add(
            ConsentTombstone(
                consent_id=payload.consent_id,
                owner_orgnr=payload.owner_orgnr,
                reason=payload.reason,
                received_at=work.now,
            )
        )
    cancelled = Step(Status.CANCELLED, Actor.SYSTEM, f"the consent was {payload.reason}")
    n = 0
    for recipient in await RecipientRepository(session).open_on_consent(payload.consent_id):
        await move_recipient(work, recipient, cancelled)
        n += 1
    for incoming in await IncomingRepository(session).open_on_consent(payload.consent_id):
        await _cancel_incoming(work, incoming, cancelled)
        n += 1
    await session.flush()
    return n


async def _cancel_incoming(work: Work, incoming: Incoming, cancelled: Step) -> None:
    """Cancels a task held here whose basis ended (for its purpose), reports it to the
    sender, and forgets the person unless the unit had registered it (ADR 0021)."""
    own_case = registered_here(incoming)
    old = await move_incoming(work, incoming, cancelled)
    report = Report(
        old, Status.CANCELLED, Actor.SYSTEM, incoming.unit_id, cancelled.reason,
        version=incoming.version,
    )  # fmt: skip
    await tell_sender(work, incoming, report)
    if not own_case:
        forget_person(incoming)
        await attachment_receiving.drop_task(work, incoming.id)  # the documents too


async def narrow_for_consent(
    work: Work, event: CloudEvent, payload: ConsentNarrowedV1
) -> frozenset[str]:
    """Some purposes of a consent were withdrawn, the rest stay in force: every open task on
    it whose kind's purpose was withdrawn is cancelled as when the consent ends
    (:func:`cancel_for_consent`: a SIP invitation), the others stay (a kontaktbegäran the
    kommun registered as an application), on this member's side whether it sent or received
    them; each of this member's units holding one of those tasks is told which kinds of
    referral the consent still covers. Returns the purposes withdrawn; none when there was
    nothing to do (the consent already ended here, or a narrowing as new was heard)."""
    require_sender(event, payload.owner_orgnr, "only the recording member narrows its consent")
    session = work.session
    if await ConsentTombstoneRepository(session).get(payload.consent_id) is not None:
        return frozenset()  # it ended here: every task on it was cancelled then
    if not await _remember_narrowing(work, payload):
        return frozenset()
    withdrawn = frozenset(payload.withdrawn_purposes)
    covers = [k.value for k, s in KINDS.items() if s.purpose in payload.purposes]
    reason = "the consent was withdrawn for " + ", ".join(sorted(withdrawn))
    cancelled = Step(Status.CANCELLED, Actor.SYSTEM, reason)
    told: list[ReferralBasisNarrowedV1] = []
    for recipient in await RecipientRepository(session).open_on_consent(payload.consent_id):
        referral = await ReferralRepository(session).get(recipient.referral_id)
        assert referral is not None
        gone = spec(referral.kind).purpose in withdrawn
        if gone:
            await move_recipient(work, recipient, cancelled)
        told.append(_told(work, recipient, referral.kind, referral.sender_unit_id, covers, gone))
    for incoming in await IncomingRepository(session).open_on_consent(payload.consent_id):
        gone = spec(incoming.kind).purpose in withdrawn
        if gone:
            await _cancel_incoming(work, incoming, cancelled)
        told.append(_told(work, incoming, incoming.kind, incoming.unit_id, covers, gone))
    for news in told:
        await work.publish(
            topics.internal(work.member),
            REFERRAL_BASIS_NARROWED_V1,
            news,
            subject=news.referral_id,
            key=news.referral_id,
        )
    await session.flush()
    return withdrawn


async def _remember_narrowing(work: Work, payload: ConsentNarrowedV1) -> bool:
    """Keeps what was withdrawn (so a task of it arriving later is not filed, ADR 0016);
    False for a narrowing no newer than one heard (a replay, or overtaken by a later one).
    The first owner heard binds the consent id here (``not_owner`` for another)."""
    narrowings = ConsentNarrowingRepository(work.session)
    heard = await narrowings.get(payload.consent_id)
    if heard is None:
        heard = ConsentNarrowing(consent_id=payload.consent_id, owner_orgnr=payload.owner_orgnr)
        work.session.add(heard)
    else:
        require_owner(heard.owner_orgnr, payload.owner_orgnr, "the consent id has another owner")
        if not newer(heard.version, payload.version):
            return False
    heard.withdrawn_purposes = list(payload.withdrawn_purposes)
    heard.version = payload.version
    heard.received_at = work.now
    return True


def _told(
    work: Work,
    task: Recipient | Incoming,
    kind: str,
    unit_id: str,
    covers: list[str],
    cancelled: bool,
) -> ReferralBasisNarrowedV1:
    """What this member's notify tells the unit holding ``task`` of the narrowing."""
    if isinstance(task, Incoming):
        direction, counterpart = "incoming", task.sender_orgnr
    else:
        direction, counterpart = "outgoing", task.orgnr
    return ReferralBasisNarrowedV1(
        referral_id=task.id,
        kind=kind,
        unit_id=unit_id,
        direction=direction,
        counterpart_orgnr=counterpart,
        covers=covers,
        cancelled=cancelled,
        narrowed_at=work.now,
    )


def registered_here(incoming: Incoming) -> bool:
    """Whether the receiving unit had taken the referral into its own records before its
    basis ended (ADR 0021): accepted or in progress, or acknowledged with the unit's own case
    reference (a kontaktbegäran registered as an application). An invitation to a meeting
    never is: accepting one is agreeing to attend, not opening a case."""
    if incoming.details.get("invitation"):
        return False
    return incoming.status in REGISTERED or bool(incoming.case_reference)


def forget_person(incoming: Incoming) -> None:
    """A task cancelled because its basis ended, not registered here: nothing about the
    person stays (ADR 0021) — no personnummer, person key, needs, summary, wish, attachments
    or details (its attached documents are deleted by the caller: ADR 0023), no outcome or
    result, and of its komplettering rounds only their numbers and times; the task keeps its
    ids, kind, units, dates, status and reason."""
    incoming.personnummer = None
    incoming.person_key = None
    incoming.needs = []
    incoming.summary = ""
    incoming.persons_wish = ""
    incoming.children_in_household = "unknown"
    incoming.children_unknown_reason = ""
    incoming.reachability = None
    incoming.drug_free = None
    incoming.attachments = []
    incoming.details = {k: incoming.details[k] for k in KEPT_DETAILS if k in incoming.details}
    incoming.outcome = None
    incoming.result = None
    incoming.komplettering = [
        {k: r.get(k) for k in ("round", "asked_at", "answered_at")}
        for r in incoming.komplettering or []
    ]


async def prune_tombstones(work: Work) -> int:
    """Deletes tombstones older than the inbox's retention (ADR 0016); returns how many."""
    cut_off = work.now - dt.timedelta(days=work.settings.kafka.inbox_retention_days)
    tasks = await TaskTombstoneRepository(work.session).prune(cut_off)
    narrowings = await ConsentNarrowingRepository(work.session).prune(cut_off)
    return tasks + narrowings + await ConsentTombstoneRepository(work.session).prune(cut_off)

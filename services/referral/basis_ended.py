"""When a referral's basis ends: a consent withdrawn or expired cancels every open task
resting on it, on this member's side whether it sent or received the task, and what the
receiver keeps of the person afterwards (ADR 0021). The ends heard, and withdrawals that
came before their referral, are remembered as tombstones until the inbox's retention
(ADR 0016).
"""

from __future__ import annotations

import datetime as dt

from services.referral.codes import Actor, Status
from services.referral.models import ConsentTombstone, Incoming
from services.referral.moves import Report, Step, move_incoming, move_recipient, tell_sender
from services.referral.repository import (
    ConsentTombstoneRepository,
    IncomingRepository,
    RecipientRepository,
    TaskTombstoneRepository,
)
from shared.data.work import Work
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import ConsentEndedV1
from shared.messaging.ownership import require_sender

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
        own_case = registered_here(incoming)
        old = await move_incoming(work, incoming, cancelled)
        await tell_sender(
            work,
            incoming,
            Report(
                old,
                Status.CANCELLED,
                Actor.SYSTEM,
                incoming.unit_id,
                cancelled.reason,
                version=incoming.version,
            ),
        )
        if not own_case:
            forget_person(incoming)
        n += 1
    await session.flush()
    return n


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
    or details; the task keeps its ids, kind, units, dates, status and reason."""
    incoming.personnummer = None
    incoming.person_key = None
    incoming.needs = []
    incoming.summary = ""
    incoming.persons_wish = ""
    incoming.children_in_household = "unknown"
    incoming.drug_free = None
    incoming.attachments = []
    incoming.details = {k: incoming.details[k] for k in KEPT_DETAILS if k in incoming.details}
    incoming.outcome = None


async def prune_tombstones(work: Work) -> int:
    """Deletes tombstones older than the inbox's retention (ADR 0016); returns how many."""
    cut_off = work.now - dt.timedelta(days=work.settings.kafka.inbox_retention_days)
    tasks = await TaskTombstoneRepository(work.session).prune(cut_off)
    return tasks + await ConsentTombstoneRepository(work.session).prune(cut_off)

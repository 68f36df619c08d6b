"""What a unit reads: the referrals it sent (each with every recipient's status; an HVB
notification's or discharge planning's handover: :mod:`.handover`), its own inbox of
incoming ones, either of them only with tasks past a deadline (``overdue``: not
acknowledged, not answered once acknowledged, or — the sender's — a komplettering not
answered in time), a task's history as its side saw it, and everything about one person
sent or received by this member.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.referral.access import (
    PROTECTED_ROLE,
    ReferralNotFound,
    caller_of,
    can_see,
    require_unit,
)
from services.referral.codes import (
    AWAITING_ACKNOWLEDGEMENT,
    AWAITING_ANSWER,
    AWAITING_INFORMATION,
    Overdue,
    Status,
)
from services.referral.models import Incoming, Recipient, Referral, Transition
from services.referral.repository import (
    IncomingRepository,
    KnownUnitRepository,
    RecipientRepository,
    ReferralRepository,
    TransitionRepository,
)
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import member_secret, person_key

T = TypeVar("T")


@dataclass(frozen=True)
class Sent:
    """A referral the unit sent, with its recipients."""

    referral: Referral
    recipients: list[Recipient]


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a worklist: the rows read (one beyond the page says there is a next), and
    the items the caller sees of them."""

    rows: list[str]
    items: list[T]


def today(work: Work) -> dt.date:
    """The work's day in Sweden."""
    return to_local(work.now).date()


def is_overdue(
    row: Incoming | Recipient,
    on: dt.date,
    which: Overdue = Overdue.ANY,
    *,
    acknowledge_due_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Whether the task (the receiver's, or the sender's mirror) is past ``which`` deadline
    on the day ``on``: still not acknowledged after ``acknowledge_by`` (a kind counted in
    hours: after ``acknowledge_due_at``, at the instant ``now``), acknowledged and still
    not answered after ``answer_by``, or — the sender's mirror only — asked for more
    information and not answered by ``information_by`` (the repositories'
    ``past_deadline`` in SQL). A task waiting for information is never overdue to answer."""
    status = Status(row.status)
    if acknowledge_due_at is not None and now is not None:
        acknowledgement_late = now > acknowledge_due_at
    else:
        acknowledgement_late = row.acknowledge_by < on
    late = {
        Overdue.ACKNOWLEDGE: status in AWAITING_ACKNOWLEDGEMENT and acknowledgement_late,
        Overdue.ANSWER: status in AWAITING_ANSWER
        and row.answer_by is not None
        and row.answer_by < on,
        Overdue.INFORMATION: isinstance(row, Recipient)
        and status in AWAITING_INFORMATION
        and row.information_by is not None
        and row.information_by < on,
    }
    return any(late.values()) if which is Overdue.ANY else late[which]


async def unit_names(work: Work, recipients: list[Recipient]) -> dict[str, str]:
    """The recipients' units' names, as the directory last told them."""
    return await KnownUnitRepository(work.session).names([r.unit_id for r in recipients])


async def get_sent(work: Work, referral_id: str) -> Sent:
    """A referral the caller's unit sent, by its id or the task id of one of its recipients
    (ReferralNotFound for anyone else)."""
    unit = require_unit(caller_of(work))
    referral = await ReferralRepository(work.session).get(referral_id)
    if referral is None and (task := await RecipientRepository(work.session).get(referral_id)):
        referral = await ReferralRepository(work.session).get(task.referral_id)
    if referral is None or referral.sender_unit_id != unit:
        raise ReferralNotFound("no such referral sent by your unit")
    return Sent(referral, await RecipientRepository(work.session).of_referral(referral.id))


async def sent_page(
    work: Work,
    *,
    kind: ReferralKind | None,
    status: Status | None,
    overdue: Overdue | None = None,
    updated_since: dt.datetime | None = None,
    after: str | None,
    limit: int,
) -> Page[Sent]:
    """The caller's unit's sent referrals, newest first, of ``kind``, with any recipient in
    ``status`` and with any recipient past the ``overdue`` deadline (every recipient is
    listed, each saying whether it is overdue)."""
    unit = require_unit(caller_of(work))
    rows = await ReferralRepository(work.session).page_sent_by(
        unit,
        kind=kind.value if kind else None,
        status=status.value if status else None,
        overdue=(overdue, work.now) if overdue else None,
        updated_since=updated_since,
        after=after,
        limit=limit + 1,
    )
    by_referral = await RecipientRepository(work.session).of_referrals([r.id for r in rows])
    return Page([r.id for r in rows], [Sent(ref, by_referral[ref.id]) for ref in rows[:limit]])


async def inbox_page(
    work: Work,
    *,
    statuses: list[Status] | None,
    kind: ReferralKind | None,
    overdue: Overdue | None,
    after: str | None,
    limit: int,
    updated_since: dt.datetime | None = None,
) -> Page[Incoming]:
    """The caller's unit's inbox, oldest first, by status, kind, or past a deadline only."""
    caller = caller_of(work)
    rows = await IncomingRepository(work.session).page_for_unit(
        require_unit(caller),
        statuses=[s.value for s in statuses] if statuses else None,
        kind=kind.value if kind else None,
        overdue=(overdue, work.now) if overdue else None,
        updated_since=updated_since,
        after=after,
        limit=limit + 1,
    )
    return Page([r.id for r in rows], [r for r in rows[:limit] if can_see(caller, r)])


async def task_history(work: Work, task_id: str) -> tuple[Referral | Incoming, list[Transition]]:
    """A task's steps as the caller's unit's side saw them (the sending unit: its sent
    task; the receiving unit: its incoming one), oldest first, with what they are of."""
    caller = caller_of(work)
    unit = require_unit(caller)
    row: Referral | Incoming | None = None
    incoming = await IncomingRepository(work.session).get(task_id)
    if incoming is not None and can_see(caller, incoming):
        row = incoming
    else:
        recipient = await RecipientRepository(work.session).get(task_id)
        if recipient is not None:
            referral = await ReferralRepository(work.session).get(recipient.referral_id)
            if referral is not None and referral.sender_unit_id == unit:
                row = referral
    if row is None:
        raise ReferralNotFound("no such referral for your unit")
    steps = await TransitionRepository(work.session).of_task(task_id)
    side = "receiver" if isinstance(row, Incoming) else "sender"
    return row, [t for t in steps if t.side == side]


async def about_person(work: Work, personnummer: str) -> tuple[list[Sent], list[Incoming]]:
    """Every referral about the person sent and received by this member (a protected
    identity only for the role)."""
    key = person_key(member_secret(work.settings), normalise_personnummer(personnummer))
    allowed_protected = caller_of(work).has_role(PROTECTED_ROLE)
    recipients = RecipientRepository(work.session)
    sent = [
        Sent(ref, await recipients.of_referral(ref.id))
        for ref in await ReferralRepository(work.session).for_person(key)
        if allowed_protected or not ref.protected_identity
    ]
    received = [
        row
        for row in await IncomingRepository(work.session).for_person(key)
        if allowed_protected or not row.protected_identity
    ]
    return sent, received

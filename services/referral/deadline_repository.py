"""The SQL of the deadline check (:mod:`services.referral.deadlines`): the open discharge
plannings on both sides, the tasks awaiting an answer on both sides, the sent tasks whose
holder waits for the sender's komplettering, the referrals still owing a SIP, the plans, and
the deadline events already sent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exists, or_, select

from services.referral.codes import Overdue
from services.referral.models import (
    DeadlineNotice,
    Incoming,
    Meeting,
    Plan,
    Recipient,
    Referral,
)
from services.referral.repository import (
    AWAITING_ANSWER_STATUSES,
    AWAITING_INFORMATION_STATUSES,
    OPEN_STATUSES,
    past_deadline,
)
from shared.data.db import RepositoryBase

DISCHARGE_PLANNING = "utskrivningsplanering"

NoticeKey = tuple[str, str, str, str]
"""What a deadline event is sent once per: subject id, deadline, state, unit id."""


class DeadlineRepository(RepositoryBase[DeadlineNotice]):
    model = DeadlineNotice

    async def sent(self) -> set[NoticeKey]:
        """Every deadline event sent before, by subject, deadline, state and unit."""
        notices = await self.session.scalars(select(DeadlineNotice))
        return {(n.subject_id, n.deadline, n.state, n.unit_id) for n in notices}

    def note(self, key: NoticeKey) -> None:
        """Records that the event of ``key`` is sent (written with the next flush)."""
        subject_id, deadline, state, unit_id = key
        self.session.add(
            DeadlineNotice(subject_id=subject_id, deadline=deadline, state=state, unit_id=unit_id)
        )

    async def told(self, subject_id: str, deadline: str) -> bool:
        """Whether any event of a subject's deadline was sent."""
        stmt = select(DeadlineNotice.subject_id).where(
            DeadlineNotice.subject_id == subject_id, DeadlineNotice.deadline == deadline
        )
        return (await self.session.scalars(stmt.limit(1))).first() is not None

    async def forget(self, subject_id: str, deadline: str) -> None:
        """Forgets the events sent of a subject's deadline, so that a new date of it (a task
        answered after a komplettering: ``answer``; a new round: ``information``) is
        chased again."""
        await self.session.execute(
            delete(DeadlineNotice).where(
                DeadlineNotice.subject_id == subject_id, DeadlineNotice.deadline == deadline
            )
        )

    async def open_discharges_received(self) -> list[Incoming]:
        """The discharge plannings this member received and has not closed."""
        stmt = select(Incoming).where(
            Incoming.kind == DISCHARGE_PLANNING, Incoming.status.in_(OPEN_STATUSES)
        )
        return list(await self.session.scalars(stmt))

    async def open_discharges_sent(self) -> list[tuple[Recipient, Referral]]:
        """The receivers of the discharge plannings this member sent whose task is open,
        each with its referral."""
        stmt = (
            select(Recipient, Referral)
            .join(Referral, Referral.id == Recipient.referral_id)
            .where(Referral.kind == DISCHARGE_PLANNING, Recipient.status.in_(OPEN_STATUSES))
        )
        return [(recipient, referral) for recipient, referral in (await self.session.execute(stmt))]

    async def answers_due_received(self, by: dt.date) -> list[Incoming]:
        """The tasks this member's units acknowledged and still owe an answer to (accept or
        decline) by ``by`` or earlier."""
        stmt = select(Incoming).where(
            Incoming.status.in_(AWAITING_ANSWER_STATUSES), Incoming.answer_by <= by
        )
        return list(await self.session.scalars(stmt.order_by(Incoming.id)))

    async def unanswered_sent(self, on: dt.date) -> list[tuple[Recipient, Referral]]:
        """The receivers of what this member sent that are past a deadline on ``on``: not
        acknowledged by ``acknowledge_by``, or acknowledged and not answered by
        ``answer_by``, each with its referral (the sender's own komplettering deadline is
        not the receiver's: :meth:`information_due_sent`)."""
        late = or_(
            past_deadline(Recipient, Overdue.ACKNOWLEDGE, on),
            past_deadline(Recipient, Overdue.ANSWER, on),
        )
        stmt = (
            select(Recipient, Referral)
            .join(Referral, Referral.id == Recipient.referral_id)
            .where(late)
            .order_by(Recipient.id)
        )
        return [(recipient, referral) for recipient, referral in (await self.session.execute(stmt))]

    async def information_due_sent(self, by: dt.date) -> list[tuple[Recipient, Referral]]:
        """The sent tasks whose holder waits for the sending unit's komplettering with
        ``information_by`` on ``by`` or earlier, each with its referral."""
        stmt = (
            select(Recipient, Referral)
            .join(Referral, Referral.id == Recipient.referral_id)
            .where(
                Recipient.status.in_(AWAITING_INFORMATION_STATUSES),
                Recipient.information_by <= by,
            )
            .order_by(Recipient.id)
        )
        return [(recipient, referral) for recipient, referral in (await self.session.execute(stmt))]

    async def sip_owed(self, kinds: list[str], taking_part: list[str]) -> list[Referral]:
        """The referrals of ``kinds`` this member sent that no SIP answers yet (no meeting
        names them) while a recipient still takes part (its task in ``taking_part``)."""
        if not kinds:
            return []
        answered = exists().where(Meeting.for_referral_id == Referral.id)
        engaged = exists().where(
            Recipient.referral_id == Referral.id, Recipient.status.in_(taking_part)
        )
        stmt = select(Referral).where(Referral.kind.in_(kinds), ~answered, engaged)
        return list(await self.session.scalars(stmt.order_by(Referral.id)))

    async def plans(self) -> list[Plan]:
        """Every plan this member holds (its own and those shared with it)."""
        return list(await self.session.scalars(select(Plan)))

    async def follow_up_meetings(self) -> list[Meeting]:
        """The follow-up meetings convened here that are still to be held."""
        stmt = select(Meeting).where(Meeting.follow_up_of.is_not(None), Meeting.status == "planned")
        return list(await self.session.scalars(stmt))

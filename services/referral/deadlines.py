"""Deadline events beyond the acknowledgement (which notify times itself from
``referral.received``): a discharge date coming near and passing, for the sending unit
and the receiving units of a discharge planning, and a plan's follow-up date, for its
coordinating function. Each event is sent once per subject, deadline, state and unit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.codes import FINAL, Status
from services.referral.models import DeadlineNotice, Incoming, Plan, Recipient, Referral
from shared.data.db import utcnow
from shared.domain.calendar import add_working_days, end_of_day, to_local
from shared.messaging.events import topics
from shared.messaging.events.payloads import REFERRAL_DEADLINE_V1, ReferralDeadlineV1
from shared.messaging.outbox import Outbox

OPEN = [s.value for s in Status if s not in FINAL]


def _state(due: dt.date, today: dt.date, near_days: int) -> str | None:
    if today > due:
        return "overdue"
    if today >= due or add_working_days(today, near_days) >= due:
        return "near"
    return None


async def check(
    *, session: AsyncSession, outbox: Outbox, me: str, near_days: int, today: dt.date | None = None
) -> int:
    """Sends every due deadline event not sent before; returns how many were sent."""
    today = today or to_local(utcnow()).date()
    sent = {
        (n.subject_id, n.deadline, n.state, n.unit_id)
        for n in await session.scalars(select(DeadlineNotice))
    }
    due_events: list[tuple[str, str, str, str, dt.date, str]] = []  # id, kind, unit, dl, due, st

    for incoming in await session.scalars(
        select(Incoming).where(Incoming.kind == "utskrivningsplanering", Incoming.status.in_(OPEN))
    ):
        due = dt.date.fromisoformat(incoming.details["expected_discharge_date"])
        state = _state(due, today, near_days)
        if state:
            due_events.append(
                (incoming.id, incoming.kind, incoming.unit_id, "discharge", due, state)
            )

    rows = await session.execute(
        select(Recipient, Referral)
        .join(Referral, Referral.id == Recipient.referral_id)
        .where(Referral.kind == "utskrivningsplanering", Recipient.status.in_(OPEN))
    )
    for recipient, referral in rows.all():
        due = dt.date.fromisoformat(referral.details["expected_discharge_date"])
        state = _state(due, today, near_days)
        if state:
            due_events.append(
                (recipient.id, referral.kind, referral.sender_unit_id, "discharge", due, state)
            )

    for plan in await session.scalars(select(Plan)):
        coordinator = plan.coordinator or {}
        if coordinator.get("orgnr") != me or not coordinator.get("unit_id"):
            continue
        if all(a.get("status") == "ended" for a in plan.actions):
            continue
        state = _state(plan.follow_up_date, today, near_days)
        if state:
            kind = "vardkedjeremiss" if plan.kind == "remissmote" else "sip_kallelse"
            due_events.append(
                (plan.id, kind, coordinator["unit_id"], "plan", plan.follow_up_date, state)
            )

    n = 0
    for subject, kind, unit_id, deadline, due, state in due_events:
        if (subject, deadline, state, unit_id) in sent:
            continue
        session.add(
            DeadlineNotice(subject_id=subject, deadline=deadline, state=state, unit_id=unit_id)
        )
        await outbox.publish(
            session,
            topics.internal(me),
            REFERRAL_DEADLINE_V1,
            ReferralDeadlineV1(
                referral_id=subject,
                kind=kind,
                unit_id=unit_id,
                deadline=deadline,
                due_at=end_of_day(due),
                state=state,
            ),
            subject=subject,
            key=subject,
        )
        n += 1
    await session.flush()
    return n

"""Timers: the persistent reminders, overdue notices and escalations of a deadline, and
firing them when due (their notifications go through the rules table as ``timer:<action>``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from services.notify.content import Facts, derived_id
from services.notify.fanout import Origin, Row, fan_out
from services.notify.repository import TimerRepository
from shared.config import NotifySettings
from shared.data.work import Work
from shared.domain.kinds import ReferralKind

TIMER_KINDS = {
    "remind": "deadline.reminder",
    "overdue": "deadline.overdue",
    "escalate": "deadline.escalated",
}


def deadline_timers(
    *,
    settings: NotifySettings,
    facts: Facts,
    deadline: str,
    due_at: dt.datetime,
    actions: Sequence[str],
    source_event_id: str,
    now: dt.datetime,
) -> list[Row]:
    """The reminder, overdue notice and escalation of one deadline (rows with derived ids)."""
    offsets = {
        "remind": -dt.timedelta(seconds=settings.remind_before_s),
        "overdue": dt.timedelta(0),
        "escalate": dt.timedelta(seconds=settings.escalate_after_s),
    }
    out: list[Row] = []
    due = due_at.isoformat()
    for action in actions:
        fire_at = due_at + offsets[action]
        # A reminder whose moment has passed is noise; overdue and escalation still fire.
        if action == "remind" and (fire_at <= now or settings.remind_before_s == 0):
            continue
        out.append(
            {
                "id": derived_id("timer", facts.subject_id, deadline, action, due),
                "action": action,
                "fire_at": fire_at,
                "state": "pending",
                "subject_type": facts.subject_type,
                "subject_id": facts.subject_id,
                "unit_id": facts.unit_id or "",
                "referral_kind": facts.referral_kind.value if facts.referral_kind else None,
                "urgency": facts.urgency,
                "deadline": deadline,
                "due_at": due_at,
                "counterpart_orgnr": facts.counterpart_orgnr,
                "source_event_id": source_event_id,
                "created_at": now,
                "fired_at": None,
            }
        )
    return out


async def cancel_deadline(work: Work, *, subject_id: str, deadline: str | None) -> int:
    """Cancels the pending timers of a subject's deadline (it was met or acknowledged)."""
    return await TimerRepository(work.session).cancel_pending(
        subject_id=subject_id, deadline=deadline
    )


async def fire_due_timers(work: Work, *, limit: int = 100) -> int:
    """Fires the timers that are due: their notifications go through the rules table."""
    repo = TimerRepository(work.session)
    origins: list[Origin] = []
    for timer in await repo.due(now=work.now, limit=limit):
        if not await repo.mark_fired(timer.id, now=work.now):
            continue
        facts = Facts(
            kind=TIMER_KINDS[timer.action],
            subject_type=timer.subject_type,
            subject_id=timer.subject_id,
            unit_id=timer.unit_id or None,
            referral_kind=ReferralKind(timer.referral_kind) if timer.referral_kind else None,
            urgency=timer.urgency,
            deadline=timer.deadline,
            due_at=timer.due_at,
            counterpart_orgnr=timer.counterpart_orgnr,
        )
        rule_event = f"timer:{timer.action}"
        origins.append(Origin(f"timer:{timer.id}", rule_event, rule_event, [facts]))
    if origins:
        await fan_out(work, origins=origins)
    return len(origins)

"""Deadline events beyond the acknowledgement reminders (which notify times itself from
``referral.received``): a discharge date coming near and passing, for the sending unit
and the receiving units of a discharge planning; a plan's follow-up date, for its
coordinating function; and the answers still owed — a receiving unit that acknowledged a
task (or an invitation) and has not accepted or declined it is reminded as ``answer_by``
comes near and when it passes, and the unit that sent it (or convened the meeting) is
alerted once a task it sent is past its deadline, unacknowledged or unanswered (audience
``sender``, timed by this member's own copy of the task) — for an invitation to a plan's
follow-up meeting, so are the plan's coordinating units here (audience ``coordinator``).
A task whose holder asked for more information (komplettering) is chased for neither: the
unit that sent it owes the answer instead, and is reminded as its ``information_by`` comes
near and when it passes (deadline ``information``, audience ``actor``). Each event is sent
once per subject, deadline, state and unit — per round of komplettering: an answer forgets
the round's events (and publishes ``met``), and the holder's ``answer`` deadline, moved on
by the wait, is chased afresh.

A plan's actions have their own deadlines: its owner unit (for an actor outside the
federation, the plan's coordinating units, who record its steps) is reminded as
``start_by`` comes near and passes while it has not started (``action_start``), and as
``end_by`` does while it has not ended (``action_end``). Once either has passed, every
coordinating unit of the plan is alerted (audience ``coordinator``: an escalation) unless it
owns the action itself. Every member holding the plan (the owner's and each party's copy)
checks for its own units only, so an owner and a coordinator at different members are each
told by their own member. The events name the plan (``referral_id``) and the action
(``action_id``), and are sent once per action, deadline, state and unit.

A referral that owes a SIP (an HVB notification: ``KindSpec.sip_working_days``) and that no
SIP meeting answers yet (``for_referral_id``) reminds its sending unit as its ``sip_by``
comes near and alerts it once passed (``sip``, audience ``actor``), while a recipient still
takes part; convening the SIP sends ``met`` (:func:`.handover.sip_convened`).

The rules live here (when a date is near or passed, which plans are followed up by whom);
the rows come from :mod:`services.referral.deadline_repository`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from services.referral import handover
from services.referral.actions import FINAL, PLANNED, owner_of
from services.referral.codes import AWAITING_ANSWER, Status
from services.referral.deadline_repository import DeadlineRepository, NoticeKey
from services.referral.models import Incoming, Plan, Recipient, Referral
from services.referral.plans import ACTIVE, plan_referral_kind
from shared.data.work import Work
from shared.domain.calendar import add_working_days, end_of_day, to_local
from shared.messaging.events import topics
from shared.messaging.events.payloads import REFERRAL_DEADLINE_V1, ReferralDeadlineV1

TAKING_PART = sorted(s.value for s in Status if s not in handover.LEFT)
"""A recipient in one of these still takes part: its sender still owes the SIP."""


class Due(NamedTuple):
    """A deadline near or passed: whose (``subject``, a task or plan id; ``action_id``, an
    action of that plan), of which kind of referral, for which unit, which deadline
    (``discharge``, ``plan``, ``acknowledge``, ``answer``, ``action_start``, ``action_end``
    or ``sip``), its date, its state, and whether the unit must act (``actor``), waits
    for another's answer (``sender``) or coordinates the plan whose action is late
    (``coordinator``)."""

    subject: str
    kind: str
    unit_id: str
    deadline: str
    due: dt.date
    state: str
    audience: str = "actor"
    action_id: str | None = None

    @property
    def key(self) -> NoticeKey:
        """What the event is sent once per (an action's deadlines: per action)."""
        return (self.action_id or self.subject, self.deadline, self.state, self.unit_id)

    def event(self) -> ReferralDeadlineV1:
        """The deadline event's payload (its ``referral_id``: the task's or plan's id)."""
        return ReferralDeadlineV1(
            referral_id=self.subject, kind=self.kind, unit_id=self.unit_id,
            deadline=self.deadline, due_at=end_of_day(self.due), state=self.state,
            audience=self.audience, action_id=self.action_id,
        )  # fmt: skip


@dataclass(frozen=True)
class _Today:
    """The day of the check and how many working days before a deadline count as near."""

    today: dt.date
    near_days: int

    def state(self, due: dt.date) -> str | None:
        """``overdue`` after ``due``, ``near`` from ``near_days`` working days before it."""
        if self.today > due:
            return "overdue"
        if self.today >= due or add_working_days(self.today, self.near_days) >= due:
            return "near"
        return None

    def due(self, subject: str, kind: str, unit_id: str, deadline: str, on: dt.date) -> Due | None:
        """The deadline ``on`` as due today, or None while it is neither near nor passed."""
        state = self.state(on)
        return Due(subject, kind, unit_id, deadline, on, state) if state else None

    def discharge(
        self, subject: str, kind: str, unit_id: str, details: dict[str, Any]
    ) -> Due | None:
        """A discharge planning's expected discharge date, for ``unit_id``."""
        on = dt.date.fromisoformat(details["expected_discharge_date"])
        return self.due(subject, kind, unit_id, "discharge", on)

    def passed(
        self, subject: str, kind: str, unit_id: str, deadline: str, on: dt.date
    ) -> Due | None:
        """The deadline ``on`` of another's answer, for a unit that waits for it: told once
        it has passed (``sender``), never before."""
        return (
            Due(subject, kind, unit_id, deadline, on, "overdue", "sender")
            if self.today > on
            else None
        )

    @property
    def horizon(self) -> dt.date:
        """The last day a deadline can have that is near today."""
        return add_working_days(self.today, self.near_days)


def _discharges(
    day: _Today, received: list[Incoming], sent: list[tuple[Recipient, Referral]]
) -> list[Due]:
    """The open discharge plannings' dates: for the receiving unit of those received, and
    for the sending unit of each open receiver of those sent."""
    found = [day.discharge(i.id, i.kind, i.unit_id, i.details) for i in received]
    found += [day.discharge(t.id, r.kind, r.sender_unit_id, r.details) for t, r in sent]
    return [d for d in found if d]


def _answers_owed(day: _Today, received: list[Incoming]) -> list[Due]:
    """The tasks this member's units acknowledged and have not answered (accepted or
    declined), as their ``answer_by`` comes near and passes: for the receiving unit."""
    found = [
        day.due(i.id, i.kind, i.unit_id, "answer", i.answer_by) for i in received if i.answer_by
    ]
    return [d for d in found if d]


def _information_owed(day: _Today, sent: list[tuple[Recipient, Referral]]) -> list[Due]:
    """The tasks this member's units sent whose holder asked for more information, as
    their ``information_by`` comes near and passes: for the sending unit, which must act."""
    found = [
        day.due(t.id, r.kind, r.sender_unit_id, "information", t.information_by)
        for t, r in sent
        if t.information_by is not None
    ]
    return [d for d in found if d]


def _unanswered(
    day: _Today, sent: list[tuple[Recipient, Referral]], coordinators: dict[str, list[str]]
) -> list[Due]:
    """The tasks this member's units sent that are past their deadline here — not
    acknowledged by ``acknowledge_by``, or acknowledged and not answered by ``answer_by``
    — for the sending (or convening) unit, once they have passed; for an invitation to a
    plan's follow-up meeting, also for the plan's coordinating units here (``coordinators``
    by meeting id) other than the convener."""
    found = []
    for task, referral in sent:
        if Status(task.status) in AWAITING_ANSWER and task.answer_by is not None:
            deadline, on = "answer", task.answer_by
        else:
            deadline, on = "acknowledge", task.acknowledge_by
        alert = day.passed(task.id, referral.kind, referral.sender_unit_id, deadline, on)
        if alert is None:
            continue
        found.append(alert)
        meeting_id = referral.details.get("meeting_id") if referral.details else None
        found += [
            alert._replace(unit_id=u, audience="coordinator")
            for u in coordinators.get(str(meeting_id), [])
            if u != referral.sender_unit_id
        ]
    return found


def _sips_owed(day: _Today, owed: list[Referral], working_days: dict[str, int]) -> list[Due]:
    """The referrals this member sent that owe a SIP (an HVB notification) and have none
    convened yet, as their ``sip_by`` comes near and passes: for the sending unit."""
    found = []
    for referral in owed:
        due = handover.sip_by(referral, working_days)
        if due is not None:
            found.append(day.due(referral.id, referral.kind, referral.sender_unit_id, "sip", due))
    return [d for d in found if d]


def _follow_up(day: _Today, plan: Plan, me: str) -> list[Due]:
    """A plan's follow-up date, for each of its coordinating units that is one of ``me``'s,
    while some action of the plan has not ended or been cancelled."""
    if all(a.get("status") in ("ended", "cancelled") for a in plan.actions):
        return []
    kind = plan_referral_kind(plan.kind).value
    found = [
        day.due(plan.id, kind, c["unit_id"], "plan", plan.follow_up_date)
        for c in plan.coordinators
        if c.get("orgnr") == me and c.get("unit_id")
    ]
    return [d for d in found if d]


def _action_deadline(action: dict[str, Any]) -> tuple[str, dt.date] | None:
    """The deadline an open action has next: ``action_start`` while it is planned (if it
    has a ``start_by``), else ``action_end`` (if it has an ``end_by``)."""
    if action.get("status") in FINAL:
        return None
    if action.get("status") == PLANNED and action.get("start_by"):
        return "action_start", dt.date.fromisoformat(action["start_by"])
    if action.get("end_by"):
        return "action_end", dt.date.fromisoformat(action["end_by"])
    return None


def _actors(owner: tuple[str, str] | None, me: str, coordinators: list[str]) -> list[str]:
    """The units of ``me`` that must act on an action: its owner unit if it is one of
    ``me``'s; for an outside actor, ``me``'s coordinating units (they record its steps)."""
    if owner is None:
        return coordinators
    return [owner[1]] if owner[0] == me else []


def _actions(day: _Today, plan: Plan, me: str) -> list[Due]:
    """An active plan's open actions whose next deadline is near or passed: for the owner
    unit (if it is one of ``me``'s; for an outside actor, ``me``'s coordinating units), and
    once passed for every coordinating unit of ``me``'s that does not own the action."""
    if plan.status != ACTIVE:
        return []
    kind = plan_referral_kind(plan.kind).value
    mine = [c["unit_id"] for c in plan.coordinators if c.get("orgnr") == me and c.get("unit_id")]
    found: list[Due] = []
    for action in plan.actions:
        next_deadline = _action_deadline(action)
        if next_deadline is None:
            continue
        deadline, on = next_deadline
        state = day.state(on)
        if state is None:
            continue
        actors = _actors(owner_of(action), me, mine)
        found += [Due(plan.id, kind, u, deadline, on, state, "actor", action["id"]) for u in actors]
        if state == "overdue":
            found += [
                Due(plan.id, kind, u, deadline, on, state, "coordinator", action["id"])
                for u in mine
                if u not in actors
            ]
    return found


async def _follow_up_coordinators(
    repo: DeadlineRepository, plans: list[Plan], me: str
) -> dict[str, list[str]]:
    """The coordinating units of ``me`` of each follow-up meeting convened here, by the
    meeting's id (from the plan it follows up, as this member holds it)."""
    coordinators = {
        p.id: [c["unit_id"] for c in p.coordinators if c.get("orgnr") == me and c.get("unit_id")]
        for p in plans
        if p.status == ACTIVE
    }
    return {
        m.id: coordinators[m.follow_up_of]
        for m in await repo.follow_up_meetings()
        if m.follow_up_of in coordinators
    }


async def _publish(work: Work, due: Due) -> None:
    """The deadline event of ``due`` on this member's internal topic, keyed by its subject."""
    topic, key = topics.internal(work.member), due.subject
    await work.publish(topic, REFERRAL_DEADLINE_V1, due.event(), subject=key, key=key)


async def check(work: Work, *, today: dt.date | None = None) -> int:
    """Sends every due deadline event not sent before (near: the member's
    ``VK_REFERRAL__NEAR_WORKING_DAYS`` before); returns how many were sent."""
    day = _Today(today or to_local(work.now).date(), work.settings.referral.near_working_days)
    repo = DeadlineRepository(work.session)
    sent = await repo.sent()
    due = _discharges(day, await repo.open_discharges_received(), await repo.open_discharges_sent())
    due += _answers_owed(day, await repo.answers_due_received(day.horizon))
    plans = await repo.plans()
    unanswered = await repo.unanswered_sent(day.today)
    due += _unanswered(day, unanswered, await _follow_up_coordinators(repo, plans, work.member))
    due += _information_owed(day, await repo.information_due_sent(day.horizon))
    owing = work.settings.referral.sip_working_days
    due += _sips_owed(day, await repo.sip_owed(list(owing), TAKING_PART), owing)
    due += [d for p in plans for d in _follow_up(day, p, work.member)]
    due += [d for p in plans for d in _actions(day, p, work.member)]
    n = 0
    for d in due:
        if d.key in sent:
            continue
        repo.note(d.key)
        await _publish(work, d)
        n += 1
    await work.session.flush()
    return n


async def met(
    work: Work, *, subject: str, kind: str, unit_id: str, deadline: str, due: dt.date
) -> None:
    """A deadline of ``subject`` was met before its date changes (a komplettering answered):
    if the unit was told of it, notify cancels what it still has pending (``met``); the
    events sent of it are forgotten, so that its next date is chased again."""
    repo = DeadlineRepository(work.session)
    if await repo.told(subject, deadline):
        await _publish(work, Due(subject, kind, unit_id, deadline, due, "met"))
    await repo.forget(subject, deadline)


async def restarted(work: Work, *, subject: str, deadline: str) -> None:
    """A deadline of ``subject`` has a new date (the holder's ``answer_by`` moved on by a
    komplettering's wait): the events sent of the old one are forgotten."""
    await DeadlineRepository(work.session).forget(subject, deadline)

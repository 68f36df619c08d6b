"""The worklists of the care chain after the meeting: a unit's own actions, in every plan
this member holds whether or not the unit was invited to the meeting, and a coordinating
unit's plans, the actions overdue in them, the follow-ups due, and the invitations to the
plans' follow-up meetings (convened here) that their units have not answered yet.

Rows come from the action and coordinator index (:class:`PlanActionRepository`); what an
action is and when it is overdue, from :mod:`.actions`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.referral.access import caller_of, require_unit
from services.referral.actions import allowed_steps, overdue
from services.referral.codes import AWAITING_ACKNOWLEDGEMENT, AWAITING_ANSWER
from services.referral.meetings import participant_status
from services.referral.models import Meeting, Plan
from services.referral.plans import WITHDRAWN, can_view
from services.referral.repository import (
    MeetingRepository,
    PlanActionRepository,
    PlanRepository,
)
from shared.data.work import Work
from shared.domain.calendar import to_local


@dataclass(frozen=True)
class ActionEntry:
    """An action in a worklist, with its plan and whether (and which date) it is overdue."""

    plan: Plan
    action: dict[str, Any]
    overdue: str | None
    allowed: list[str]


def _today(work: Work) -> dt.date:
    return to_local(work.now).date()


async def _visible(work: Work, plan_ids: list[str]) -> list[Plan]:
    """The plans of ``plan_ids`` the caller sees (open copies only), in that order."""
    caller = caller_of(work)
    plans = PlanRepository(work.session)
    out = []
    for plan_id in dict.fromkeys(plan_ids):
        plan = await plans.get(plan_id)
        if plan is not None and plan.status != WITHDRAWN and can_view(caller, plan):
            out.append(plan)
    return out


def _entries(work: Work, plan: Plan, action_ids: set[str] | None) -> list[ActionEntry]:
    caller = caller_of(work)
    unit = (caller.org, caller.unit) if caller.unit else None
    today = _today(work)
    return [
        ActionEntry(plan, a, overdue(a, today), allowed_steps(a, unit, plan.coordinators))
        for a in plan.actions
        if action_ids is None or a["id"] in action_ids
    ]


async def my_actions(work: Work, *, only_open: bool, only_overdue: bool) -> list[ActionEntry]:
    """The actions the caller's unit owns, in every plan this member holds that it sees."""
    caller = caller_of(work)
    unit = require_unit(caller)
    rows = await PlanActionRepository(work.session).of_unit(caller.org, unit)
    wanted = {r.action_id for r in rows}
    out: list[ActionEntry] = []
    for plan in await _visible(work, [r.plan_id for r in rows]):
        out += _entries(work, plan, wanted)
    if only_open:
        out = [e for e in out if e.action["status"] in ("planned", "started")]
    if only_overdue:
        out = [e for e in out if e.overdue]
    return out


@dataclass(frozen=True)
class Unanswered:
    """An invited unit that has not answered its invitation to a plan's follow-up meeting:
    the meeting and the participant with its status and deadlines."""

    meeting: Meeting
    participant: dict[str, Any]


UNANSWERED = frozenset(s.value for s in AWAITING_ACKNOWLEDGEMENT | AWAITING_ANSWER)


@dataclass(frozen=True)
class Coordination:
    """A coordinating unit's worklist."""

    plans: list[Plan]
    actions_overdue: list[ActionEntry]
    follow_ups_due: list[Plan]
    invitations_unanswered: list[Unanswered]


async def _unanswered(work: Work, plans: list[Plan]) -> list[Unanswered]:
    """The unanswered invitations to the plans' coming follow-up meetings convened at this
    member (a follow-up convened at another member is followed there), earliest first."""
    meetings = MeetingRepository(work.session)
    out: list[Unanswered] = []
    for plan in plans:
        for meeting in await meetings.of_plan(plan.id):
            if meeting.follow_up_of != plan.id or meeting.status != "planned":
                continue
            out += [
                Unanswered(meeting, p)
                for p in await participant_status(work, meeting)
                if p["status"] in UNANSWERED
            ]
    return sorted(out, key=lambda u: (u.meeting.at, u.meeting.id, u.participant["task_id"]))


async def coordination(work: Work) -> Coordination:
    """The plans the caller's unit coordinates, every overdue action in them (whoever owns
    it), those whose follow-up date has come while some action is still open, and the
    invitations to their follow-up meetings not answered yet."""
    caller = caller_of(work)
    unit = require_unit(caller)
    index = PlanActionRepository(work.session)
    plans = await _visible(work, await index.coordinated_by(caller.org, unit))
    overdue_entries = [e for p in plans for e in _entries(work, p, None) if e.overdue]
    open_plans = {r.plan_id for r in await index.open_of_plans([p.id for p in plans])}
    today = _today(work)
    due = [p for p in plans if p.id in open_plans and p.follow_up_date <= today]
    return Coordination(plans, overdue_entries, due, await _unanswered(work, plans))

"""Follow-up indicators of the care chain after the meeting (:mod:`.indicators` adds them
to the member's report): aggregates only, from the plans and meetings this member holds.

- actions due to start in the period: started on time, started late, still not started
  once the date has passed; actions ended and cancelled in the period, and those of them
  that some party unit of this member was not told of (0 by construction: the notices are
  counted, not assumed);
- follow-ups due in the period of the plans this member owns, and those held on time (a
  follow-up meeting this member held about the plan by its follow-up date);
- days from a remissmöte to the first action of its plan that started (median, p90);
- escalations: the late actions this member escalated to its coordinating units (not
  started by ``start_by``, not ended by ``end_by``), by the member that owns the action.

A plan counts for the scope's units when one of them is among its viewers (a party).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.referral.actions import CANCELLED, ENDED, PLANNED, owner_of
from services.referral.models import DeadlineNotice, Meeting, Plan
from shared.domain.calendar import to_local


@dataclass(frozen=True)
class Period:
    """The days ``since``..``until``, the day the figures are taken (``today``), and the
    scope: the member and, for one unit's figures, that unit."""

    member: str
    unit_id: str | None
    since: dt.date
    until: dt.date
    today: dt.date

    def holds(self, day: dt.date | None) -> bool:
        return day is not None and self.since <= day <= self.until

    def own_viewers(self, plan: Plan) -> list[str]:
        """The plan's viewer units that are the scope's (the member's, or its one unit)."""
        units = [v["unit_id"] for v in plan.viewers if v["orgnr"] == self.member]
        return [u for u in units if u == self.unit_id] if self.unit_id else units


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _local_day(value: str | None) -> dt.date | None:
    return to_local(dt.datetime.fromisoformat(value)).date() if value else None


def _count(actions: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> int:
    return sum(1 for a in actions if test(a))


def action_figures(
    period: Period, plans: list[Plan], notices: set[tuple[str, str, str]]
) -> dict[str, int]:
    """How the actions of the scope's plans started and ended in the period."""
    due: list[dict[str, Any]] = []
    finished: list[tuple[Plan, dict[str, Any], list[str]]] = []
    for plan in plans:
        viewers = period.own_viewers(plan)
        if not viewers:
            continue
        for action in plan.actions:
            if period.holds(_day(action.get("start_by"))):
                due.append(action)
            if action["status"] in (ENDED, CANCELLED) and period.holds(
                _local_day(action.get("ended_at"))
            ):
                finished.append((plan, action, viewers))

    def on_time(a: dict[str, Any]) -> bool:
        started = _local_day(a.get("started_at"))
        return started is not None and started <= dt.date.fromisoformat(a["start_by"])

    def late(a: dict[str, Any]) -> bool:
        started = _local_day(a.get("started_at"))
        return started is not None and started > dt.date.fromisoformat(a["start_by"])

    def overdue(a: dict[str, Any]) -> bool:
        return a["status"] == PLANNED and dt.date.fromisoformat(a["start_by"]) < period.today

    return {
        "due_to_start": len(due),
        "started_on_time": _count(due, on_time),
        "started_late": _count(due, late),
        "overdue_not_started": _count(due, overdue),
        "ended": sum(1 for _, a, _ in finished if a["status"] == ENDED),
        "cancelled": sum(1 for _, a, _ in finished if a["status"] == CANCELLED),
        "ended_without_notice": sum(
            1
            for plan, a, viewers in finished
            if any((plan.id, a["id"], u) not in notices for u in viewers)
        ),
    }


def follow_up_figures(period: Period, plans: list[Plan], meetings: list[Meeting]) -> dict[str, Any]:
    """The follow-ups due in the period of the plans this member owns (in the scope), and
    how many were held by their date (a follow-up meeting held, its plan recorded)."""
    held: dict[str, list[dt.date]] = {}
    for m in meetings:
        if m.follow_up_of and m.status == "held":
            held.setdefault(m.follow_up_of, []).append(to_local(m.at).date())
    due = [
        p
        for p in plans
        if p.owner_orgnr == period.member
        and period.own_viewers(p)
        and period.holds(p.follow_up_date)
    ]
    on_time = sum(1 for p in due if any(d <= p.follow_up_date for d in held.get(p.id, [])))
    return {
        "due": len(due),
        "held_on_time": on_time,
        "share_held_on_time": round(on_time / len(due), 3) if due else None,
    }


def days_to_first_action(period: Period, plans: list[Plan], meetings: list[Meeting]) -> list[float]:
    """For every remissmöte held in the period (this member convened it), the days from it
    to the first action of its plan that started (those with none started are left out)."""
    first = {m.id: m for m in meetings if m.kind == "remissmote" and m.follow_up_of is None}
    out: list[float] = []
    for plan in plans:
        meeting = first.get(plan.id)
        if meeting is None or not period.holds(to_local(meeting.at).date()):
            continue
        if not period.own_viewers(plan):
            continue
        starts = [
            dt.datetime.fromisoformat(a["started_at"]) for a in plan.actions if a.get("started_at")
        ]
        if starts:
            out.append((min(starts) - meeting.at).total_seconds() / 86400)
    return out


def sip_plans_by_person(plans: list[Plan]) -> dict[str, list[dt.date]]:
    """The days SIP plans were first recorded (own or a party's copy), by person key: a
    recorded plan means its meeting was held, whichever member convened it."""
    out: dict[str, list[dt.date]] = {}
    for p in plans:
        if p.kind == "sip" and p.person_key:
            out.setdefault(p.person_key, []).append(to_local(p.created_at).date())
    return out


def escalation_figures(
    period: Period, plans: list[Plan], notices: list[DeadlineNotice]
) -> dict[str, Any]:
    """The escalations this member sent in the period to the scope's coordinating units:
    an overdue notice of an action's deadline to a unit that does not own the action.
    Counted by kind (``action_start``, ``action_end``) and by the member owning the
    action: where the chain stalls, whose turn it was."""
    owners: dict[str, tuple[str, str]] = {}
    for plan in plans:
        for action in plan.actions:
            owner = owner_of(action)
            if owner is not None:
                owners[action["id"]] = owner
    by_kind = {"action_start": 0, "action_end": 0}
    by_member: dict[str, dict[str, int]] = {}
    for n in notices:
        owner = owners.get(n.subject_id)
        if owner is None or owner == (period.member, n.unit_id):
            continue  # not an escalation: the owner's own reminder (or an unknown action)
        if period.unit_id is not None and n.unit_id != period.unit_id:
            continue
        if not period.holds(to_local(n.at).date()):
            continue
        by_kind[n.deadline] += 1
        counts = by_member.setdefault(owner[0], {"action_start": 0, "action_end": 0})
        counts[n.deadline] += 1
    return {
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "by_owner_member": dict(sorted(by_member.items())),
    }

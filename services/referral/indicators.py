"""Follow-up indicators (uppföljning, domain.md): aggregates per member, unit and period,
computed from this member's own records — never a personnummer or free text.

- per kind, outgoing and incoming: how many; how many acknowledged, and in time (by the
  acknowledgement deadline); hours to acknowledgement (median, p90); final statuses;
- days from an incoming vårdkedjeremiss to its first meeting (median, p90);
- discharge plannings sent, and how many had a SIP meeting for the person before the
  expected discharge date — convened by this member, and held by any party (its plan
  recorded by the date);
- the care chain after the meeting (:mod:`.care_chain_indicators`): plan actions started
  on time, late or not at all, ended and cancelled, and ended without every party's units
  having been told (0 unless the notice machinery fails: the notices are counted, not
  assumed); follow-ups held on time; days from a remissmöte to the first action started;
  late actions escalated to the plans' coordinating units, by the member owning them;
- komplettering, per kind and direction: how many rounds of questions the tasks had, and
  how many tasks had any;
- outcomes of kontaktbegäran (completed, declined, withdrawn by the person, ...), and the
  decisions of their structured results (granted, refused, referred on, person declined);
- children in the household or close to the person, per kind and direction: how many
  referrals answered yes, no and unknown (unknowns counted, not left out);
- the handover out of 24-hour care (:mod:`.handover_indicators`): HVB notifications with a
  SIP convened, in time, and held by the placement, and placements per person-year; the
  discharges recorded, unplanned, and with the recipients' actions started by the day.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.care_chain_indicators import (
    Period,
    action_figures,
    days_to_first_action,
    escalation_figures,
    follow_up_figures,
    sip_plans_by_person,
)
from services.referral.handover_indicators import discharge_figures, hvb_figures
from services.referral.handover_repository import DischargeRepository, LinkedMeetingRepository
from services.referral.indicator_repository import IndicatorRepository
from services.referral.models import Incoming, Meeting, Plan, Recipient, Referral
from shared.config import ReferralSettings
from shared.data.db import utcnow
from shared.domain.calendar import to_local
from shared.web.csvout import Cell, write_csv


class Task(NamedTuple):
    """One task as the indicators see it: its id, the referral's kind, when it started (the
    referral created, or received), its acknowledgement deadline, its status, how many
    rounds of komplettering it had and its result's decision (if completed or declined)."""

    id: str
    kind: str
    start: dt.datetime
    deadline: dt.date
    status: str
    rounds: int = 0
    decision: str | None = None


def _decision(result: dict[str, Any] | None) -> str | None:
    return str(result["decision"]) if result and result.get("decision") else None


@dataclass(frozen=True)
class _Scope:
    """Whose indicators (``member``, one unit or all) and the days ``since``..``until``."""

    member: str
    unit_id: str | None
    since: dt.date
    until: dt.date

    @property
    def lo(self) -> dt.datetime:
        """The period's first instant."""
        return _start(self.since)

    @property
    def hi(self) -> dt.datetime:
        """The instant after the period."""
        return _start(self.until + dt.timedelta(days=1))


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _spread(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"n": len(values), "median": round(statistics.median(ordered), 2), "p90": round(p90, 2)}


def _outgoing_tasks(referrals: dict[str, Referral], recipients: list[Recipient]) -> list[Task]:
    """The outgoing tasks: one per receiver of a sent referral that is not an invitation,
    started when the referral was created."""
    return [
        Task(t.id, referrals[t.referral_id].kind, referrals[t.referral_id].created_at,
             t.acknowledge_by, t.status, len(t.komplettering or []), _decision(t.result))
        for t in recipients
        if not referrals[t.referral_id].details.get("invitation")
    ]  # fmt: skip


def _incoming_tasks(incoming: list[Incoming]) -> list[Task]:
    """The incoming tasks that are not invitations, started when received."""
    return [
        Task(i.id, i.kind, i.received_at, i.acknowledge_by, i.status,
             len(i.komplettering or []), _decision(i.result))
        for i in incoming
        if not i.details.get("invitation")
    ]  # fmt: skip


def _kind_figures(tasks: list[Task], acked: dict[str, dt.datetime]) -> dict[str, Any]:
    """For the tasks of one kind: how many; how many acknowledged, and by the deadline (and
    that share); hours from start to acknowledgement (median, p90); how many per status;
    the rounds of komplettering, and how many tasks had any."""
    hours = []
    in_time = 0
    statuses: dict[str, int] = defaultdict(int)
    for task in tasks:
        statuses[task.status] += 1
        at = acked.get(task.id)
        if at is None:
            continue
        hours.append((at - task.start).total_seconds() / 3600)
        if to_local(at).date() <= task.deadline:
            in_time += 1
    return {
        "count": len(tasks),
        "acknowledged": len(hours),
        "acknowledged_in_time": in_time,
        "share_acknowledged_in_time": round(in_time / len(tasks), 3),
        "hours_to_acknowledgement": _spread(hours),
        "statuses": dict(sorted(statuses.items())),
        "komplettering_rounds": sum(t.rounds for t in tasks),
        "with_komplettering": sum(1 for t in tasks if t.rounds),
    }


def _direction(tasks: list[Task], acked: dict[str, dt.datetime]) -> dict[str, Any]:
    """One direction's (outgoing or incoming) figures per kind (:func:`_kind_figures`),
    ``acked`` telling when each task was first acknowledged."""
    groups: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        groups[task.kind].append(task)
    return {kind: _kind_figures(rows, acked) for kind, rows in sorted(groups.items())}


async def _days_to_first_meeting(
    reads: IndicatorRepository, incoming: list[Incoming]
) -> dict[str, float | int | None]:
    """Days from each incoming vårdkedjeremiss to the first meeting called on it (median,
    p90; those without a meeting yet are not counted)."""
    vkr = {i.id: i for i in incoming if i.kind == "vardkedjeremiss"}
    days: list[float] = []
    seen: set[str] = set()
    for m in await reads.meetings_from(list(vkr)):
        if m.origin_task_id and m.origin_task_id not in seen:
            seen.add(m.origin_task_id)
            days.append((m.at - vkr[m.origin_task_id].received_at).total_seconds() / 86400)
    return _spread(days)


def _sip_before_discharge(discharge: Referral, sips: list[Meeting]) -> bool:
    """Whether one of ``sips`` is the person's and held by the expected discharge date."""
    due = dt.date.fromisoformat(discharge.details["expected_discharge_date"])
    return any(m.person_key == discharge.person_key and to_local(m.at).date() <= due for m in sips)


async def _discharge_planning(
    reads: IndicatorRepository, referrals: Iterable[Referral], plans: list[Plan]
) -> dict[str, Any]:
    """Discharge plannings sent; how many had a SIP meeting this member convened for the
    person on or before the expected discharge date, and how many a SIP held by then by any
    party (its plan recorded, here or in a party's copy), with those shares."""
    discharges = [r for r in referrals if r.kind == "utskrivningsplanering" and r.details]
    sips = await reads.sips_for(list({r.person_key for r in discharges}))
    recorded = sip_plans_by_person(plans)
    with_sip = sum(1 for r in discharges if _sip_before_discharge(r, sips))

    def held(r: Referral) -> bool:
        due = dt.date.fromisoformat(r.details["expected_discharge_date"])
        return any(day <= due for day in recorded.get(r.person_key or "", []))

    held_sip = sum(1 for r in discharges if held(r))
    n = len(discharges)
    return {
        "sent": n,
        "with_sip_before_discharge": with_sip,
        "share_with_sip_before_discharge": round(with_sip / n, 3) if n else None,
        "with_sip_held_before_discharge": held_sip,
        "share_with_sip_held_before_discharge": round(held_sip / n, 3) if n else None,
    }


def _kontaktbegaran_outcomes(outgoing: list[Task]) -> dict[str, int]:
    """How the kontaktbegäran sent ended: how many per status."""
    outcomes: dict[str, int] = defaultdict(int)
    for task in outgoing:
        if task.kind == "kontaktbegaran":
            outcomes[task.status] += 1
    return dict(sorted(outcomes.items()))


def _kontaktbegaran_decisions(outgoing: list[Task]) -> dict[str, int]:
    """What the receivers decided on the kontaktbegäran sent, as their structured results
    say (completed or declined): how many per decision."""
    decisions: dict[str, int] = defaultdict(int)
    for task in outgoing:
        if task.kind == "kontaktbegaran" and task.decision:
            decisions[task.decision] += 1
    return dict(sorted(decisions.items()))


async def compute(
    *,
    session: AsyncSession,
    member: str,
    unit_id: str | None,
    since: dt.date,
    until: dt.date,
    today: dt.date | None = None,
    sip_working_days: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The indicators of ``member`` (one unit, or all) for the days ``since``..``until``,
    taken on ``today`` (Swedish time; default: now); ``sip_working_days``: the member's
    (``VK_REFERRAL__SIP_WORKING_DAYS``; default: the kinds registry's)."""
    scope = _Scope(member, unit_id, since, until)
    period = Period(member, unit_id, since, until, today or to_local(utcnow()).date())
    reads = IndicatorRepository(session, scope.lo, scope.hi, unit_id)
    referrals = {r.id: r for r in await reads.referrals_sent()}
    outgoing = _outgoing_tasks(referrals, await reads.recipients_of(list(referrals)))
    out_acked = await reads.acknowledged_at([t.id for t in outgoing], "sender")
    received = await reads.incoming_received()
    incoming = _incoming_tasks(received)
    in_acked = await reads.acknowledged_at([t.id for t in incoming], "receiver")
    plans, meetings = await reads.plans(), await reads.meetings()
    sip_days = ReferralSettings().sip_working_days if sip_working_days is None else sip_working_days
    linked = await LinkedMeetingRepository(session).for_referrals(referrals)
    discharges = await DischargeRepository(session).recorded_between(since, until, unit_id)
    return {
        "member": member,
        "unit_id": unit_id,
        "period": {"from": since.isoformat(), "to": until.isoformat()},
        "outgoing": _direction(outgoing, out_acked),
        "incoming": _direction(incoming, in_acked),
        "days_to_first_meeting": await _days_to_first_meeting(reads, received),
        "discharge_planning": await _discharge_planning(reads, referrals.values(), plans),
        "plan_actions": action_figures(period, plans, await reads.plan_notices()),
        "follow_ups": follow_up_figures(period, plans, meetings),
        "escalations": escalation_figures(period, plans, await reads.action_overdue_notices()),
        "days_from_remissmote_to_first_action": _spread(
            days_to_first_action(period, plans, meetings)
        ),
        "kontaktbegaran_outcomes": _kontaktbegaran_outcomes(outgoing),
        "kontaktbegaran_decisions": _kontaktbegaran_decisions(outgoing),
        "children": {
            "outgoing": _children(referrals.values()),
            "incoming": _children(received),
        },
        "hvb": hvb_figures(referrals.values(), linked, sip_days, since, until),
        "discharges": discharge_figures(discharges),
    }


def _children(rows: Iterable[Referral | Incoming]) -> dict[str, dict[str, int]]:
    """How each kind's referrals answered whether there are children in the household or
    close to the person (yes, no, unknown), per referral sent or task received."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = out.setdefault(row.kind, {"yes": 0, "no": 0, "unknown": 0})
        counts[row.children_in_household] = counts.get(row.children_in_household, 0) + 1
    return dict(sorted(out.items()))


def _direction_rows(direction: str, kind: str, v: dict[str, Any]) -> list[list[Cell]]:
    """The CSV rows of one direction's figures for one kind."""
    rows: list[list[Cell]] = [
        [name, direction, kind, v[name]]
        for name in ("count", "acknowledged", "acknowledged_in_time", "share_acknowledged_in_time")
    ]
    for stat in ("median", "p90"):
        rows.append(
            [f"hours_to_acknowledgement_{stat}", direction, kind,
             v["hours_to_acknowledgement"][stat]]
        )  # fmt: skip
    for status, n in v["statuses"].items():
        rows.append([f"status_{status}", direction, kind, n])
    for name in ("komplettering_rounds", "with_komplettering"):
        rows.append([name, direction, kind, v[name]])
    return rows


def as_csv(data: dict[str, Any]) -> str:
    """The indicators as rows: indicator, direction, kind, value (shared.web.csvout's writer)."""
    rows: list[list[Cell]] = []
    w = rows.append
    for direction in ("outgoing", "incoming"):
        for kind, v in data[direction].items():
            rows.extend(_direction_rows(direction, kind, v))
    for stat in ("n", "median", "p90"):
        w([f"days_to_first_meeting_{stat}", "incoming", "vardkedjeremiss",
                    data["days_to_first_meeting"][stat]])  # fmt: skip
    dp = data["discharge_planning"]
    for key, value in dp.items():
        w([f"discharge_{key}", "outgoing", "utskrivningsplanering", value])
    for key, value in data["plan_actions"].items():
        w([f"plan_actions_{key}", "", "", value])
    for key, value in data["follow_ups"].items():
        w([f"follow_ups_{key}", "", "", value])
    esc = data["escalations"]
    w(["escalations_total", "", "", esc["total"]])
    for deadline, n in esc["by_kind"].items():
        w([f"escalations_{deadline}", "", "", n])
    for orgnr, counts in esc["by_owner_member"].items():
        for deadline, n in counts.items():
            w([f"escalations_{deadline}_owner_{orgnr}", "", "", n])
    for stat in ("n", "median", "p90"):
        w([f"days_from_remissmote_to_first_action_{stat}", "", "vardkedjeremiss",
           data["days_from_remissmote_to_first_action"][stat]])  # fmt: skip
    for direction in ("outgoing", "incoming"):
        for kind, answers in data["children"][direction].items():
            for answer, n in answers.items():
                w([f"children_{answer}", direction, kind, n])
    for status, n in data["kontaktbegaran_outcomes"].items():
        w([f"kontaktbegaran_outcome_{status}", "outgoing", "kontaktbegaran", n])
    for decision, n in data["kontaktbegaran_decisions"].items():
        w([f"kontaktbegaran_decision_{decision}", "outgoing", "kontaktbegaran", n])
    for key, value in data["hvb"].items():
        w([f"hvb_{key}", "outgoing", "hvb_underrattelse", value])
    for key, value in data["discharges"].items():
        w([f"discharges_{key}", "outgoing", "utskrivningsplanering", value])
    return write_csv(["indicator", "direction", "kind", "value"], rows)

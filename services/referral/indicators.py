"""Follow-up indicators (uppföljning, domain.md): aggregates per member, unit and period,
computed from this member's own records — never a personnummer or free text.

- per kind, outgoing and incoming: how many; how many acknowledged, and in time (by the
  acknowledgement deadline); hours to acknowledgement (median, p90); final statuses;
- days from an incoming vårdkedjeremiss to its first meeting (median, p90);
- discharge plannings sent, and how many had a SIP meeting for the person before the
  expected discharge date;
- plan actions ended, and ended without every party's units having been told (0 unless
  the notice machinery fails: the notices are counted, not assumed);
- outcomes of kontaktbegäran (completed, declined, withdrawn by the person, ...).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.models import (
    Incoming,
    Meeting,
    Plan,
    PlanNotice,
    Recipient,
    Referral,
    Transition,
)
from shared.domain.calendar import to_local
from shared.web.csvout import Cell, write_csv


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _spread(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"n": len(values), "median": round(statistics.median(ordered), 2), "p90": round(p90, 2)}


async def _acknowledged_at(
    session: AsyncSession, task_ids: list[str], side: str
) -> dict[str, dt.datetime]:
    """When each task was first acknowledged (on ``side``'s history)."""
    out: dict[str, dt.datetime] = {}
    for i in range(0, len(task_ids), 500):
        stmt = (
            select(Transition.task_id, Transition.at)
            .where(
                Transition.task_id.in_(task_ids[i : i + 500]),
                Transition.side == side,
                Transition.to_status == "acknowledged",
            )
            .order_by(Transition.at)
        )
        for task_id, at in await session.execute(stmt):
            out.setdefault(task_id, at)
    return out


def _direction(
    tasks: list[tuple[str, str, dt.datetime, dt.date, str]],
    acked: dict[str, dt.datetime],
) -> dict[str, Any]:
    """Per kind: counts, in-time share, hours to acknowledgement, final statuses.
    ``tasks``: (task id, kind, start time, deadline, status)."""
    per_kind: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[tuple[str, dt.datetime, dt.date, str]]] = defaultdict(list)
    for task_id, kind, start, deadline, status in tasks:
        groups[kind].append((task_id, start, deadline, status))
    for kind, rows in sorted(groups.items()):
        hours = []
        in_time = 0
        statuses: dict[str, int] = defaultdict(int)
        for task_id, start, deadline, status in rows:
            statuses[status] += 1
            at = acked.get(task_id)
            if at is None:
                continue
            hours.append((at - start).total_seconds() / 3600)
            if to_local(at).date() <= deadline:
                in_time += 1
        per_kind[kind] = {
            "count": len(rows),
            "acknowledged": len(hours),
            "acknowledged_in_time": in_time,
            "share_acknowledged_in_time": round(in_time / len(rows), 3),
            "hours_to_acknowledgement": _spread(hours),
            "statuses": dict(sorted(statuses.items())),
        }
    return per_kind


async def compute(
    *,
    session: AsyncSession,
    member: str,
    unit_id: str | None,
    since: dt.date,
    until: dt.date,
) -> dict[str, Any]:
    """The indicators of ``member`` (one unit, or all) for the days ``since``..``until``."""
    lo, hi = _start(since), _start(until + dt.timedelta(days=1))

    sent_q = select(Referral).where(Referral.created_at >= lo, Referral.created_at < hi)
    if unit_id:
        sent_q = sent_q.where(Referral.sender_unit_id == unit_id)
    referrals = {r.id: r for r in await session.scalars(sent_q)}
    recipients = (
        list(
            await session.scalars(
                select(Recipient).where(Recipient.referral_id.in_(list(referrals)))
            )
        )
        if referrals
        else []
    )
    outgoing_tasks = [
        (r.id, referrals[r.referral_id].kind, referrals[r.referral_id].created_at,
         r.acknowledge_by, r.status)
        for r in recipients
        if not referrals[r.referral_id].details.get("invitation")
    ]  # fmt: skip
    out_acked = await _acknowledged_at(session, [t[0] for t in outgoing_tasks], "sender")

    in_q = select(Incoming).where(Incoming.received_at >= lo, Incoming.received_at < hi)
    if unit_id:
        in_q = in_q.where(Incoming.unit_id == unit_id)
    incoming = list(await session.scalars(in_q))
    incoming_tasks = [
        (i.id, i.kind, i.received_at, i.acknowledge_by, i.status)
        for i in incoming
        if not i.details.get("invitation")
    ]
    in_acked = await _acknowledged_at(session, [t[0] for t in incoming_tasks], "receiver")

    # Days from an incoming vårdkedjeremiss to its first meeting.
    first_meeting: list[float] = []
    vkr = {i.id: i for i in incoming if i.kind == "vardkedjeremiss"}
    if vkr:
        meetings = await session.scalars(
            select(Meeting).where(Meeting.origin_task_id.in_(list(vkr))).order_by(Meeting.at)
        )
        seen: set[str] = set()
        for m in meetings:
            if m.origin_task_id and m.origin_task_id not in seen:
                seen.add(m.origin_task_id)
                received = vkr[m.origin_task_id].received_at
                first_meeting.append((m.at - received).total_seconds() / 86400)

    # Discharge plannings sent, and a SIP for the person before the discharge date.
    discharges = [r for r in referrals.values() if r.kind == "utskrivningsplanering" and r.details]
    with_sip = 0
    if discharges:
        keys = list({r.person_key for r in discharges})
        sips = list(
            await session.scalars(
                select(Meeting).where(Meeting.kind == "sip", Meeting.person_key.in_(keys))
            )
        )
        for r in discharges:
            due = dt.date.fromisoformat(r.details["expected_discharge_date"])
            if any(m.person_key == r.person_key and to_local(m.at).date() <= due for m in sips):
                with_sip += 1

    # Plan actions ended, and ended without this member's viewer units being told.
    ended = 0
    unnoticed = 0
    notices = {
        (n.plan_id, n.action_id, n.unit_id) for n in await session.scalars(select(PlanNotice))
    }
    for plan in await session.scalars(select(Plan)):
        own_viewers = [v["unit_id"] for v in plan.viewers if v["orgnr"] == member]
        if unit_id:
            own_viewers = [u for u in own_viewers if u == unit_id]
        for action in plan.actions:
            if action.get("status") != "ended" or not action.get("ended_at"):
                continue
            ended_at = dt.datetime.fromisoformat(action["ended_at"])
            if not lo <= ended_at < hi or not own_viewers:
                continue
            ended += 1
            if any((plan.id, action["id"], u) not in notices for u in own_viewers):
                unnoticed += 1

    kontaktbegaran: dict[str, int] = defaultdict(int)
    for _task_id, kind, _start_at, _deadline, status in outgoing_tasks:
        if kind == "kontaktbegaran":
            kontaktbegaran[status] += 1

    return {
        "member": member,
        "unit_id": unit_id,
        "period": {"from": since.isoformat(), "to": until.isoformat()},
        "outgoing": _direction(outgoing_tasks, out_acked),
        "incoming": _direction(incoming_tasks, in_acked),
        "days_to_first_meeting": _spread(first_meeting),
        "discharge_planning": {
            "sent": len(discharges),
            "with_sip_before_discharge": with_sip,
            "share_with_sip_before_discharge": round(with_sip / len(discharges), 3)
            if discharges
            else None,
        },
        "plan_actions": {"ended": ended, "ended_without_notice": unnoticed},
        "kontaktbegaran_outcomes": dict(sorted(kontaktbegaran.items())),
    }


def as_csv(data: dict[str, Any]) -> str:
    """The indicators as rows: indicator, direction, kind, value (shared.web.csvout's writer)."""
    rows: list[list[Cell]] = []
    w = rows.append
    for direction in ("outgoing", "incoming"):
        for kind, v in data[direction].items():
            w(["count", direction, kind, v["count"]])
            w(["acknowledged", direction, kind, v["acknowledged"]])
            w(["acknowledged_in_time", direction, kind, v["acknowledged_in_time"]])
            w(["share_acknowledged_in_time", direction, kind, v["share_acknowledged_in_time"]])
            for stat in ("median", "p90"):
                w(
                    [f"hours_to_acknowledgement_{stat}", direction, kind,
                     v["hours_to_acknowledgement"][stat]]
                )  # fmt: skip
            for status, n in v["statuses"].items():
                w([f"status_{status}", direction, kind, n])
    for stat in ("n", "median", "p90"):
        w([f"days_to_first_meeting_{stat}", "incoming", "vardkedjeremiss",
                    data["days_to_first_meeting"][stat]])  # fmt: skip
    dp = data["discharge_planning"]
    for key in ("sent", "with_sip_before_discharge", "share_with_sip_before_discharge"):
        w([f"discharge_{key}", "outgoing", "utskrivningsplanering", dp[key]])
    for key, value in data["plan_actions"].items():
        w([f"plan_actions_{key}", "", "", value])
    for status, n in data["kontaktbegaran_outcomes"].items():
        w([f"kontaktbegaran_outcome_{status}", "outgoing", "kontaktbegaran", n])
    return write_csv(["indicator", "direction", "kind", "value"], rows)

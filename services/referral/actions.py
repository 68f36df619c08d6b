"""A plan's actions (insatser): what each one is, who carries it out and where it stands.

An action is ``planned``, then ``started``, then ``ended`` (with an outcome) — or
``cancelled`` (with a reason) before it ends. Its owner is a unit of any member, which
takes its steps; or an actor outside the federation named in words (Försäkringskassan, the
person, a relative), whose steps a coordinating unit records. The rules are here and pure;
:mod:`services.referral.plans` applies them to a plan and tells every party.

An action is a dict in the plan's JSON (it travels in ``plan.shared``):
``{id, position, intervention, description, orgnr, unit_id, outside_actor, start_by,
end_by, status, started_at, ended_at, outcome, note, reason}``; dates are ISO strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.referral.schemas import ActionIn, ActionStep, ActionStepIn, PlanIn
from shared.data.db import new_id

PLANNED, STARTED, ENDED, CANCELLED = "planned", "started", "ended", "cancelled"
FINAL = frozenset({ENDED, CANCELLED})

STEPS: dict[str, tuple[str, ...]] = {
    PLANNED: (ActionStep.STARTED.value, ActionStep.CANCELLED.value),
    STARTED: (ActionStep.ENDED.value, ActionStep.CANCELLED.value),
    ENDED: (),
    CANCELLED: (),
}
"""The steps allowed from each status (the table is the whole lifecycle)."""


def owner_of(action: dict[str, Any]) -> tuple[str, str] | None:
    """The owning unit ``(orgnr, unit_id)``, or None for an actor outside the federation."""
    if action.get("unit_id") and action.get("orgnr"):
        return (action["orgnr"], action["unit_id"])
    return None


def may_step(
    action: dict[str, Any], unit: tuple[str, str], coordinators: list[dict[str, str]]
) -> bool:
    """Whether ``unit`` takes this action's steps: its owner; for an outside actor, a
    coordinating unit of the plan."""
    owner = owner_of(action)
    if owner is not None:
        return owner == unit
    return any((c["orgnr"], c["unit_id"]) == unit for c in coordinators)


def allowed_steps(
    action: dict[str, Any], unit: tuple[str, str] | None, coordinators: list[dict[str, str]]
) -> list[str]:
    """The steps ``unit`` may take on the action now (none for anyone else)."""
    if unit is None or not may_step(action, unit, coordinators):
        return []
    return list(STEPS[action["status"]])


def stepped(action: dict[str, Any], step: ActionStepIn, at: dt.datetime) -> dict[str, Any]:
    """The action after ``step`` (the caller checked that it is allowed)."""
    out = dict(action)
    if step.to is ActionStep.STARTED:
        out.update(status=STARTED, started_at=at.isoformat())
    elif step.to is ActionStep.ENDED:
        out.update(status=ENDED, ended_at=at.isoformat(), outcome=step.outcome, note=step.note)
    else:
        out.update(status=CANCELLED, ended_at=at.isoformat(), reason=step.reason)
    return out


def _key(
    position: int, intervention: str, orgnr: str | None, unit_id: str | None, outside: str | None
) -> tuple[Any, ...]:
    return (position, intervention, orgnr, unit_id, outside)


def _owner_fields(a: ActionIn) -> tuple[str | None, str | None, str | None]:
    if a.owner is not None:
        return a.owner.orgnr, a.owner.unit_id, None
    return None, None, a.outside_actor


def recorded(previous: list[dict[str, Any]], data: PlanIn) -> list[dict[str, Any]]:
    """The plan's actions as (re)recorded: an action keeps its id and where it stands when
    its position, intervention and owner are unchanged; the rest are new and planned."""
    kept_by = {
        _key(
            a["position"],
            a["intervention"],
            a.get("orgnr"),
            a.get("unit_id"),
            a.get("outside_actor"),
        ): a
        for a in previous
    }
    out = []
    for position, a in enumerate(data.actions, start=1):
        orgnr, unit_id, outside = _owner_fields(a)
        kept = kept_by.get(_key(position, a.intervention.value, orgnr, unit_id, outside), {})
        out.append(
            {
                "id": kept.get("id") or new_id(),
                "position": position,
                "intervention": a.intervention.value,
                "description": a.description,
                "orgnr": orgnr,
                "unit_id": unit_id,
                "outside_actor": outside,
                "start_by": a.start_by.isoformat() if a.start_by else None,
                "end_by": a.end_by.isoformat() if a.end_by else None,
                "status": kept.get("status", PLANNED),
                "started_at": kept.get("started_at"),
                "ended_at": kept.get("ended_at"),
                "outcome": kept.get("outcome"),
                "note": kept.get("note"),
                "reason": kept.get("reason"),
            }
        )
    return out


def newly_assigned(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The actions of ``after`` whose owning unit did not own them in ``before``."""
    had = {(a["id"], owner_of(a)) for a in before}
    return [a for a in after if owner_of(a) is not None and (a["id"], owner_of(a)) not in had]


def changed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The actions of ``after`` whose status moved since ``before`` (each step once)."""
    was = {a["id"]: a.get("status") for a in before}
    return [a for a in after if a["status"] != PLANNED and was.get(a["id"]) != a["status"]]


def overdue(action: dict[str, Any], today: dt.date) -> str | None:
    """``start`` when the action should have started by now, ``end`` when it should have
    ended; None otherwise (a final action is never overdue)."""
    status = action["status"]
    if status in FINAL:
        return None
    start_by, end_by = action.get("start_by"), action.get("end_by")
    if status == PLANNED and start_by and dt.date.fromisoformat(start_by) < today:
        return "start"
    if end_by and dt.date.fromisoformat(end_by) < today:
        return "end"
    return None

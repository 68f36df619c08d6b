"""The person's own plan (Min plan) of a plan this member holds: the plan in words, each
action's and coordinator's function with its name, its huvudman and how to reach it (the
directory's contact paths and opening hours, from this service's replica), printed by
:mod:`.min_plan` as HTML or PDF. Whoever sees the plan may print it for the person."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.referral.min_plan import (
    Action,
    ActionStatus,
    Agreement,
    Attendance,
    Contact,
    Coordinator,
    MinPlanView,
    Who,
    title_for,
)
from services.referral.models import KnownUnit, Plan
from services.referral.repository import (
    KnownMemberRepository,
    KnownUnitRepository,
    MeetingRepository,
)
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.domain.contact import PostalAddress
from shared.domain.hours import OpeningHours, describe_sv

UNKNOWN_UNIT = "En enhet som inte längre finns i katalogen"


def _first(paths: list[dict[str, Any]], channel: str, field: str) -> Any:
    return next((p[field] for p in paths if p.get("channel") == channel and p.get(field)), None)


def _contact(unit: KnownUnit | None) -> Contact | None:
    """How the person reaches the function: its first phone, functional e-mail and postal
    address, and its opening hours (a secure-mail address is for organisations only)."""
    if unit is None:
        return None
    paths = unit.contact_paths or []
    postal = _first(paths, "postal_address", "postal")
    hours: tuple[str, ...] = ()
    if unit.opening_hours:
        hours = tuple(describe_sv(OpeningHours.model_validate(unit.opening_hours)))
    contact = Contact(
        phone=_first(paths, "phone", "phone"),
        email=_first(paths, "functional_email", "email"),
        postal=PostalAddress.model_validate(postal) if postal else None,
        opening_hours=hours,
    )
    return contact if contact.rows() else None


class _Names:
    """The units and members a plan names, read at once."""

    def __init__(self, units: dict[str, KnownUnit], members: dict[str, str]) -> None:
        self.units, self.members = units, members

    def who(self, orgnr: str | None, unit_id: str | None, outside: str | None = None) -> Who:
        if unit_id is None:
            return Who(outside or UNKNOWN_UNIT)
        unit = self.units.get(unit_id)
        return Who(unit.name if unit else UNKNOWN_UNIT, self.members.get(orgnr or ""))

    def coordinator(self, ref: dict[str, str]) -> Coordinator:
        who = self.who(ref["orgnr"], ref["unit_id"])
        return Coordinator(who.name, who.huvudman or "", _contact(self.units.get(ref["unit_id"])))


async def _names(work: Work, plan: Plan) -> _Names:
    attended = (plan.attendance or {}).get("units", [])
    unit_ids = {
        *(a["unit_id"] for a in plan.actions if a.get("unit_id")),
        *(c["unit_id"] for c in plan.coordinators),
        *(u["unit_id"] for u in attended),
    }
    units = {u.unit_id: u for u in await KnownUnitRepository(work.session).load_many(unit_ids)}
    members = await KnownMemberRepository(work.session).names()
    members.setdefault(work.member, work.settings.member.name)
    return _Names(units, members)


def _agreement(agrees: bool | None) -> Agreement:
    if agrees is None:
        return Agreement.NOT_RECORDED
    return Agreement.AGREES if agrees else Agreement.DISAGREES


async def view_of(work: Work, plan: Plan) -> MinPlanView:
    """The person's plan in words, as this member holds it."""
    names = await _names(work, plan)
    meeting = await MeetingRepository(work.session).get(plan.id)  # the owner's first meeting
    attendance = plan.attendance or {}
    return MinPlanView(
        title=title_for(plan.kind),
        made_on=to_local(meeting.at if meeting else plan.created_at).date(),
        meeting_place=meeting.place if meeting else None,
        own_goals=tuple(plan.own_goals),
        goals=tuple(plan.goals),
        actions=tuple(
            Action(
                what=a["intervention"],
                who=names.who(a.get("orgnr"), a.get("unit_id"), a.get("outside_actor")),
                status=ActionStatus(a["status"]),
                description=a.get("description") or None,
                start_by=_date(a.get("start_by")),
                end_by=_date(a.get("end_by")),
                contact=_contact(names.units.get(a.get("unit_id") or "")),
            )
            for a in plan.actions
        ),
        coordinators=tuple(names.coordinator(c) for c in plan.coordinators),
        next_follow_up=plan.follow_up_date,
        attendance=Attendance(
            units=tuple(names.who(u["orgnr"], u["unit_id"]) for u in attendance.get("units", [])),
            person=bool(attendance.get("person", False)),
            relatives=int(attendance.get("relatives", 0)),
        )
        if plan.attendance
        else None,
        agreement=_agreement(plan.person_agrees),
        personnummer=plan.personnummer,
        protected_identity=plan.protected_identity,
        changed_on=to_local(plan.updated_at).date() if plan.plan_version > 1 else None,
    )


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None

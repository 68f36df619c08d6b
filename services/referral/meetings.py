"""Meetings: the joint referral meeting (remissmöte) of a vårdkedjeremiss, the SIP
meeting, and the professional meeting without the person (samordningsmöte, for the
coordination of the care chain) that a coordinating unit convenes about its plan.

A unit convenes a meeting; every invited unit gets an *invitation task* that travels and
is answered like a referral (acknowledged → accepted, or declined with a reason and
perhaps another proposed time), so invitations get the same consent checks, inboxes,
deadlines and closed loop. For a remissmöte the drug-free rule is enforced: when the person
is not drug-free and a planned treatment requires it, a unit offering drug-free
interventions (abstinence treatment or tapering) must be invited. A meeting ends in a plan
(:mod:`services.referral.plans`); a follow-up — by the unit that held the earlier meeting,
or by a coordinating unit of the plan, at any member holding it — revises it. A SIP may
answer an HVB notification or discharge planning this member sent (``for_referral_id``:
:mod:`services.referral.handover`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.referral import handover
from services.referral.access import caller_of, require_unit
from services.referral.codes import Overdue
from services.referral.details import UnitRef
from services.referral.models import Incoming, KnownUnit, Meeting, Plan
from services.referral.repository import (
    IncomingRepository,
    KnownUnitRepository,
    MeetingRepository,
    PlanRepository,
    RecipientRepository,
)
from services.referral.schemas import MeetingCreate, ReferralCreate
from services.referral.sending import send_referral
from services.referral.siblings import Clients
from services.referral.units import unit_problem
from services.referral.worklists import is_overdue, today
from shared.data.db import new_id
from shared.data.work import Work
from shared.domain.codes import Intervention
from shared.domain.kinds import ReferralKind, spec
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import member_secret, person_key
from shared.web.errors import FieldProblem, InvalidInput, NotFound

# Interventions that make a person drug-free (the "unit for drug-free interventions").
DRUG_FREE_INTERVENTIONS = frozenset(
    {Intervention.ABSTINENSBEHANDLING.value, Intervention.NEDTRAPPNING.value}
)
OPEN_ORIGIN = frozenset({"acknowledged", "accepted", "in_progress"})
INVITATION_KINDS = {
    "remissmote": ReferralKind.VARDKEDJEREMISS,
    "sip": ReferralKind.SIP_KALLELSE,
    "samordningsmote": ReferralKind.SAMORDNINGSMOTE,
}
"""The kind of referral each kind of meeting invites with (its consent purpose)."""
UNKNOWN_AT_ORIGIN = "Okänt när vårdkedjeremissen skickades."
"""Why children are unknown on a remissmöte's invitation when its vårdkedjeremiss gave no
reason (one sent before the reason was asked)."""
MAX_PARTICIPANTS = 20
"""Units one meeting invites at most (named and suggested together)."""
MAX_SUGGESTED = 20
"""Suggested units of a vårdkedjeremiss read at most (its block allows as many)."""


MeetingNotFound = NotFound.kind("meeting-not-found", "No such meeting convened by your unit")


@dataclass(frozen=True)
class _Person:
    """Whom the meeting is about, and what the invitations say of the person."""

    personnummer: str
    protected: bool
    needs: list[Any]
    summary: str
    drug_free: str
    children: str
    children_unknown_reason: str


def _offers_drug_free(unit: KnownUnit | None) -> bool:
    return unit is not None and bool(DRUG_FREE_INTERVENTIONS & set(unit.interventions))


async def _origin(work: Work, unit: str, data: MeetingCreate) -> Incoming | None:
    """A remissmöte's vårdkedjeremiss (open in the convener's inbox)."""
    if data.kind != "remissmote":
        return None
    assert data.origin_task_id is not None
    origin = await IncomingRepository(work.session).get(data.origin_task_id)
    if (
        origin is None
        or origin.unit_id != unit
        or origin.kind != "vardkedjeremiss"
        or origin.status not in OPEN_ORIGIN
        or origin.personnummer is None
    ):
        raise InvalidInput.field(
            "origin_task_id",
            "not_an_open_vardkedjeremiss",
            "a remissmöte is convened from a vårdkedjeremiss your unit has acknowledged",
        )
    return origin


def suggested(origin: Incoming) -> list[UnitRef]:
    """The units the sender of a vårdkedjeremiss suggests for its remissmöte (its details'
    ``participants``, as the sending member wrote them: what is not a unit is left out)."""
    if origin.kind != "vardkedjeremiss" or origin.details.get("invitation"):
        return []
    listed = origin.details.get("participants")
    refs: list[UnitRef] = []
    for item in listed[:MAX_SUGGESTED] if isinstance(listed, list) else []:
        try:
            ref = UnitRef.model_validate(item)
        except ValidationError:
            continue
        if all((r.orgnr, r.unit_id) != (ref.orgnr, ref.unit_id) for r in refs):
            refs.append(ref)
    return refs


async def suggestions(work: Work, rows: Sequence[Incoming]) -> dict[str, list[dict[str, Any]]]:
    """For each vårdkedjeremiss among ``rows`` (by task id): the units its sender suggests,
    each with its name in this member's copy of the directory (None when unknown there) and
    whether it can be invited. One query for all of them."""
    wanted = {
        row.id: suggested(row)
        for row in rows
        if row.kind == "vardkedjeremiss" and not row.details.get("invitation")
    }
    repo = KnownUnitRepository(work.session)
    units = {
        u.unit_id: u for u in await repo.load_many(r.unit_id for v in wanted.values() for r in v)
    }
    return {
        task_id: [_suggestion(units.get(ref.unit_id), ref) for ref in refs]
        for task_id, refs in wanted.items()
    }


def _suggestion(unit: KnownUnit | None, ref: UnitRef) -> dict[str, Any]:
    rule = unit_problem(unit, ref, ReferralKind.VARDKEDJEREMISS, invitation=True)
    known = unit is not None and unit.owner_orgnr == ref.orgnr
    return {
        "orgnr": ref.orgnr,
        "unit_id": ref.unit_id,
        "name": unit.name if unit is not None and known else None,
        "invitable": rule is None,
        "problem": rule,
    }


async def _with_suggested(
    work: Work, data: MeetingCreate, origin: Incoming | None
) -> MeetingCreate:
    """The participants to invite: those named, and for a remissmöte the units the
    vårdkedjeremiss's sender suggests when asked (``invite_suggested``; by default when no
    participant is named). A suggested unit that cannot be invited here is refused by name
    (422 on ``invite_suggested``: name the participants instead)."""
    named = list(data.participants or [])
    invite = data.invite_suggested if data.invite_suggested is not None else not named
    if origin is None or not invite:
        return data
    problems = []
    participants = list(named)
    for s in (await suggestions(work, [origin]))[origin.id]:
        if any((p.orgnr, p.unit_id) == (s["orgnr"], s["unit_id"]) for p in participants):
            continue
        if s["problem"] is not None:
            problems.append(
                FieldProblem(
                    field="invite_suggested",
                    rule=s["problem"],
                    message=f"the suggested unit {s['orgnr']}/{s['unit_id']} cannot be invited "
                    f"({s['problem'].replace('_', ' ')}): name the participants instead",
                )
            )
        participants.append(UnitRef(orgnr=s["orgnr"], unit_id=s["unit_id"]))
    if problems:
        raise InvalidInput(f"{len(problems)} suggested unit(s) cannot be invited", errors=problems)
    if not participants:
        raise InvalidInput.field(
            "participants",
            "participants_required",
            "the vårdkedjeremiss suggests no units: name the participants",
        )
    if len(participants) > MAX_PARTICIPANTS:
        raise InvalidInput.field(
            "participants", "too_many", f"at most {MAX_PARTICIPANTS} participants"
        )
    return data.model_copy(update={"participants": participants})


async def _drug_free(work: Work, data: MeetingCreate, origin: Incoming | None) -> None:
    """The drug-free rule of a remissmöte, checked against the units to invite."""
    if origin is None:
        return
    requires = data.treatment_requires_drug_free or bool(
        origin.details.get("treatment_requires_drug_free")
    )
    if origin.drug_free != "yes" and requires:
        repo = KnownUnitRepository(work.session)
        invited = [await repo.get(p.unit_id) for p in data.participants or []]
        if not any(_offers_drug_free(u) for u in invited):
            raise InvalidInput.field(
                "participants",
                "drug_free_unit_required",
                "the person is not drug-free and a planned treatment requires it: "
                "invite a unit offering abstinence treatment or tapering",
            )


@dataclass(frozen=True)
class _FollowUp:
    """What a follow-up meeting follows: the plan's id, and the person (from the plan)."""

    plan_id: str
    personnummer: str
    protected: bool


def _coordinates(plan: Plan, orgnr: str, unit: str) -> bool:
    return any(c["orgnr"] == orgnr and c["unit_id"] == unit for c in plan.coordinators)


async def _follow_up(work: Work, unit: str, data: MeetingCreate) -> _FollowUp | None:
    """The plan a follow-up meeting (or a samordningsmöte) is about: of a held meeting the
    convener's unit convened, or a plan this member holds (its own or a copy) that the
    unit coordinates. A SIP or remissmöte follows up a plan of its own kind."""
    if not data.follow_up_of:
        return None
    previous = await MeetingRepository(work.session).get(data.follow_up_of)
    plan_id = (previous.follow_up_of or previous.id) if previous is not None else data.follow_up_of
    plan = await PlanRepository(work.session).get(plan_id)
    held_here = (
        previous is not None
        and previous.convener_unit_id == unit
        and previous.status == "held"
        and (data.kind == "samordningsmote" or previous.kind == data.kind)
    )
    coordinated = (
        plan is not None
        and plan.status == "active"
        and plan.personnummer is not None
        and _coordinates(plan, caller_of(work).org, unit)
        and (data.kind == "samordningsmote" or plan.kind == data.kind)
    )
    if plan is None or not (held_here or coordinated) or plan.personnummer is None:
        raise InvalidInput.field(
            "follow_up_of",
            "not_a_held_meeting",
            "a follow-up is of a meeting your unit convened and held (its plan recorded), "
            "or of a plan your unit coordinates",
        )
    if data.person is not None and (
        normalise_personnummer(data.person.personnummer) != plan.personnummer
    ):
        raise InvalidInput.field(
            "person", "not_the_plans_person", "a follow-up is about the plan's person"
        )
    return _FollowUp(plan.id, plan.personnummer, plan.protected_identity)


def _origin_reason(origin: Incoming) -> str:
    """Why children are unknown, as the vårdkedjeremiss said (or that it did not say)."""
    if origin.children_in_household != "unknown":
        return ""
    return origin.children_unknown_reason or UNKNOWN_AT_ORIGIN


def _person(data: MeetingCreate, origin: Incoming | None, follow: _FollowUp | None) -> _Person:
    """Whom the meeting is about: the vårdkedjeremiss's person (a remissmöte), the plan's
    (a follow-up without a person named), or the person named; children as the convener
    answers, or as the vårdkedjeremiss said."""
    children = data.children_in_household
    reason = data.children_unknown_reason or ""
    if origin is not None:
        assert origin.personnummer is not None  # an open task keeps its person
        return _Person(
            origin.personnummer,
            origin.protected_identity,
            data.needs or [Intervention(n) for n in origin.needs],
            data.summary or origin.summary,
            origin.drug_free or "unknown",
            children.value if children else origin.children_in_household,
            reason if children else _origin_reason(origin),
        )
    assert children is not None  # the request's rule: every meeting but a remissmöte
    if data.person is None and follow is not None:
        return _Person(
            follow.personnummer, follow.protected, list(data.needs), data.summary, "unknown",
            children.value, reason,
        )  # fmt: skip
    assert data.person is not None
    return _Person(
        normalise_personnummer(data.person.personnummer),
        data.person.protected_identity,
        list(data.needs),
        data.summary,
        "unknown",
        children.value,
        reason,
    )


def _invitation(data: MeetingCreate, person: _Person, block: dict[str, Any]) -> ReferralCreate:
    """The invitation sent to every participant, as a referral of the meeting's kind."""
    kind = INVITATION_KINDS[data.kind]
    return ReferralCreate.model_validate(
        {
            "kind": kind,
            "person": {
                "personnummer": person.personnummer,
                "protected_identity": person.protected,
            },
            "needs": [n.value if isinstance(n, Intervention) else n for n in person.needs],
            "summary": person.summary,
            "children_in_household": person.children,
            "children_unknown_reason": person.children_unknown_reason or None,
            "drug_free": person.drug_free if kind == "vardkedjeremiss" else None,
            "recipients": [p.model_dump() for p in data.participants or []],
            "legal_basis": data.legal_basis.model_dump() if data.legal_basis else None,
            **({spec(kind).details_field: block} if kind != "vardkedjeremiss" else {}),
        }
    )


async def convene(work: Work, clients: Clients, data: MeetingCreate) -> Meeting:
    """Convenes a meeting and sends every invited unit its invitation (all or nothing:
    the consent service decides for each, as for a referral)."""
    caller = caller_of(work)
    unit = require_unit(caller)
    origin = await _origin(work, unit, data)
    data = await _with_suggested(work, data, origin)
    await _drug_free(work, data, origin)
    follow = await _follow_up(work, unit, data)
    person = _person(data, origin, follow)
    answers = (
        await handover.linked_referral(work, data.for_referral_id, person.personnummer)
        if data.for_referral_id
        else None
    )
    meeting_id = new_id()
    block: dict[str, Any] = {"meeting_at": data.at.isoformat()}
    if data.place:
        block["place"] = data.place
    if data.video_link:
        block["video_link"] = data.video_link
    if data.answer_by:
        block["answer_by"] = data.answer_by.isoformat()
    _referral, recipients = await send_referral(
        work,
        clients,
        _invitation(data, person, block),
        invitation={"invitation": True, "meeting_id": meeting_id, **block},
        problem_field="participants",
    )
    meeting = Meeting(
        id=meeting_id,
        kind=data.kind,
        convener_unit_id=unit,
        origin_task_id=data.origin_task_id,
        follow_up_of=follow.plan_id if follow else None,
        for_referral_id=answers.id if answers else None,
        personnummer=person.personnummer,
        person_key=person_key(member_secret(work.settings), person.personnummer),
        protected_identity=person.protected,
        at=data.at,
        place=data.place,
        video_link=data.video_link,
        person_invited=(
            data.person_invited
            if data.person_invited is not None
            else data.kind != "samordningsmote"
        ),
        relatives=[r.model_dump(exclude_none=True) for r in data.relatives],
        participants=[
            {"orgnr": r.orgnr, "unit_id": r.unit_id, "task_id": r.id} for r in recipients
        ],
        created_by=caller.sub,
    )
    work.session.add(meeting)
    await work.session.flush()
    if answers is not None:
        await handover.sip_convened(work, answers)
    return meeting


async def get_meeting(work: Work, meeting_id: str) -> Meeting:
    """A meeting the caller's unit convened."""
    meeting = await MeetingRepository(work.session).get(meeting_id)
    if meeting is None or meeting.convener_unit_id != caller_of(work).unit:
        raise MeetingNotFound("no such meeting convened by your unit")
    return meeting


async def participant_status(
    work: Work, meeting: Meeting, *, overdue: Overdue | None = None
) -> list[dict[str, Any]]:
    """Every invited unit with its answer (the invitation task's status) and its deadlines;
    ``overdue``: only those past that deadline."""
    on = today(work)
    tasks = {
        r.id: r
        for r in await RecipientRepository(work.session).load_many(
            p["task_id"] for p in meeting.participants
        )
    }
    out = []
    for p in meeting.participants:
        r = tasks[p["task_id"]]
        if overdue is not None and not is_overdue(r, on, overdue):
            continue
        out.append(
            {
                **p,
                "status": r.status,
                "reason": r.reason,
                "proposed_at": r.proposed_at,
                "acknowledge_by": r.acknowledge_by,
                "answer_by": r.answer_by,
                "overdue": is_overdue(r, on),
            }
        )
    return out

"""Meetings and plans: the joint referral meeting (remissmöte) of a vårdkedjeremiss and the
SIP meeting, and the plan each ends in.

A unit convenes a meeting; every invited unit gets an *invitation task* that travels and
is answered like a referral (acknowledged → accepted, or declined with a reason and
perhaps another proposed time), so invitations get the same consent checks, inboxes,
deadlines and closed loop. For a remissmöte the drug-free rule is enforced: when the person
is not drug-free and a planned treatment requires it, a unit offering drug-free
interventions (abstinence treatment or tapering) must be invited.

The meeting's outcome is a plan owned by the convener's member: goals, an *ordered* list
of actions each owned by a unit, the coordinating function and the follow-up date. It is
shared with every member that has a viewer unit (participants, and the vårdkedjeremiss's
sender); each keeps the newest copy. An action is ended only by the unit that owns it; the
owner of the plan records it and shares the plan again, and every member tells each of
its viewer units — no action ends unnoticed (domain problem 5).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.models import Incoming, KnownUnit, Meeting, Plan, PlanNotice
from services.referral.repository import (
    IncomingRepository,
    KnownUnitRepository,
    MeetingRepository,
    PlanRepository,
    RecipientRepository,
)
from services.referral.schemas import ActionEndIn, MeetingCreate, PlanIn, ReferralCreate
from services.referral.service import (
    Clients,
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
    require_unit,
    send_referral,
)
from shared.auth import Caller
from shared.codes import Intervention
from shared.config import Settings
from shared.db import new_id, utcnow
from shared.errors import InvalidInput, NotFound
from shared.events import CloudEvent, topics
from shared.events.payloads import (
    PLAN_ACTION_END_REQUESTED_V1,
    PLAN_ACTION_ENDED_V1,
    PLAN_SHARED_V1,
    PlanActionEndedV1,
    PlanActionEndRequestedV1,
    PlanSharedV1,
)
from shared.identifiers import normalise_personnummer
from shared.inbox import Reject
from shared.outbox import Outbox
from shared.person import person_key

# Interventions that make a person drug-free (the "unit for drug-free interventions").
DRUG_FREE_INTERVENTIONS = frozenset(
    {Intervention.ABSTINENSBEHANDLING.value, Intervention.NEDTRAPPNING.value}
)
OPEN_ORIGIN = frozenset({"acknowledged", "accepted", "in_progress"})


class MeetingNotFound(NotFound):
    slug = "meeting-not-found"
    title = "No such meeting convened by your unit"


class PlanNotFound(NotFound):
    slug = "plan-not-found"
    title = "No such plan visible to your unit"


def _offers_drug_free(unit: KnownUnit | None) -> bool:
    return unit is not None and bool(DRUG_FREE_INTERVENTIONS & set(unit.interventions))


async def convene(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    caller: Caller,
    data: MeetingCreate,
) -> Meeting:
    """Convenes a meeting and sends every invited unit its invitation (all or nothing:
    the consent service decides for each, as for a referral)."""
    unit = require_unit(caller)
    origin: Incoming | None = None
    if data.kind == "remissmote":
        assert data.origin_task_id is not None
        origin = await IncomingRepository(session).get(data.origin_task_id)
        if (
            origin is None
            or origin.unit_id != unit
            or origin.kind != "vardkedjeremiss"
            or origin.status not in OPEN_ORIGIN
        ):
            raise InvalidInput.field(
                "origin_task_id",
                "not_an_open_vardkedjeremiss",
                "a remissmöte is convened from a vårdkedjeremiss your unit has acknowledged",
            )
        requires = data.treatment_requires_drug_free or bool(
            origin.details.get("treatment_requires_drug_free")
        )
        if origin.drug_free != "yes" and requires:
            repo = KnownUnitRepository(session)
            invited = [await repo.get(p.unit_id) for p in data.participants]
            if not any(_offers_drug_free(u) for u in invited):
                raise InvalidInput.field(
                    "participants",
                    "drug_free_unit_required",
                    "the person is not drug-free and a planned treatment requires it: "
                    "invite a unit offering abstinence treatment or tapering",
                )
    previous: Meeting | None = None
    if data.follow_up_of:
        previous = await MeetingRepository(session).get(data.follow_up_of)
        if (
            previous is None
            or previous.convener_unit_id != unit
            or previous.kind != data.kind
            or previous.status != "held"
        ):
            raise InvalidInput.field(
                "follow_up_of",
                "not_a_held_meeting",
                "a follow-up is of a meeting your unit convened and held (its plan recorded)",
            )
    if origin is not None:
        personnummer, protected = origin.personnummer, origin.protected_identity
        needs = data.needs or [Intervention(n) for n in origin.needs]
        summary = data.summary or origin.summary
        drug_free = origin.drug_free or "unknown"
    else:
        assert data.person is not None
        personnummer = normalise_personnummer(data.person.personnummer)
        protected = data.person.protected_identity
        needs, summary, drug_free = data.needs, data.summary, "unknown"
    meeting_id = new_id()
    kind = "vardkedjeremiss" if data.kind == "remissmote" else "sip_kallelse"
    block: dict[str, Any] = {"meeting_at": data.at.isoformat()}
    if data.place:
        block["place"] = data.place
    if data.video_link:
        block["video_link"] = data.video_link
    invitation = ReferralCreate.model_validate(
        {
            "kind": kind,
            "person": {"personnummer": personnummer, "protected_identity": protected},
            "needs": [n.value if isinstance(n, Intervention) else n for n in needs],
            "summary": summary,
            "drug_free": drug_free if kind == "vardkedjeremiss" else None,
            "recipients": [p.model_dump() for p in data.participants],
            "legal_basis": data.legal_basis.model_dump() if data.legal_basis else None,
            **({"sip": block} if kind == "sip_kallelse" else {}),
        }
    )
    _referral, recipients = await send_referral(
        session=session,
        outbox=outbox,
        clients=clients,
        settings=settings,
        secret=secret,
        caller=caller,
        data=invitation,
        invitation={"invitation": True, "meeting_id": meeting_id, **block},
        problem_field="participants",
    )
    meeting = Meeting(
        id=meeting_id,
        kind=data.kind,
        convener_unit_id=unit,
        origin_task_id=data.origin_task_id,
        follow_up_of=previous.follow_up_of or previous.id if previous else None,
        personnummer=personnummer,
        person_key=person_key(secret, personnummer),
        protected_identity=protected,
        at=data.at,
        place=data.place,
        video_link=data.video_link,
        person_invited=data.person_invited,
        relatives=[r.model_dump(exclude_none=True) for r in data.relatives],
        participants=[
            {"orgnr": r.orgnr, "unit_id": r.unit_id, "task_id": r.id} for r in recipients
        ],
        created_by=caller.sub,
    )
    session.add(meeting)
    await session.flush()
    return meeting


async def get_meeting(*, session: AsyncSession, caller: Caller, meeting_id: str) -> Meeting:
    """A meeting the caller's unit convened."""
    meeting = await MeetingRepository(session).get(meeting_id)
    if meeting is None or meeting.convener_unit_id != caller.unit:
        raise MeetingNotFound("no such meeting convened by your unit")
    return meeting


async def participant_status(*, session: AsyncSession, meeting: Meeting) -> list[dict[str, Any]]:
    """Every invited unit with its answer (the invitation task's status)."""
    repo = RecipientRepository(session)
    out = []
    for p in meeting.participants:
        r = await repo.get(p["task_id"])
        assert r is not None
        out.append({**p, "status": r.status, "reason": r.reason, "proposed_at": r.proposed_at})
    return out


def _viewers(meeting: Meeting, me: str, origin: Incoming | None) -> list[dict[str, str]]:
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for v in [
        {"orgnr": me, "unit_id": meeting.convener_unit_id},
        *({"orgnr": p["orgnr"], "unit_id": p["unit_id"]} for p in meeting.participants),
        *(
            [{"orgnr": origin.sender_orgnr, "unit_id": origin.sender_unit_id}]
            if origin is not None
            else []
        ),
    ]:
        seen.setdefault((v["orgnr"], v["unit_id"]), v)
    return list(seen.values())


async def record_plan(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    caller: Caller,
    meeting_id: str,
    data: PlanIn,
    expected_version: int | None,
) -> Plan:
    """Records (or replaces) the meeting's plan and shares it with every viewer's member.
    Actions keep their ids and status when a plan is revised with the same owner and
    intervention at a position."""
    meeting = await get_meeting(session=session, caller=caller, meeting_id=meeting_id)
    me = settings.member.orgnr
    repo = PlanRepository(session)
    # A follow-up meeting revises the plan of the first meeting.
    plan = await repo.get(meeting.follow_up_of or meeting.id)
    if expected_version is not None and (plan is None or plan.plan_version != expected_version):
        raise StaleVersion(f"the plan is at version {plan.plan_version if plan else 0}")
    origin = (
        await IncomingRepository(session).get(meeting.origin_task_id)
        if meeting.origin_task_id
        else None
    )
    previous = {
        (a["position"], a["orgnr"], a["unit_id"], a["intervention"]): a
        for a in (plan.actions if plan else [])
    }
    actions = []
    for position, a in enumerate(data.actions, start=1):
        kept = previous.get((position, a.owner.orgnr, a.owner.unit_id, a.intervention.value))
        actions.append(
            {
                "id": kept["id"] if kept else new_id(),
                "position": position,
                "intervention": a.intervention.value,
                "orgnr": a.owner.orgnr,
                "unit_id": a.owner.unit_id,
                "due": a.due.isoformat() if a.due else None,
                "description": a.description,
                "status": kept["status"] if kept else "planned",
                "ended_at": kept.get("ended_at") if kept else None,
                "outcome": kept.get("outcome") if kept else None,
            }
        )
    if plan is None:
        plan = Plan(
            id=meeting.follow_up_of or meeting.id,
            owner_orgnr=me,
            owner_unit_id=meeting.convener_unit_id,
            kind=meeting.kind,
            personnummer=meeting.personnummer,
            person_key=meeting.person_key,
            plan_version=0,
        )
        session.add(plan)
    plan.goals = list(data.goals)
    plan.actions = actions
    plan.coordinator = data.coordinator.model_dump()
    plan.follow_up_date = data.follow_up_date
    viewers = _viewers(meeting, me, origin)
    # A follow-up keeps everyone who could see the plan before.
    plan.viewers = list(
        {(v["orgnr"], v["unit_id"]): v for v in [*(plan.viewers or []), *viewers]}.values()
    )
    plan.plan_version += 1
    meeting.status = "held"
    await session.flush()
    await _share(session=session, outbox=outbox, me=me, plan=plan)
    return plan


async def _share(*, session: AsyncSession, outbox: Outbox, me: str, plan: Plan) -> None:
    """The plan to every other member with a viewer unit."""
    event = PlanSharedV1(
        plan_id=plan.id,
        owner_orgnr=plan.owner_orgnr,
        owner_unit_id=plan.owner_unit_id,
        kind=plan.kind,
        personnummer=plan.personnummer,
        goals=plan.goals,
        actions=plan.actions,
        coordinator=plan.coordinator,
        follow_up_date=plan.follow_up_date,
        viewers=plan.viewers,
        plan_version=plan.plan_version,
        at=utcnow(),
    )
    for member in sorted({v["orgnr"] for v in plan.viewers} - {me}):
        await outbox.publish(
            session,
            topics.inbound(member),
            PLAN_SHARED_V1,
            event,
            subject=plan.id,
            key=plan.id,
            aggversion=plan.plan_version,
        )


async def _tell_units_of_ended(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    plan: Plan,
    before: list[dict[str, Any]],
) -> None:
    """Every viewer unit of this member hears of each action that has ended since
    ``before`` (notify turns it into a notification)."""
    was_ended = {a["id"] for a in before if a.get("status") == "ended"}
    own_units = [v["unit_id"] for v in plan.viewers if v["orgnr"] == me]
    for action in plan.actions:
        if action.get("status") != "ended" or action["id"] in was_ended:
            continue
        for unit_id in own_units:
            session.add(PlanNotice(plan_id=plan.id, action_id=action["id"], unit_id=unit_id))
            await outbox.publish(
                session,
                topics.internal(me),
                PLAN_ACTION_ENDED_V1,
                PlanActionEndedV1(
                    plan_id=plan.id,
                    action_id=action["id"],
                    unit_id=unit_id,
                    owner_orgnr=action["orgnr"],
                    owner_unit_id=action["unit_id"],
                    outcome=action["outcome"],
                    ended_at=dt.datetime.fromisoformat(action["ended_at"]),
                ),
                subject=plan.id,
                key=plan.id,
            )


def can_view(caller: Caller, plan: Plan) -> bool:
    """Only the plan's viewer units (participants, convener, sender) see it."""
    return any(v["orgnr"] == caller.org and v["unit_id"] == caller.unit for v in plan.viewers)


async def get_plan(*, session: AsyncSession, caller: Caller, plan_id: str) -> Plan:
    plan = await PlanRepository(session).get(plan_id)
    if plan is None or not can_view(caller, plan):
        raise PlanNotFound("no such plan visible to your unit")
    return plan


async def _end_in_owned_plan(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    plan: Plan,
    action_id: str,
    by_orgnr: str,
    by_unit_id: str,
    outcome: str,
) -> bool:
    """Records the end of an action in a plan this member owns, and shares the plan."""
    before = [dict(a) for a in plan.actions]
    actions = [dict(a) for a in plan.actions]
    action = next((a for a in actions if a["id"] == action_id), None)
    if action is None or (action["orgnr"], action["unit_id"]) != (by_orgnr, by_unit_id):
        return False
    if action["status"] == "ended":
        return False
    action.update(status="ended", outcome=outcome, ended_at=utcnow().isoformat())
    plan.actions = actions
    plan.plan_version += 1
    await session.flush()
    await _share(session=session, outbox=outbox, me=me, plan=plan)
    await _tell_units_of_ended(session=session, outbox=outbox, me=me, plan=plan, before=before)
    return True


async def end_action(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    caller: Caller,
    plan_id: str,
    action_id: str,
    data: ActionEndIn,
) -> Plan:
    """The unit owning an action ends it; the plan's owner records it and every party is
    told (at once when this member owns the plan, else through the owner)."""
    unit = require_unit(caller)
    plan = await get_plan(session=session, caller=caller, plan_id=plan_id)
    action = next((a for a in plan.actions if a["id"] == action_id), None)
    if action is None:
        raise PlanNotFound("no such action in the plan")
    if (action["orgnr"], action["unit_id"]) != (caller.org, unit):
        raise TransitionNotAllowed("only the unit owning the action ends it")
    if action["status"] == "ended":
        raise TransitionNotAllowed("the action has already ended")
    me = settings.member.orgnr
    if plan.owner_orgnr == me:
        await _end_in_owned_plan(
            session=session,
            outbox=outbox,
            me=me,
            plan=plan,
            action_id=action_id,
            by_orgnr=caller.org,
            by_unit_id=unit,
            outcome=data.outcome,
        )
        return plan
    await outbox.publish(
        session,
        topics.inbound(plan.owner_orgnr),
        PLAN_ACTION_END_REQUESTED_V1,
        PlanActionEndRequestedV1(
            plan_id=plan.id,
            action_id=action_id,
            by_orgnr=caller.org,
            by_unit_id=unit,
            outcome=data.outcome,
            at=utcnow(),
        ),
        subject=plan.id,
        key=plan.id,
    )
    return plan


async def apply_end_request(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    event: CloudEvent,
    payload: PlanActionEndRequestedV1,
) -> bool:
    """At the plan's owner: another member's unit ended its action."""
    if event.sender_orgnr != payload.by_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "a member ends only its own units' actions")
    plan = await PlanRepository(session).get(payload.plan_id)
    me = settings.member.orgnr
    if plan is None or plan.owner_orgnr != me:
        raise Reject("unknown_plan", "this member owns no such plan")
    return await _end_in_owned_plan(
        session=session,
        outbox=outbox,
        me=me,
        plan=plan,
        action_id=payload.action_id,
        by_orgnr=payload.by_orgnr,
        by_unit_id=payload.by_unit_id,
        outcome=payload.outcome,
    )


async def apply_plan_shared(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    secret: bytes,
    event: CloudEvent,
    payload: PlanSharedV1,
) -> bool:
    """At a party: keeps the newest copy of the plan and tells its viewer units of every
    action that ended since the copy it had."""
    if event.sender_orgnr != payload.owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the plan's owner shares it")
    me = settings.member.orgnr
    if not any(v["orgnr"] == me for v in payload.viewers):
        raise Reject("not_a_party", "this member has no unit among the plan's viewers")
    repo = PlanRepository(session)
    plan = await repo.get(payload.plan_id)
    if plan is not None and plan.plan_version >= payload.plan_version:
        return False
    before = list(plan.actions) if plan is not None else []
    if plan is None:
        plan = Plan(id=payload.plan_id)
        session.add(plan)
    plan.owner_orgnr = payload.owner_orgnr
    plan.owner_unit_id = payload.owner_unit_id
    plan.kind = payload.kind
    plan.personnummer = payload.personnummer
    plan.person_key = person_key(secret, payload.personnummer)
    plan.goals = list(payload.goals)
    plan.actions = [dict(a) for a in payload.actions]
    plan.coordinator = dict(payload.coordinator)
    plan.follow_up_date = payload.follow_up_date
    plan.viewers = [dict(v) for v in payload.viewers]
    plan.plan_version = payload.plan_version
    await session.flush()
    await _tell_units_of_ended(session=session, outbox=outbox, me=me, plan=plan, before=before)
    return True


__all__ = [
    "DRUG_FREE_INTERVENTIONS",
    "MeetingNotFound",
    "PlanNotFound",
    "ReferralNotFound",
    "apply_end_request",
    "apply_plan_shared",
    "convene",
    "end_action",
    "get_meeting",
    "get_plan",
    "participant_status",
    "record_plan",
]

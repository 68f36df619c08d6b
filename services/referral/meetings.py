"""Meetings and plans: the joint referral meeting (remissmöte) of a vårdkedjeremiss and the
SIP meeting, and the plan each ends in.

A unit convenes a meeting; every invited unit gets an *invitation task* that travels and
is answered like a referral (acknowledged → accepted, or declined with a reason and
perhaps another proposed time), so invitations get the same consent checks, inboxes,
deadlines and closed loop. For a remissmöte the drug-free rule is enforced: when the person
is not drug-free and a planned treatment requires it, a unit offering drug-free
interventions (abstinence treatment or tapering) must be invited.

The meeting's outcome is a plan owned by the convener's member: goals, an *ordered* list
of actions each owned by a unit, the coordinating function and the follow-up date. Its
viewers are the convener, every participant that **accepted** its invitation and the
vårdkedjeremiss's sender. Every time it is shared (recorded, revised, an action ended, a
late acceptance) the owner's consent service decides again, for each viewer unit of another
member, whether the plan may go there *now*; only those it allows get it, each with its
basis. The receiving member checks its own copy of the basis on arrival and refuses a plan
without one (``no_basis``). The first member to share a plan id owns it: a plan event of
another member for it is refused (``not_owner``), so versions only move forward from the
owner. When a consent a copy rests on ends, the copy is closed: it keeps no personnummer and
no free text (ADR 0021). An action is ended only by the unit that owns it; the owner of the
plan records it and shares the plan again, and every member tells each of its viewer units
— no action ends unnoticed (domain problem 5).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.codes import Actor, Status
from services.referral.models import Incoming, KnownUnit, Meeting, Plan, PlanBasis, PlanNotice
from services.referral.repository import (
    ConsentTombstoneRepository,
    IncomingRepository,
    KnownUnitRepository,
    MeetingRepository,
    PlanBasisRepository,
    PlanRepository,
    RecipientRepository,
    ReferralRepository,
)
from services.referral.schemas import ActionEndIn, MeetingCreate, PlanIn, ReferralCreate
from services.referral.service import (
    PROTECTED_ROLE,
    Clients,
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
    _decide,
    require_unit,
    send_referral,
)
from shared.config import Settings
from shared.data.db import new_id, utcnow
from shared.domain.codes import Intervention
from shared.domain.kinds import ReferralKind
from shared.identity.auth import Caller
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import person_key
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    PLAN_ACTION_END_REQUESTED_V1,
    PLAN_ACTION_ENDED_V1,
    PLAN_SHARED_V1,
    PlanActionEndedV1,
    PlanActionEndRequestedV1,
    PlanBasisV1,
    PlanSharedV1,
    ReferralTransitionedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.outbox import Outbox
from shared.web.errors import InvalidInput, NotFound

# Interventions that make a person drug-free (the "unit for drug-free interventions").
DRUG_FREE_INTERVENTIONS = frozenset(
    {Intervention.ABSTINENSBEHANDLING.value, Intervention.NEDTRAPPNING.value}
)
OPEN_ORIGIN = frozenset({"acknowledged", "accepted", "in_progress"})
# An invitation in one of these states was accepted: its unit sees the plan.
ACCEPTED = frozenset({Status.ACCEPTED.value, Status.IN_PROGRESS.value, Status.COMPLETED.value})
# The information category a plan is shared as (the consent must cover it).
PLAN_CATEGORIES = ["plan"]
ACTIVE, WITHDRAWN = "active", "withdrawn"


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
            or origin.personnummer is None
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
        assert origin.personnummer is not None  # an open task keeps its person
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


def _referral_kind(plan_kind: str) -> ReferralKind:
    """The kind whose consent purpose a plan is shared for."""
    return ReferralKind.VARDKEDJEREMISS if plan_kind == "remissmote" else ReferralKind.SIP_KALLELSE


def _claim(basis: dict[str, Any] | None) -> dict[str, Any] | None:
    """The legal basis a party's invitation or referral went on, to be stated again."""
    if not basis or basis.get("kind") != "legal_basis":
        return None
    fields = {
        "basis": basis.get("legal_basis"),
        "ground": basis.get("ground"),
        "justification": basis.get("justification"),
    }
    return {k: v for k, v in fields.items() if v}


@dataclass(frozen=True)
class _Party:
    orgnr: str
    unit_id: str
    claim: dict[str, Any] | None  # a legal basis to state again, or None (a consent)

    def ref(self) -> dict[str, str]:
        return {"orgnr": self.orgnr, "unit_id": self.unit_id}


async def _parties(*, session: AsyncSession, plan_id: str, me: str) -> list[_Party]:
    """Who may see the plan: the convener of each of its meetings, every participant that
    accepted its invitation (the task's status as the receiver last reported it), and a
    vårdkedjeremiss's sender."""
    recipients = RecipientRepository(session)
    incoming = IncomingRepository(session)
    seen: dict[tuple[str, str], _Party] = {}
    for meeting in await MeetingRepository(session).of_plan(plan_id):
        seen.setdefault((me, meeting.convener_unit_id), _Party(me, meeting.convener_unit_id, None))
        for p in meeting.participants:
            task = await recipients.get(p["task_id"])
            if task is not None and task.status in ACCEPTED:
                seen.setdefault(
                    (p["orgnr"], p["unit_id"]), _Party(p["orgnr"], p["unit_id"], _claim(task.basis))
                )
        if meeting.origin_task_id:
            origin = await incoming.get(meeting.origin_task_id)
            if origin is not None:
                key = (origin.sender_orgnr, origin.sender_unit_id)
                seen.setdefault(key, _Party(*key, _claim(origin.basis)))
    return list(seen.values())


async def record_plan(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    caller: Caller,
    meeting_id: str,
    data: PlanIn,
    expected_version: int | None,
) -> Plan:
    """Records (or replaces) the meeting's plan and shares it with every viewer unit of
    another member that the consent service allows now. Actions keep their ids and status
    when a plan is revised with the same owner and intervention at a position."""
    meeting = await get_meeting(session=session, caller=caller, meeting_id=meeting_id)
    me = settings.member.orgnr
    repo = PlanRepository(session)
    # A follow-up meeting revises the plan of the first meeting.
    plan = await repo.get(meeting.follow_up_of or meeting.id)
    if expected_version is not None and (plan is None or plan.plan_version != expected_version):
        raise StaleVersion(f"the plan is at version {plan.plan_version if plan else 0}")
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
            protected_identity=meeting.protected_identity,
            status=ACTIVE,
            viewers=[],
            plan_version=0,
        )
        session.add(plan)
    plan.goals = list(data.goals)
    plan.actions = actions
    plan.coordinator = data.coordinator.model_dump()
    plan.follow_up_date = data.follow_up_date
    plan.plan_version += 1
    meeting.status = "held"
    await session.flush()
    await _share(session=session, outbox=outbox, clients=clients, settings=settings, plan=plan)
    return plan


async def _share(
    *, session: AsyncSession, outbox: Outbox, clients: Clients, settings: Settings, plan: Plan
) -> None:
    """Decides for every viewer unit of another member whether the plan may go there now
    (this member's consent service, as for a referral; a consent heard to have ended never
    counts), and sends it to each member with an allowed unit, with that unit's basis. The
    plan's viewers become this member's own viewer units and the allowed ones."""
    me = settings.member.orgnr
    assert plan.personnummer is not None  # the owner's own plan keeps its person
    parties = await _parties(session=session, plan_id=plan.id, me=me)
    ended = ConsentTombstoneRepository(session)
    allowed: list[tuple[_Party, dict[str, Any]]] = []
    for party in parties:
        if party.orgnr == me:
            continue
        ok, basis, _codes = await _decide(
            clients=clients,
            settings=settings,
            personnummer=plan.personnummer,
            kind=_referral_kind(plan.kind),
            categories=PLAN_CATEGORIES,
            sender={"orgnr": me, "unit_id": plan.owner_unit_id},
            recipient=party.ref(),
            legal_basis=party.claim,
        )
        if not ok or basis.get("kind") not in ("consent", "legal_basis"):
            continue
        consent_id = basis.get("consent_id")
        if consent_id is not None and await ended.get(consent_id) is not None:
            continue  # heard to have ended; this member's consent service may lag
        allowed.append((party, basis))
    plan.viewers = [p.ref() for p in parties if p.orgnr == me] + [p.ref() for p, _ in allowed]
    await PlanBasisRepository(session).replace(
        plan.id,
        [
            PlanBasis(plan_id=plan.id, orgnr=p.orgnr, unit_id=p.unit_id, consent_id=b["consent_id"])
            for p, b in allowed
            if b.get("consent_id")
        ],
    )
    now = utcnow()
    for member in sorted({p.orgnr for p, _ in allowed}):
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
            at=now,
            protected_identity=plan.protected_identity,
            bases=[
                PlanBasisV1(orgnr=p.orgnr, unit_id=p.unit_id, **b)
                for p, b in allowed
                if p.orgnr == member
            ],
        )
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
    """Only the plan's viewer units (participants who accepted, convener, sender) see it;
    a protected identity's plan only with the role, as for a referral."""
    if plan.protected_identity and not caller.has_role(PROTECTED_ROLE):
        return False
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
    clients: Clients,
    settings: Settings,
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
    await _share(session=session, outbox=outbox, clients=clients, settings=settings, plan=plan)
    await _tell_units_of_ended(
        session=session, outbox=outbox, me=settings.member.orgnr, plan=plan, before=before
    )
    return True


async def end_action(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
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
    if plan.status == WITHDRAWN:
        raise TransitionNotAllowed("the plan's basis has ended: this copy is closed")
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
            clients=clients,
            settings=settings,
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
    clients: Clients,
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
        clients=clients,
        settings=settings,
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
    clients: Clients,
    settings: Settings,
    secret: bytes,
    event: CloudEvent,
    payload: PlanSharedV1,
) -> bool:
    """At a party: checks the plan's owner and, with this member's own consent service
    (its copy of the consent, or the stated legal basis), the basis for each of its viewer
    units; keeps the newest copy for the units allowed and tells them of every action that
    ended since the copy it had. Refuses a plan of another owner than the plan id's first
    (``not_owner``) and a plan no unit here has a basis for (``no_basis``)."""
    if event.sender_orgnr != payload.owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the plan's owner shares it")
    me = settings.member.orgnr
    repo = PlanRepository(session)
    plan = await repo.get(payload.plan_id)
    if plan is not None and plan.owner_orgnr != payload.owner_orgnr:
        raise Reject("not_owner", "the plan id belongs to another member")
    mine = [v for v in payload.viewers if v.get("orgnr") == me]
    if not mine:
        raise Reject("not_a_party", "this member has no unit among the plan's viewers")
    if any(b.kind == "same_member" for b in payload.bases):
        raise Reject("no_basis", "a plan from another member never rests on same_member")
    if plan is not None and plan.plan_version >= payload.plan_version:
        return False
    stated = {(b.orgnr, b.unit_id): b for b in payload.bases}
    ended = ConsentTombstoneRepository(session)
    allowed: list[tuple[dict[str, str], str | None]] = []
    for viewer in mine:
        claimed = stated.get((me, viewer.get("unit_id", "")))
        stated_consent = claimed.consent_id if claimed is not None else None
        if stated_consent is not None and await ended.get(stated_consent) is not None:
            continue
        ok, basis, _codes = await _decide(
            clients=clients,
            settings=settings,
            personnummer=payload.personnummer,
            kind=_referral_kind(payload.kind),
            categories=PLAN_CATEGORIES,
            sender={"orgnr": payload.owner_orgnr, "unit_id": payload.owner_unit_id},
            recipient={"orgnr": me, "unit_id": viewer["unit_id"]},
            legal_basis=_claim(claimed.model_dump() if claimed is not None else None),
            arrived_from=event.sender_orgnr,
        )
        consent_id = basis.get("consent_id")
        if not ok or (consent_id is not None and await ended.get(consent_id) is not None):
            continue
        allowed.append((viewer, consent_id))
    if not allowed:
        raise Reject("no_basis", "no consent or legal basis allows this plan here now")
    before = list(plan.actions) if plan is not None else []
    if plan is None:
        plan = Plan(id=payload.plan_id)
        session.add(plan)
    allowed_units = {v["unit_id"] for v, _ in allowed}
    plan.owner_orgnr = payload.owner_orgnr
    plan.owner_unit_id = payload.owner_unit_id
    plan.kind = payload.kind
    plan.personnummer = payload.personnummer
    plan.person_key = person_key(secret, payload.personnummer)
    plan.protected_identity = payload.protected_identity
    plan.status = ACTIVE
    plan.goals = list(payload.goals)
    plan.actions = [dict(a) for a in payload.actions]
    plan.coordinator = dict(payload.coordinator)
    plan.follow_up_date = payload.follow_up_date
    plan.viewers = [
        dict(v) for v in payload.viewers if v.get("orgnr") != me or v["unit_id"] in allowed_units
    ]
    plan.plan_version = payload.plan_version
    await session.flush()
    await PlanBasisRepository(session).replace(
        plan.id,
        [
            PlanBasis(plan_id=plan.id, orgnr=me, unit_id=v["unit_id"], consent_id=c)
            for v, c in allowed
            if c is not None
        ],
    )
    await _tell_units_of_ended(session=session, outbox=outbox, me=me, plan=plan, before=before)
    return True


async def share_on_acceptance(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    payload: ReferralTransitionedV1,
) -> bool:
    """At the plan's owner: a participant accepted its invitation after the plan was
    recorded; the plan is shared again (a new version) so that it gets it too, if the
    consent service allows. True if shared."""
    if payload.actor == Actor.SENDER or payload.to_status != Status.ACCEPTED.value:
        return False
    task = await RecipientRepository(session).get(payload.task_id)
    if task is None or task.status not in ACCEPTED:
        return False
    referral = await ReferralRepository(session).get(task.referral_id)
    if referral is None or not referral.details.get("invitation"):
        return False
    meeting = await MeetingRepository(session).get(str(referral.details.get("meeting_id")))
    if meeting is None:
        return False
    plan = await PlanRepository(session).get(meeting.follow_up_of or meeting.id)
    if plan is None or plan.owner_orgnr != settings.member.orgnr:
        return False
    if any(v["orgnr"] == task.orgnr and v["unit_id"] == task.unit_id for v in plan.viewers):
        return False
    plan.plan_version += 1
    await session.flush()
    await _share(session=session, outbox=outbox, clients=clients, settings=settings, plan=plan)
    return True


def _close(plan: Plan) -> None:
    """A party's copy whose basis ended: marked withdrawn, with no personnummer, person key,
    goals or free text left (the actions keep their ids, owners, interventions and status)."""
    plan.status = WITHDRAWN
    plan.personnummer = None
    plan.person_key = None
    plan.goals = []
    kept = ("id", "position", "intervention", "orgnr", "unit_id", "due", "status", "ended_at")
    plan.actions = [{k: a.get(k) for k in kept} | {"description": ""} for a in plan.actions]


async def close_for_consent(*, session: AsyncSession, settings: Settings, consent_id: str) -> int:
    """A consent ended (withdrawn or expired): every party's copy resting on it is closed
    (nothing about the person shown any more); at the owner, the units that had the plan on
    it stop being viewers (the next share decides again). Returns the copies closed."""
    me = settings.member.orgnr
    bases = PlanBasisRepository(session)
    plans = PlanRepository(session)
    rows = await bases.on_consent(consent_id)
    closed = 0
    for plan_id in sorted({r.plan_id for r in rows}):
        plan = await plans.get(plan_id)
        if plan is None:
            continue
        if plan.owner_orgnr == me:
            gone = {(r.orgnr, r.unit_id) for r in rows if r.plan_id == plan_id}
            plan.viewers = [v for v in plan.viewers if (v["orgnr"], v["unit_id"]) not in gone]
            for r in rows:
                if r.plan_id == plan_id:
                    await session.delete(r)
            continue
        _close(plan)
        for r in await bases.of_plan(plan_id):
            await session.delete(r)
        closed += 1
    await session.flush()
    return closed


__all__ = [
    "DRUG_FREE_INTERVENTIONS",
    "MeetingNotFound",
    "PlanNotFound",
    "ReferralNotFound",
    "apply_end_request",
    "apply_plan_shared",
    "close_for_consent",
    "convene",
    "end_action",
    "get_meeting",
    "get_plan",
    "participant_status",
    "record_plan",
    "share_on_acceptance",
]

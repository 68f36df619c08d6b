"""Plans: the outcome of a meeting, owned by the convener's member — goals, an *ordered*
list of actions each owned by a unit, the coordinating function and the follow-up date.

Its viewers are the convener, every participant that **accepted** its invitation and the
vårdkedjeremiss's sender. Every time it is shared (recorded, revised, an action ended, a
late acceptance) the owner's consent service decides again, for each viewer unit of another
member, whether the plan may go there *now*; only those it allows get it, each with its
basis. An action is ended only by the unit that owns it; the owner of the plan records it
and shares the plan again, and every member tells each of its viewer units — no action
ends unnoticed (domain problem 5). The other members' copies: :mod:`.plan_copies`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.referral.access import (
    PROTECTED_ROLE,
    StaleVersion,
    TransitionNotAllowed,
    caller_of,
    require_unit,
)
from services.referral.codes import Actor, Status
from services.referral.meetings import get_meeting
from services.referral.models import Meeting, Plan, PlanBasis, PlanNotice
from services.referral.repository import (
    ConsentTombstoneRepository,
    IncomingRepository,
    MeetingRepository,
    PlanBasisRepository,
    PlanRepository,
    RecipientRepository,
    ReferralRepository,
)
from services.referral.schemas import ActionEndIn, PlanIn
from services.referral.siblings import Clients, Question, claim, decide
from shared.data.db import new_id
from shared.data.work import Work
from shared.domain.kinds import ReferralKind
from shared.identity.auth import Caller
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
from shared.messaging.ownership import require_sender
from shared.web.errors import NotFound

# An invitation in one of these states was accepted: its unit sees the plan.
ACCEPTED = frozenset({Status.ACCEPTED.value, Status.IN_PROGRESS.value, Status.COMPLETED.value})
# The information category a plan is shared as (the consent must cover it).
PLAN_CATEGORIES = ["plan"]
ACTIVE, WITHDRAWN = "active", "withdrawn"


PlanNotFound = NotFound.kind("plan-not-found", "No such plan visible to your unit")


def plan_question(
    plan_kind: str,
    personnummer: str,
    owner: dict[str, Any],
    viewer: dict[str, Any],
    legal_basis: dict[str, Any] | None,
    arrived_from: str | None = None,
) -> Question:
    """May the plan go from its owner's unit to ``viewer`` now (consent purpose of the
    meeting's referral kind, category ``plan``)?"""
    kind = ReferralKind.VARDKEDJEREMISS if plan_kind == "remissmote" else ReferralKind.SIP_KALLELSE
    return Question(
        personnummer=personnummer,
        kind=kind,
        categories=PLAN_CATEGORIES,
        sender=owner,
        recipient=viewer,
        legal_basis=legal_basis,
        arrived_from=arrived_from,
    )


async def heard_ended(work: Work, consent_id: str | None) -> bool:
    """Whether this service heard the consent end (its consent service may lag)."""
    repo = ConsentTombstoneRepository(work.session)
    return consent_id is not None and await repo.get(consent_id) is not None


@dataclass(frozen=True)
class _Party:
    orgnr: str
    unit_id: str
    claim: dict[str, Any] | None  # a legal basis to state again, or None (a consent)

    def ref(self) -> dict[str, str]:
        return {"orgnr": self.orgnr, "unit_id": self.unit_id}


async def _parties(work: Work, plan_id: str) -> list[_Party]:
    """Who may see the plan: the convener of each of its meetings, every participant that
    accepted its invitation (the task's status as the receiver last reported it), and a
    vårdkedjeremiss's sender."""
    me = work.member
    recipients = RecipientRepository(work.session)
    incoming = IncomingRepository(work.session)
    seen: dict[tuple[str, str], _Party] = {}
    for meeting in await MeetingRepository(work.session).of_plan(plan_id):
        seen.setdefault((me, meeting.convener_unit_id), _Party(me, meeting.convener_unit_id, None))
        for p in meeting.participants:
            task = await recipients.get(p["task_id"])
            if task is not None and task.status in ACCEPTED:
                seen.setdefault(
                    (p["orgnr"], p["unit_id"]), _Party(p["orgnr"], p["unit_id"], claim(task.basis))
                )
        if meeting.origin_task_id:
            origin = await incoming.get(meeting.origin_task_id)
            if origin is not None:
                key = (origin.sender_orgnr, origin.sender_unit_id)
                seen.setdefault(key, _Party(*key, claim(origin.basis)))
    return list(seen.values())


def _actions(plan: Plan | None, data: PlanIn) -> list[dict[str, Any]]:
    """The plan's actions as recorded: an action keeps its id and status when the owner and
    intervention at its position are unchanged."""
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
    return actions


def _new_plan(work: Work, meeting: Meeting) -> Plan:
    return Plan(
        id=meeting.follow_up_of or meeting.id,
        owner_orgnr=work.member,
        owner_unit_id=meeting.convener_unit_id,
        kind=meeting.kind,
        personnummer=meeting.personnummer,
        person_key=meeting.person_key,
        protected_identity=meeting.protected_identity,
        status=ACTIVE,
        viewers=[],
        plan_version=0,
    )


async def record_plan(
    work: Work, clients: Clients, *, meeting_id: str, data: PlanIn, expected_version: int | None
) -> Plan:
    """Records (or replaces) the meeting's plan and shares it with every viewer unit of
    another member that the consent service allows now. Actions keep their ids and status
    when a plan is revised with the same owner and intervention at a position."""
    meeting = await get_meeting(work, meeting_id)
    # A follow-up meeting revises the plan of the first meeting. The first meeting's row
    # is locked: an acceptance arriving now waits, then sees this plan (share_on_acceptance).
    await MeetingRepository(work.session).lock(meeting.follow_up_of or meeting.id)
    plan = await PlanRepository(work.session).get(meeting.follow_up_of or meeting.id)
    if expected_version is not None and (plan is None or plan.plan_version != expected_version):
        raise StaleVersion(f"the plan is at version {plan.plan_version if plan else 0}")
    actions = _actions(plan, data)
    if plan is None:
        plan = _new_plan(work, meeting)
        work.session.add(plan)
    plan.goals = list(data.goals)
    plan.actions = actions
    plan.coordinator = data.coordinator.model_dump()
    plan.follow_up_date = data.follow_up_date
    plan.plan_version += 1
    meeting.status = "held"
    await work.session.flush()
    await _share(work, clients, plan)
    return plan


async def _share(work: Work, clients: Clients, plan: Plan) -> None:
    """Decides for every viewer unit of another member whether the plan may go there now
    (this member's consent service, as for a referral; a consent heard to have ended never
    counts), and sends it to each member with an allowed unit, with that unit's basis. The
    plan's viewers become this member's own viewer units and the allowed ones."""
    me = work.member
    assert plan.personnummer is not None  # the owner's own plan keeps its person
    parties = await _parties(work, plan.id)
    owner = {"orgnr": me, "unit_id": plan.owner_unit_id}
    allowed: list[tuple[_Party, dict[str, Any]]] = []
    for party in parties:
        if party.orgnr == me:
            continue
        question = plan_question(plan.kind, plan.personnummer, owner, party.ref(), party.claim)
        answer = await decide(clients, work.settings, question)
        if not answer.allowed or answer.basis.get("kind") not in ("consent", "legal_basis"):
            continue
        if await heard_ended(work, answer.basis.get("consent_id")):
            continue
        allowed.append((party, answer.basis))
    plan.viewers = [p.ref() for p in parties if p.orgnr == me] + [p.ref() for p, _ in allowed]
    await PlanBasisRepository(work.session).replace(
        plan.id,
        [
            PlanBasis(plan_id=plan.id, orgnr=p.orgnr, unit_id=p.unit_id, consent_id=b["consent_id"])
            for p, b in allowed
            if b.get("consent_id")
        ],
    )
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
            at=work.now,
            protected_identity=plan.protected_identity,
            bases=[
                PlanBasisV1(orgnr=p.orgnr, unit_id=p.unit_id, **b)
                for p, b in allowed
                if p.orgnr == member
            ],
        )
        await work.publish(
            topics.inbound(member),
            PLAN_SHARED_V1,
            event,
            subject=plan.id,
            key=plan.id,
            aggversion=plan.plan_version,
        )


async def tell_units_of_ended(work: Work, plan: Plan, before: list[dict[str, Any]]) -> None:
    """Every viewer unit of this member hears of each action that has ended since
    ``before`` (notify turns it into a notification)."""
    was_ended = {a["id"] for a in before if a.get("status") == "ended"}
    own_units = [v["unit_id"] for v in plan.viewers if v["orgnr"] == work.member]
    for action in plan.actions:
        if action.get("status") != "ended" or action["id"] in was_ended:
            continue
        for unit_id in own_units:
            work.session.add(PlanNotice(plan_id=plan.id, action_id=action["id"], unit_id=unit_id))
            await work.publish(
                topics.internal(work.member),
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


async def get_plan(work: Work, plan_id: str) -> Plan:
    """A plan the caller's unit is a viewer of."""
    plan = await PlanRepository(work.session).get(plan_id)
    if plan is None or not can_view(caller_of(work), plan):
        raise PlanNotFound("no such plan visible to your unit")
    return plan


@dataclass(frozen=True)
class ActionEnd:
    """An action's end, as its owning unit said it."""

    action_id: str
    by_orgnr: str
    by_unit_id: str
    outcome: str


async def _end_in_owned_plan(work: Work, clients: Clients, plan: Plan, end: ActionEnd) -> bool:
    """Records the end of an action in a plan this member owns, and shares the plan."""
    before = [dict(a) for a in plan.actions]
    actions = [dict(a) for a in plan.actions]
    action = next((a for a in actions if a["id"] == end.action_id), None)
    if action is None or (action["orgnr"], action["unit_id"]) != (end.by_orgnr, end.by_unit_id):
        return False
    if action["status"] == "ended":
        return False
    action.update(status="ended", outcome=end.outcome, ended_at=work.now.isoformat())
    plan.actions = actions
    plan.plan_version += 1
    await work.session.flush()
    await _share(work, clients, plan)
    await tell_units_of_ended(work, plan, before)
    return True


async def end_action(
    work: Work, clients: Clients, *, plan_id: str, action_id: str, data: ActionEndIn
) -> Plan:
    """The unit owning an action ends it; the plan's owner records it and every party is
    told (at once when this member owns the plan, else through the owner)."""
    caller = caller_of(work)
    unit = require_unit(caller)
    plan = await get_plan(work, plan_id)
    if plan.status == WITHDRAWN:
        raise TransitionNotAllowed("the plan's basis has ended: this copy is closed")
    action = next((a for a in plan.actions if a["id"] == action_id), None)
    if action is None:
        raise PlanNotFound("no such action in the plan")
    if (action["orgnr"], action["unit_id"]) != (caller.org, unit):
        raise TransitionNotAllowed("only the unit owning the action ends it")
    if action["status"] == "ended":
        raise TransitionNotAllowed("the action has already ended")
    if plan.owner_orgnr == work.member:
        await _end_in_owned_plan(
            work, clients, plan, ActionEnd(action_id, caller.org, unit, data.outcome)
        )
        return plan
    await work.publish(
        topics.inbound(plan.owner_orgnr),
        PLAN_ACTION_END_REQUESTED_V1,
        PlanActionEndRequestedV1(
            plan_id=plan.id,
            action_id=action_id,
            by_orgnr=caller.org,
            by_unit_id=unit,
            outcome=data.outcome,
            at=work.now,
        ),
        subject=plan.id,
        key=plan.id,
    )
    return plan


async def apply_end_request(
    work: Work, clients: Clients, event: CloudEvent, payload: PlanActionEndRequestedV1
) -> bool:
    """At the plan's owner: another member's unit ended its action."""
    require_sender(event, payload.by_orgnr, "a member ends only its own units' actions")
    plan = await PlanRepository(work.session).get(payload.plan_id)
    if plan is None or plan.owner_orgnr != work.member:
        raise Reject("unknown_plan", "this member owns no such plan")
    end = ActionEnd(payload.action_id, payload.by_orgnr, payload.by_unit_id, payload.outcome)
    return await _end_in_owned_plan(work, clients, plan, end)


async def share_on_acceptance(
    work: Work, clients: Clients, payload: ReferralTransitionedV1
) -> bool:
    """At the plan's owner: a participant accepted its invitation after the plan was
    recorded; the plan is shared again (a new version) so that it gets it too, if the
    consent service allows. True if shared."""
    if payload.actor == Actor.SENDER or payload.to_status != Status.ACCEPTED.value:
        return False
    task = await RecipientRepository(work.session).get(payload.task_id)
    if task is None or task.status not in ACCEPTED:
        return False
    referral = await ReferralRepository(work.session).get(task.referral_id)
    if referral is None or not referral.details.get("invitation"):
        return False
    meetings = MeetingRepository(work.session)
    meeting = await meetings.get(str(referral.details.get("meeting_id")))
    if meeting is None:
        return False
    # The lock record_plan takes: a plan being recorded now is committed before it is read
    # here, or it reads this acceptance (PostgreSQL's read committed would let both miss).
    await meetings.lock(meeting.follow_up_of or meeting.id)
    plan = await PlanRepository(work.session).get(meeting.follow_up_of or meeting.id)
    if plan is None or plan.owner_orgnr != work.member:
        return False
    if any(v["orgnr"] == task.orgnr and v["unit_id"] == task.unit_id for v in plan.viewers):
        return False
    plan.plan_version += 1
    await work.session.flush()
    await _share(work, clients, plan)
    return True

"""Plans: the outcome of a meeting, owned by the convener's member — the person's own
goals and the others, an *ordered* list of actions (:mod:`.actions`), the coordinating
units (one per huvudman) and the follow-up date.

Its parties are the convener, every participant that **accepted** its invitation, the
vårdkedjeremiss's sender, the coordinating units and every unit owning an action — invited
or not. Every time it is shared (recorded, revised, an action's step, a late acceptance)
the owner's consent service decides again, for each party unit of another member, whether
the plan may go there *now*; only those it allows get it, each with its basis.

An action's steps are taken by the unit that owns it (a coordinating unit for an actor
outside the federation); a coordinating unit revises the plan. At another member both
travel to the owner as requests; the owner checks and records them and shares the plan
again, and every member tells each of its units taking part of the step — no action ends
or fails to start unnoticed (domain problem 5). The other members' copies:
:mod:`.plan_copies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.referral.access import (
    PROTECTED_ROLE,
    StaleVersion,
    TransitionNotAllowed,
    caller_of,
    require_unit,
)
from services.referral.actions import (
    ENDED,
    FINAL,
    STEPS,
    changed,
    may_step,
    newly_assigned,
    owner_of,
    recorded,
    stepped,
)
from services.referral.codes import Actor, Status
from services.referral.meetings import get_meeting
from services.referral.models import Meeting, Plan, PlanBasis, PlanNotice
from services.referral.repository import (
    ConsentNarrowingRepository,
    ConsentTombstoneRepository,
    IncomingRepository,
    MeetingRepository,
    PlanActionRepository,
    PlanBasisRepository,
    PlanRepository,
    RecipientRepository,
    ReferralRepository,
)
from services.referral.schemas import ActionStep, ActionStepIn, PlanIn
from services.referral.siblings import Clients, Question, claim, decide
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.domain.kinds import ReferralKind, spec
from shared.identity.auth import Caller
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    PLAN_ACTION_CHANGED_V1,
    PLAN_ACTION_STEP_REQUESTED_V1,
    PLAN_REVISION_REQUESTED_V1,
    PLAN_SHARED_V1,
    PlanActionChangedV1,
    PlanActionStepRequestedV1,
    PlanBasisV1,
    PlanRevisionRequestedV1,
    PlanSharedV1,
    ReferralTransitionedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import require_sender
from shared.web.errors import Forbidden, InvalidInput, NotFound

# An invitation in one of these states was accepted: its unit sees the plan.
ACCEPTED = frozenset({Status.ACCEPTED.value, Status.IN_PROGRESS.value, Status.COMPLETED.value})
# The information category a plan is shared as (the consent must cover it).
PLAN_CATEGORIES = ["plan"]
ACTIVE, WITHDRAWN = "active", "withdrawn"


PlanNotFound = NotFound.kind("plan-not-found", "No such plan visible to your unit")
ActionNotFound = NotFound.kind("action-not-found", "No such action in the plan")
NotActionOwner = Forbidden.kind(
    "not-action-owner", "Only the unit owning the action takes its steps"
)
NotCoordinator = Forbidden.kind("not-coordinator", "Only a coordinating unit of the plan does this")


def plan_referral_kind(plan_kind: str) -> ReferralKind:
    """The referral kind a plan is shared as (its consent purpose): a remissmöte's plan as
    its vårdkedjeremiss, every other plan as a SIP. (A samordningsmöte's invitations have
    their own purpose; the plan keeps its own.)"""
    return ReferralKind.VARDKEDJEREMISS if plan_kind == "remissmote" else ReferralKind.SIP_KALLELSE


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
    return Question(
        personnummer=personnummer,
        kind=plan_referral_kind(plan_kind),
        categories=PLAN_CATEGORIES,
        sender=owner,
        recipient=viewer,
        legal_basis=legal_basis,
        arrived_from=arrived_from,
    )


def plan_purpose(plan_kind: str) -> str:
    """The consent purpose a plan is shared for (that of the kind its share asks about)."""
    return spec(plan_referral_kind(plan_kind)).purpose


async def heard_ended(work: Work, consent_id: str | None, plan_kind: str) -> bool:
    """Whether this service heard the consent end, or heard the plan's purpose withdrawn
    from it (its consent service may lag behind either)."""
    if consent_id is None:
        return False
    if await ConsentTombstoneRepository(work.session).get(consent_id) is not None:
        return True
    narrowed = await ConsentNarrowingRepository(work.session).get(consent_id)
    return narrowed is not None and plan_purpose(plan_kind) in narrowed.withdrawn_purposes


@dataclass(frozen=True)
class _Party:
    orgnr: str
    unit_id: str
    claim: dict[str, Any] | None  # a legal basis to state again, or None (a consent)

    def ref(self) -> dict[str, str]:
        return {"orgnr": self.orgnr, "unit_id": self.unit_id}


async def _parties(work: Work, plan: Plan) -> list[_Party]:
    """Who takes part in the plan: the convener of each of its meetings, every participant
    that accepted its invitation (the task's status as the receiver last reported it), a
    vårdkedjeremiss's sender, the coordinating units and every unit owning an action."""
    me = work.member
    recipients = RecipientRepository(work.session)
    incoming = IncomingRepository(work.session)
    seen: dict[tuple[str, str], _Party] = {}
    for meeting in await MeetingRepository(work.session).of_plan(plan.id):
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
    owners = [owner_of(a) for a in plan.actions]
    for orgnr, unit_id in [(c["orgnr"], c["unit_id"]) for c in plan.coordinators] + [
        o for o in owners if o is not None
    ]:
        seen.setdefault((orgnr, unit_id), _Party(orgnr, unit_id, None))
    return list(seen.values())


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
        own_goals=[],
        goals=[],
        actions=[],
        coordinators=[],
        viewers=[],
        plan_version=0,
    )


def _not_in_past(work: Work, data: PlanIn) -> None:
    """A follow-up date before today (Swedish time) is bad input (422, nothing stored)."""
    if data.follow_up_date < to_local(work.now).date():
        raise InvalidInput.field("follow_up_date", "not_in_past", "the follow-up date has passed")


def _apply(plan: Plan, data: PlanIn) -> None:
    """The plan's content is now ``data`` (actions keep their ids and steps, :mod:`.actions`)."""
    plan.own_goals = list(data.own_goals)
    plan.goals = list(data.goals)
    plan.actions = recorded(plan.actions, data)
    plan.coordinators = [c.model_dump() for c in data.coordinators]
    plan.follow_up_date = data.follow_up_date
    if data.attendance is not None:
        plan.attendance = data.attendance.model_dump(mode="json")
    if data.person_agrees is not None:
        plan.person_agrees = data.person_agrees


async def record_plan(
    work: Work, clients: Clients, *, meeting_id: str, data: PlanIn, expected_version: int | None
) -> tuple[Plan, bool]:
    """Records (or replaces) the meeting's plan and shares it with every party unit of
    another member that the consent service allows now. Actions keep their ids and steps
    when a plan is revised with the same owner and intervention at a position. A follow-up
    a coordinating unit held about another member's plan revises it there (False: sent)."""
    meeting = await get_meeting(work, meeting_id)
    _not_in_past(work, data)
    # A follow-up meeting revises the plan of the first meeting. The first meeting's row
    # is locked: an acceptance arriving now waits, then sees this plan (share_on_acceptance).
    await MeetingRepository(work.session).lock(meeting.follow_up_of or meeting.id)
    plan = await PlanRepository(work.session).get(meeting.follow_up_of or meeting.id)
    if expected_version is not None and (plan is None or plan.plan_version != expected_version):
        raise StaleVersion(f"the plan is at version {plan.plan_version if plan else 0}")
    _held(meeting, data)
    if plan is not None and plan.owner_orgnr != work.member:
        return await revise_plan(
            work,
            clients,
            plan_id=plan.id,
            data=data,
            expected_version=plan.plan_version if expected_version is None else expected_version,
        )
    if plan is None:
        plan = _new_plan(work, meeting)
        work.session.add(plan)
    before = [dict(a) for a in plan.actions]
    _apply(plan, data)
    await _changed(work, clients, plan, before)
    return plan, True


def _held(meeting: Meeting, data: PlanIn) -> None:
    """The meeting was held: who took part, and whether the person agrees."""
    meeting.status = "held"
    if data.attendance is not None:
        meeting.attendance = data.attendance.model_dump(mode="json")
    meeting.person_agrees = data.person_agrees


async def _changed(work: Work, clients: Clients, plan: Plan, before: list[dict[str, Any]]) -> None:
    """A plan this member owns changed: a new version, its action rows written again,
    shared with every party allowed, and this member's units told."""
    plan.plan_version += 1
    await work.session.flush()
    await PlanActionRepository(work.session).replace(plan)
    await _share(work, clients, plan)
    await tell_units(work, plan, before)


def is_coordinator(plan: Plan, orgnr: str, unit_id: str | None) -> bool:
    """Whether the unit is one of the plan's coordinating units."""
    return any(c["orgnr"] == orgnr and c["unit_id"] == unit_id for c in plan.coordinators)


async def revise_plan(
    work: Work, clients: Clients, *, plan_id: str, data: PlanIn, expected_version: int
) -> tuple[Plan, bool]:
    """A coordinating unit revises the plan (the version it read, If-Match). At the plan's
    owner the new version is recorded and shared now; at another member the revision goes
    to the owner, which applies it if nothing changed since. Returns the plan and whether it
    was recorded here (False: requested)."""
    caller = caller_of(work)
    unit = require_unit(caller)
    plan = await open_plan(work, plan_id)
    if not is_coordinator(plan, caller.org, unit):
        raise NotCoordinator("only a coordinating unit of the plan revises it")
    if plan.plan_version != expected_version:
        raise StaleVersion(f"the plan is at version {plan.plan_version}")
    _not_in_past(work, data)
    if plan.owner_orgnr == work.member:
        await MeetingRepository(work.session).lock(plan.id)
        before = [dict(a) for a in plan.actions]
        _apply(plan, data)
        await _changed(work, clients, plan, before)
        return plan, True
    await work.publish(
        topics.inbound(plan.owner_orgnr),
        PLAN_REVISION_REQUESTED_V1,
        PlanRevisionRequestedV1(
            plan_id=plan.id,
            by_orgnr=caller.org,
            by_unit_id=unit,
            based_on=expected_version,
            plan=data.model_dump(mode="json", exclude_none=True),
            at=work.now,
        ),
        subject=plan.id,
        key=plan.id,
    )
    return plan, False


async def apply_revision_request(
    work: Work, clients: Clients, event: CloudEvent, payload: PlanRevisionRequestedV1
) -> bool:
    """At the plan's owner: a coordinating unit of another member revised the plan. Applied
    when that unit still coordinates it and the plan is still at the version it revised;
    refused otherwise (``not_coordinator``, ``stale_version``, ``invalid_plan``)."""
    require_sender(event, payload.by_orgnr, "a member revises only through its own units")
    plan = await PlanRepository(work.session).get(payload.plan_id)
    if plan is None or plan.owner_orgnr != work.member:
        raise Reject("unknown_plan", "this member owns no such plan")
    if not is_coordinator(plan, payload.by_orgnr, payload.by_unit_id):
        raise Reject("not_coordinator", "the unit does not coordinate this plan")
    await MeetingRepository(work.session).lock(plan.id)
    if plan.plan_version != payload.based_on:
        raise Reject("stale_version", f"the plan is at version {plan.plan_version}")
    try:
        data = PlanIn.model_validate(payload.plan)
    except ValidationError as exc:
        raise Reject("invalid_plan", f"{exc.error_count()} invalid fields") from None
    before = [dict(a) for a in plan.actions]
    _apply(plan, data)
    await _changed(work, clients, plan, before)
    return True


async def _share(work: Work, clients: Clients, plan: Plan) -> None:
    """Decides for every party unit of another member whether the plan may go there now
    (this member's consent service, as for a referral; a consent heard to have ended never
    counts), and sends it to each member with an allowed unit, with that unit's basis. The
    plan's viewers become this member's own party units and the allowed ones."""
    me = work.member
    assert plan.personnummer is not None  # the owner's own plan keeps its person
    parties = await _parties(work, plan)
    owner = {"orgnr": me, "unit_id": plan.owner_unit_id}
    allowed: list[tuple[_Party, dict[str, Any]]] = []
    for party in parties:
        if party.orgnr == me:
            continue
        question = plan_question(plan.kind, plan.personnummer, owner, party.ref(), party.claim)
        answer = await decide(clients, work.settings, question)
        if not answer.allowed or answer.basis.get("kind") not in ("consent", "legal_basis"):
            continue
        if await heard_ended(work, answer.basis.get("consent_id"), plan.kind):
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
            own_goals=plan.own_goals,
            goals=plan.goals,
            actions=plan.actions,
            coordinators=plan.coordinators,
            follow_up_date=plan.follow_up_date,
            attendance=plan.attendance,
            person_agrees=plan.person_agrees,
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


async def _tell(work: Work, plan: Plan, action: dict[str, Any], unit_id: str, change: str) -> None:
    owner = owner_of(action)
    await work.publish(
        topics.internal(work.member),
        PLAN_ACTION_CHANGED_V1,
        PlanActionChangedV1(
            plan_id=plan.id,
            action_id=action["id"],
            unit_id=unit_id,
            change=change,
            owner_orgnr=owner[0] if owner else None,
            owner_unit_id=owner[1] if owner else None,
            outcome=action.get("outcome") if change == ENDED else None,
            at=work.now,
        ),
        subject=plan.id,
        key=plan.id,
    )


async def tell_units(work: Work, plan: Plan, before: list[dict[str, Any]]) -> None:
    """This member's units hear what changed since ``before``: a unit owning an action that
    is new to it, that it was assigned; every unit of this member taking part in the plan,
    each step an action took (notify turns them into notifications). An ended or cancelled
    action's notice is kept (the indicator "ended without notice" counts the missing)."""
    me = work.member
    own_units = [v["unit_id"] for v in plan.viewers if v["orgnr"] == me]
    for action in newly_assigned(before, plan.actions):
        if action["orgnr"] == me and action["unit_id"] in own_units:
            await _tell(work, plan, action, action["unit_id"], "assigned")
    for action in changed(before, plan.actions):
        for unit_id in own_units:
            if action["status"] in FINAL:
                work.session.add(
                    PlanNotice(plan_id=plan.id, action_id=action["id"], unit_id=unit_id)
                )
            await _tell(work, plan, action, unit_id, action["status"])


def can_view(caller: Caller, plan: Plan) -> bool:
    """Only the plan's party units (as :func:`_parties` finds them; at another member, those
    its consent service allowed) see it; a protected identity's plan only with the role."""
    if plan.protected_identity and not caller.has_role(PROTECTED_ROLE):
        return False
    return any(v["orgnr"] == caller.org and v["unit_id"] == caller.unit for v in plan.viewers)


async def get_plan(work: Work, plan_id: str) -> Plan:
    """A plan the caller's unit is a viewer of."""
    plan = await PlanRepository(work.session).get(plan_id)
    if plan is None or not can_view(caller_of(work), plan):
        raise PlanNotFound("no such plan visible to your unit")
    return plan


async def open_plan(work: Work, plan_id: str) -> Plan:
    """A plan the caller sees whose copy is not closed."""
    plan = await get_plan(work, plan_id)
    if plan.status == WITHDRAWN:
        raise TransitionNotAllowed("the plan's basis has ended: this copy is closed")
    return plan


@dataclass(frozen=True)
class _StepBy:
    """A step on an action, as the unit taking it said it."""

    action_id: str
    orgnr: str
    unit_id: str
    step: ActionStepIn


def _check_step(plan: Plan, by: _StepBy) -> dict[str, Any]:
    """The action, when ``by`` may take its step now; else the problem (404, 403, 409)."""
    action = next((a for a in plan.actions if a["id"] == by.action_id), None)
    if action is None:
        raise ActionNotFound("no such action in the plan")
    if not may_step(action, (by.orgnr, by.unit_id), plan.coordinators):
        raise NotActionOwner(
            "only the unit owning the action takes its steps (a coordinating unit for an "
            "outside actor)"
        )
    allowed = STEPS[action["status"]]
    if by.step.to.value not in allowed:
        raise TransitionNotAllowed(
            f"{action['status']} → {by.step.to.value} is not allowed; allowed: "
            f"{', '.join(allowed) or 'none'}",
            allowed=list(allowed),
        )
    return action


async def _step_in_owned_plan(work: Work, clients: Clients, plan: Plan, by: _StepBy) -> None:
    """Records a step in a plan this member owns, and shares the plan."""
    action = _check_step(plan, by)
    before = [dict(a) for a in plan.actions]
    plan.actions = [stepped(a, by.step, work.now) if a is action else dict(a) for a in plan.actions]
    await _changed(work, clients, plan, before)


async def step_action(
    work: Work,
    clients: Clients,
    *,
    plan_id: str,
    action_id: str,
    data: ActionStepIn,
    expected_version: int,
) -> tuple[Plan, bool]:
    """The unit owning an action (a coordinating unit, for an outside actor) starts, ends
    or cancels it, on the plan version it read. At the plan's owner the step is recorded and
    every party told now; at another member it goes to the owner, which records it and shares
    the plan (True: recorded here)."""
    caller = caller_of(work)
    unit = require_unit(caller)
    plan = await open_plan(work, plan_id)
    if plan.plan_version != expected_version:
        raise StaleVersion(f"the plan is at version {plan.plan_version}")
    by = _StepBy(action_id, caller.org, unit, data)
    if plan.owner_orgnr == work.member:
        await _step_in_owned_plan(work, clients, plan, by)
        return plan, True
    _check_step(plan, by)
    await work.publish(
        topics.inbound(plan.owner_orgnr),
        PLAN_ACTION_STEP_REQUESTED_V1,
        PlanActionStepRequestedV1(
            plan_id=plan.id,
            action_id=action_id,
            by_orgnr=caller.org,
            by_unit_id=unit,
            step=data.to.value,
            outcome=data.outcome,
            note=data.note,
            reason=data.reason,
            at=work.now,
        ),
        subject=plan.id,
        key=plan.id,
    )
    return plan, False


async def apply_step_request(
    work: Work, clients: Clients, event: CloudEvent, payload: PlanActionStepRequestedV1
) -> bool:
    """At the plan's owner: another member's unit took a step on an action; recorded when
    that unit may take it from the action's status now (else refused: ``not_allowed``)."""
    require_sender(event, payload.by_orgnr, "a member takes steps only through its own units")
    plan = await PlanRepository(work.session).get(payload.plan_id)
    if plan is None or plan.owner_orgnr != work.member:
        raise Reject("unknown_plan", "this member owns no such plan")
    try:
        step = ActionStepIn(
            to=ActionStep(payload.step),
            outcome=payload.outcome,
            note=payload.note,
            reason=payload.reason,
        )
    except ValidationError:
        raise Reject("invalid_step", "the step lacks its outcome or reason") from None
    await MeetingRepository(work.session).lock(plan.id)
    try:
        await _step_in_owned_plan(
            work,
            clients,
            plan,
            _StepBy(payload.action_id, payload.by_orgnr, payload.by_unit_id, step),
        )
    except (ActionNotFound, NotActionOwner, TransitionNotAllowed) as exc:
        raise Reject("not_allowed", exc.detail or exc.title) from None
    return True


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

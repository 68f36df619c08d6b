"""Plan copies: a plan as another member (a party) holds it.

The receiving member checks its own copy of the basis on arrival, for each of its viewer
units, and refuses a plan without one (``no_basis``). The first member to share a plan id
owns it: a plan event of another member for it is refused (``not_owner``), so versions
only move forward from the owner. When a consent a copy rests on ends, the copy is
closed: it keeps no personnummer and no free text (ADR 0021).
"""

from __future__ import annotations

from collections.abc import Collection

from services.referral.models import Plan, PlanBasis
from services.referral.plans import (
    ACTIVE,
    WITHDRAWN,
    heard_ended,
    plan_purpose,
    plan_question,
    tell_units,
)
from services.referral.repository import (
    PlanActionRepository,
    PlanBasisRepository,
    PlanRepository,
)
from services.referral.siblings import Clients, claim, decide
from shared.data.work import Work
from shared.identity.person import member_secret, person_key
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import PlanSharedV1
from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer, require_owner, require_sender


async def _allowed_viewers(
    work: Work, clients: Clients, event: CloudEvent, payload: PlanSharedV1
) -> list[tuple[dict[str, str], str | None]]:
    """This member's viewer units that its own consent service allows the plan to now, each
    with the consent it rests on (None: a legal basis)."""
    me = work.member
    stated = {(b.orgnr, b.unit_id): b for b in payload.bases}
    owner = {"orgnr": payload.owner_orgnr, "unit_id": payload.owner_unit_id}
    allowed: list[tuple[dict[str, str], str | None]] = []
    for viewer in payload.viewers:
        if viewer.get("orgnr") != me:
            continue
        claimed = stated.get((me, viewer.get("unit_id", "")))
        if claimed is not None and await heard_ended(work, claimed.consent_id, payload.kind):
            continue
        question = plan_question(
            payload.kind,
            payload.personnummer,
            owner,
            {"orgnr": me, "unit_id": viewer["unit_id"]},
            claim(claimed.model_dump() if claimed is not None else None),
            arrived_from=event.sender_orgnr,
        )
        answer = await decide(clients, work.settings, question)
        consent_id = answer.basis.get("consent_id")
        if not answer.allowed or await heard_ended(work, consent_id, payload.kind):
            continue
        allowed.append((viewer, consent_id))
    return allowed


async def apply_plan_shared(
    work: Work, clients: Clients, event: CloudEvent, payload: PlanSharedV1
) -> bool:
    """At a party: checks the plan's owner and, with this member's own consent service
    (its copy of the consent, or the stated legal basis), the basis for each of its viewer
    units; keeps the newest copy for the units allowed and tells them of every action
    assigned to them and every step taken since the copy it had. Refuses a plan of another
    owner than the plan id's first (``not_owner``) and a plan no unit here has a basis for
    (``no_basis``)."""
    require_sender(event, payload.owner_orgnr, "only the plan's owner shares it")
    me = work.member
    plan = await PlanRepository(work.session).get(payload.plan_id)
    require_owner(
        None if plan is None else plan.owner_orgnr,
        payload.owner_orgnr,
        "the plan id belongs to another member",
    )
    if not any(v.get("orgnr") == me for v in payload.viewers):
        raise Reject("not_a_party", "this member has no unit among the plan's viewers")
    if any(b.kind == "same_member" for b in payload.bases):
        raise Reject("no_basis", "a plan from another member never rests on same_member")
    if plan is not None and not newer(plan.plan_version, payload.plan_version):
        return False
    allowed = await _allowed_viewers(work, clients, event, payload)
    if not allowed:
        raise Reject("no_basis", "no consent or legal basis allows this plan here now")
    before = [dict(a) for a in plan.actions] if plan is not None else []
    if plan is None:
        plan = Plan(id=payload.plan_id)
        work.session.add(plan)
    allowed_units = {v["unit_id"] for v, _ in allowed}
    plan.owner_orgnr = payload.owner_orgnr
    plan.owner_unit_id = payload.owner_unit_id
    plan.kind = payload.kind
    plan.personnummer = payload.personnummer
    plan.person_key = person_key(member_secret(work.settings), payload.personnummer)
    plan.protected_identity = payload.protected_identity
    plan.status = ACTIVE
    plan.own_goals = list(payload.own_goals)
    plan.goals = list(payload.goals)
    plan.actions = [dict(a) for a in payload.actions]
    plan.coordinators = [dict(c) for c in payload.coordinators]
    plan.follow_up_date = payload.follow_up_date
    plan.attendance = payload.attendance
    plan.person_agrees = payload.person_agrees
    plan.viewers = [
        dict(v) for v in payload.viewers if v.get("orgnr") != me or v["unit_id"] in allowed_units
    ]
    plan.plan_version = payload.plan_version
    await work.session.flush()
    await PlanBasisRepository(work.session).replace(
        plan.id,
        [
            PlanBasis(plan_id=plan.id, orgnr=me, unit_id=v["unit_id"], consent_id=c)
            for v, c in allowed
            if c is not None
        ],
    )
    await PlanActionRepository(work.session).replace(plan)
    await tell_units(work, plan, before)
    return True


def _close(plan: Plan) -> None:
    """A party's copy whose basis ended: marked withdrawn, with no personnummer, person key,
    goals, attendance or free text left (the actions keep their ids, owner units,
    interventions, dates and status; an outside actor's name is free text and goes)."""
    plan.status = WITHDRAWN
    plan.personnummer = None
    plan.person_key = None
    plan.own_goals = []
    plan.goals = []
    plan.attendance = None
    plan.person_agrees = None
    kept = (
        "id", "position", "intervention", "orgnr", "unit_id", "start_by", "end_by", "status",
        "started_at", "ended_at", "outcome",
    )  # fmt: skip
    plan.actions = [
        {k: a.get(k) for k in kept} | {"description": "", "outside_actor": None}
        for a in plan.actions
    ]


async def close_for_consent(
    work: Work, consent_id: str, *, purposes: Collection[str] | None = None
) -> int:
    """A consent ended (withdrawn or expired): every party's copy resting on it is closed
    (nothing about the person shown any more); at the owner, the units that had the plan on
    it stop being viewers (the next share decides again). With ``purposes`` (some purposes
    withdrawn, the consent still in force for the rest) only the plans shared for one of
    them. Returns the copies closed."""
    session = work.session
    bases = PlanBasisRepository(session)
    plans = PlanRepository(session)
    rows = await bases.on_consent(consent_id)
    closed = 0
    for plan_id in sorted({r.plan_id for r in rows}):
        plan = await plans.get(plan_id)
        if plan is None or (purposes is not None and plan_purpose(plan.kind) not in purposes):
            continue
        if plan.owner_orgnr == work.member:
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

"""HTTP API of meetings (remissmöte, SIP) and their plans."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status

from services.referral import meetings, service
from services.referral.meetings import MeetingNotFound, PlanNotFound
from services.referral.models import Meeting, Plan
from services.referral.router import Reader, Writer
from services.referral.schemas import (
    ActionEndIn,
    MeetingCreate,
    MeetingOut,
    ParticipantOut,
    PlanIn,
    PlanOut,
)
from services.referral.service import NoBasis, NoUnitClaim, StaleVersion, TransitionNotAllowed
from shared.identity.auth import Caller
from shared.identity.person import member_secret
from shared.web.app import Ctx, DbSession
from shared.web.clients import ServiceCallFailed
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import etag, if_match_version

meetings_router = APIRouter(prefix="/v1", tags=["meetings and plans"])
Id = Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$")]
IfMatchOptional = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="the plan's `ETag`: when given, a plan changed since is not overwritten (412)",
    ),
]


async def _meeting_out(session: DbSession, meeting: Meeting) -> MeetingOut:
    parts = await meetings.participant_status(session=session, meeting=meeting)
    return MeetingOut(
        id=meeting.id,
        kind=meeting.kind,
        convener_unit_id=meeting.convener_unit_id,
        origin_task_id=meeting.origin_task_id,
        follow_up_of=meeting.follow_up_of,
        person={
            "personnummer": meeting.personnummer,
            "protected_identity": meeting.protected_identity,
        },
        at=meeting.at,
        place=meeting.place,
        video_link=meeting.video_link,
        person_invited=meeting.person_invited,
        relatives=meeting.relatives,
        participants=[ParticipantOut.model_validate(p) for p in parts],
        status=meeting.status,
        version=meeting.version,
    )


def _plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        owner_orgnr=plan.owner_orgnr,
        owner_unit_id=plan.owner_unit_id,
        kind=plan.kind,
        person={"personnummer": plan.personnummer, "protected_identity": plan.protected_identity},
        status=plan.status,
        goals=plan.goals,
        actions=plan.actions,
        coordinator=plan.coordinator,
        follow_up_date=plan.follow_up_date,
        viewers=plan.viewers,
        version=plan.plan_version,
    )


async def _audit(
    ctx: Ctx, session: DbSession, caller: Caller, action: str, rid: str, pnr: str | None
) -> None:
    """An audit record of ``action`` on meeting or plan ``rid`` (``plan.*`` actions name
    the plan: a follow-up meeting's plan has the first meeting's id, not the meeting's)."""
    resource_type = action.split(".", 1)[0]  # "meeting" or "plan"
    await ctx.auditor.record_access(
        session, caller, action=action, person_id=pnr, resource_type=resource_type, resource_id=rid
    )


@meetings_router.post(
    "/meetings",
    status_code=status.HTTP_201_CREATED,
    response_model=MeetingOut,
    summary="Convene a remissmöte or a SIP meeting",
    description=(
        "The referral port convenes the joint referral meeting of a vårdkedjeremiss it has "
        "acknowledged (`kind: remissmote`, `origin_task_id`); any unit convenes a SIP "
        "(`kind: sip`, with the person). Every participant unit gets an invitation in its "
        "own inbox, checked against the consent like a referral (all or nothing), and "
        "answers it: accept, or decline with a reason and perhaps `proposed_at`. "
        "**Drug-free rule**: for a remissmöte where the person is not drug-free and a "
        "planned treatment requires it, a unit offering abstinence treatment or tapering "
        "must be among the participants (422 `drug_free_unit_required`). Relatives' "
        "contact details stay with the convener. Scope `referral:write`."
    ),
    responses=problem_responses(Forbidden, NoBasis, NoUnitClaim, ServiceCallFailed),
)
async def convene(
    body: MeetingCreate, caller: Writer, session: DbSession, ctx: Ctx, response: Response
) -> MeetingOut:
    meeting = await meetings.convene(
        session=session,
        outbox=ctx.outbox,
        clients=service.clients_of(ctx),
        settings=ctx.settings,
        secret=member_secret(ctx.settings),
        caller=caller,
        data=body,
    )
    await _audit(ctx, session, caller, "meeting.convene", meeting.id, meeting.personnummer)
    response.headers["Location"] = f"/v1/meetings/{meeting.id}"
    return await _meeting_out(session, meeting)


@meetings_router.get(
    "/meetings/{meeting_id}",
    response_model=MeetingOut,
    summary="A meeting your unit convened, with every participant's answer",
    description="Time, place, participants and their answers. Scope `referral:read`.",
    responses=problem_responses(Forbidden, MeetingNotFound, NoUnitClaim),
)
async def get_meeting(meeting_id: Id, caller: Reader, session: DbSession, ctx: Ctx) -> MeetingOut:
    service.require_unit(caller)
    meeting = await meetings.get_meeting(session=session, caller=caller, meeting_id=meeting_id)
    await _audit(ctx, session, caller, "meeting.read", meeting.id, meeting.personnummer)
    return await _meeting_out(session, meeting)


@meetings_router.put(
    "/meetings/{meeting_id}/plan",
    response_model=PlanOut,
    summary="Record the meeting's plan",
    description=(
        "The outcome of the meeting: goals, the **ordered** actions (each owned by a unit, "
        "with an optional due date), the coordinating function and the follow-up date. "
        "Shared at once with every participant that **accepted** its invitation and, for a "
        "remissmöte, with the vårdkedjeremiss's sender — each unit of another member only "
        "if the consent service allows the category `plan` for the purpose now (the "
        "answer's `viewers` are those that have it; a participant that accepts later gets it "
        "then). Recording again revises it (actions keep their status where owner and "
        "intervention are unchanged at a position). Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden, MeetingNotFound, StaleVersion, NoUnitClaim, ServiceCallFailed
    ),
)
async def record_plan(
    meeting_id: Id,
    body: PlanIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatchOptional = None,
) -> PlanOut:
    service.require_unit(caller)
    plan = await meetings.record_plan(
        session=session,
        outbox=ctx.outbox,
        clients=service.clients_of(ctx),
        settings=ctx.settings,
        caller=caller,
        meeting_id=meeting_id,
        data=body,
        expected_version=if_match_version(if_match),
    )
    await _audit(ctx, session, caller, "plan.record", plan.id, plan.personnummer)
    response.headers["ETag"] = etag(plan.plan_version)
    return _plan_out(plan)


@meetings_router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    summary="A plan your unit takes part in",
    description=(
        "The plan as its owner last shared it: visible to the convener, every participant "
        "unit that accepted and the vårdkedjeremiss's sender, at each of their members (a "
        "person with protected identity: only with the role `protected_identity`). A "
        "party's copy whose basis ended has `status: withdrawn` and shows nothing about "
        "the person (no personnummer, goals or free text). Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, PlanNotFound, NoUnitClaim),
)
async def get_plan(
    plan_id: Id, caller: Reader, session: DbSession, ctx: Ctx, response: Response
) -> PlanOut:
    service.require_unit(caller)
    plan = await meetings.get_plan(session=session, caller=caller, plan_id=plan_id)
    await _audit(ctx, session, caller, "plan.read", plan.id, plan.personnummer)
    response.headers["ETag"] = etag(plan.plan_version)
    return _plan_out(plan)


@meetings_router.post(
    "/plans/{plan_id}/actions/{action_id}/end",
    response_model=PlanOut,
    summary="End an action your unit owns",
    description=(
        "Completed, cancelled or replaced. Only the unit owning the action ends it; every "
        "other party is told (their units get a notification) — no action ends unnoticed. "
        "Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden, PlanNotFound, TransitionNotAllowed, InvalidInput, ServiceCallFailed
    ),
)
async def end_action(
    plan_id: Id, action_id: Id, body: ActionEndIn, caller: Writer, session: DbSession, ctx: Ctx
) -> PlanOut:
    plan = await meetings.end_action(
        session=session,
        outbox=ctx.outbox,
        clients=service.clients_of(ctx),
        settings=ctx.settings,
        caller=caller,
        plan_id=plan_id,
        action_id=action_id,
        data=body,
    )
    await _audit(ctx, session, caller, "plan.end_action", plan.id, plan.personnummer)
    return _plan_out(plan)

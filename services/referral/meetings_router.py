"""HTTP API of meetings (remissmöte, SIP) and their plans: convene, read, record the
plan, read a plan, end an action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status

from services.referral import meetings, plans
from services.referral.access import NoBasis, NoUnitClaim, StaleVersion, TransitionNotAllowed
from services.referral.api import Reader, Writer, work_of
from services.referral.meetings import MeetingNotFound
from services.referral.models import Meeting, Plan
from services.referral.plans import PlanNotFound
from services.referral.schemas import (
    ActionEndIn,
    MeetingCreate,
    MeetingOut,
    ParticipantOut,
    PlanIn,
    PlanOut,
)
from services.referral.siblings import clients_of
from shared.data.work import Work
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


async def _meeting_out(work: Work, meeting: Meeting) -> MeetingOut:
    parts = await meetings.participant_status(work, meeting)
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


async def _plan_answer(
    ctx: Ctx, work: Work, action: str, plan: Plan, response: Response | None = None
) -> PlanOut:
    """The plan, audited as ``action`` (with its ``ETag`` when ``response`` is given)."""
    await _audit(ctx, work, action, plan)
    if response is not None:
        response.headers["ETag"] = etag(plan.plan_version)
    return _plan_out(plan)


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


async def _audit(ctx: Ctx, work: Work, action: str, row: Meeting | Plan) -> None:
    """An audit record of ``action`` on a meeting or plan (``plan.*`` actions name the
    plan: a follow-up meeting's plan has the first meeting's id, not the meeting's)."""
    assert work.caller is not None
    resource_type = action.split(".", 1)[0]  # "meeting" or "plan"
    await ctx.auditor.record_access(
        work.session,
        work.caller,
        action=action,
        person_id=row.personnummer,
        resource_type=resource_type,
        resource_id=row.id,
    )


@meetings_router.post(
    "/meetings",
    status_code=status.HTTP_201_CREATED,
    response_model=MeetingOut,
    summary="Convene a remissmöte or a SIP meeting",
    description=(
        "The referral port convenes the joint referral meeting of a vårdkedjeremiss it has "
        "acknowledged (`kind: remissmote`, `origin_task_id`); any unit convenes a SIP "
        "(`kind: sip`, with the person). **Suggested units**: a remissmöte without "
        "`participants` invites the units the vårdkedjeremiss's sender suggests (its "
        '`suggested_participants`, e.g. `{"kind": "remissmote", "origin_task_id": '
        '"…", "at": "2026-12-03T13:00:00+01:00", "video_link": '
        '"https://mote.example/remissmote-4711"}`); with `participants` and '
        "`invite_suggested: true` it invites both. A suggested unit that cannot be invited "
        "is named in a 422 on `invite_suggested`. Every participant unit gets an invitation in its "
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
    work = work_of(ctx, session, caller, needs_unit=False)
    meeting = await meetings.convene(work, clients_of(ctx), body)
    await _audit(ctx, work, "meeting.convene", meeting)
    response.headers["Location"] = f"/v1/meetings/{meeting.id}"
    return await _meeting_out(work, meeting)


@meetings_router.get(
    "/meetings/{meeting_id}",
    response_model=MeetingOut,
    summary="A meeting your unit convened, with every participant's answer",
    description=(
        "Time, place, participants and their answers. An invited unit that forwarded its "
        "invitation shows `forwarded` and where it went (`forwarded_to`: the unit the "
        "meeting invited in its place, a participant with its own task and answer and "
        "`forwarded_from`; or `refused` with why the meeting could not invite it). Scope "
        "`referral:read`."
    ),
    responses=problem_responses(Forbidden, MeetingNotFound, NoUnitClaim),
)
async def get_meeting(meeting_id: Id, caller: Reader, session: DbSession, ctx: Ctx) -> MeetingOut:
    work = work_of(ctx, session, caller)
    meeting = await meetings.get_meeting(work, meeting_id)
    await _audit(ctx, work, "meeting.read", meeting)
    return await _meeting_out(work, meeting)


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
    work = work_of(ctx, session, caller)
    plan = await plans.record_plan(
        work,
        clients_of(ctx),
        meeting_id=meeting_id,
        data=body,
        expected_version=if_match_version(if_match),
    )
    return await _plan_answer(ctx, work, "plan.record", plan, response)


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
    work = work_of(ctx, session, caller)
    plan = await plans.get_plan(work, plan_id)
    return await _plan_answer(ctx, work, "plan.read", plan, response)


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
    work = work_of(ctx, session, caller, needs_unit=False)
    plan = await plans.end_action(
        work, clients_of(ctx), plan_id=plan_id, action_id=action_id, data=body
    )
    return await _plan_answer(ctx, work, "plan.end_action", plan)

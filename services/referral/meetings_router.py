"""HTTP API of meetings (remissmöte, SIP): convene, read, and record the meeting's plan
(reading and working a plan after the meeting: :mod:`.plans_router`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status

from services.referral import meetings, plans
from services.referral.access import NoBasis, NoUnitClaim, StaleVersion
from services.referral.api import OverdueFilter, Reader, Writer, work_of
from services.referral.codes import Overdue
from services.referral.meetings import MeetingNotFound
from services.referral.models import Meeting
from services.referral.plans_router import accepted, audit, plan_answer
from services.referral.schemas import MeetingCreate, MeetingOut, ParticipantOut, PlanIn, PlanOut
from services.referral.siblings import clients_of
from shared.data.work import Work
from shared.web.app import Ctx, DbSession
from shared.web.clients import ServiceCallFailed
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import if_match_version

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


async def _meeting_out(
    work: Work, meeting: Meeting, *, overdue: Overdue | None = None
) -> MeetingOut:
    parts = await meetings.participant_status(work, meeting, overdue=overdue)
    return MeetingOut(
        id=meeting.id,
        kind=meeting.kind,
        convener_unit_id=meeting.convener_unit_id,
        origin_task_id=meeting.origin_task_id,
        follow_up_of=meeting.follow_up_of,
        for_referral_id=meeting.for_referral_id,
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


@meetings_router.post(
    "/meetings",
    status_code=status.HTTP_201_CREATED,
    response_model=MeetingOut,
    summary="Convene a remissmöte, a SIP meeting or a samordningsmöte",
    description=(
        "The referral port convenes the joint referral meeting of a vårdkedjeremiss it has "
        "acknowledged (`kind: remissmote`, `origin_task_id`); any unit convenes a SIP "
        "(`kind: sip`, with the person). A coordinating unit of a plan convenes its "
        "follow-ups (`follow_up_of`: the plan, also when another member owns it) and "
        "professional meetings without the person (`kind: samordningsmote`, purpose "
        "`vardkedjesamordning`). **Suggested units**: a remissmöte without "
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
        "must be among the participants (422 `drug_free_unit_required`). **Handover**: a "
        "SIP names the HVB notification or discharge planning it answers "
        "(`for_referral_id`: one a unit of your member sent about the same person, else 422 "
        "`not_an_hvb_notification_or_discharge_planning` or `not_the_referrals_person`); "
        "its sender then sees it (`linked_sip`, and a discharge planning's readiness from "
        "its plan), and an HVB notification's SIP deadline is met. Relatives' "
        "contact details stay with the convener. Scope `referral:write`."
    ),
    responses=problem_responses(Forbidden, NoBasis, NoUnitClaim, ServiceCallFailed),
)
async def convene(
    body: MeetingCreate, caller: Writer, session: DbSession, ctx: Ctx, response: Response
) -> MeetingOut:
    work = work_of(ctx, session, caller, needs_unit=False)
    meeting = await meetings.convene(work, clients_of(ctx), body)
    await audit(ctx, work, "meeting.convene", meeting)
    response.headers["Location"] = f"/v1/meetings/{meeting.id}"
    return await _meeting_out(work, meeting)


@meetings_router.get(
    "/meetings/{meeting_id}",
    response_model=MeetingOut,
    summary="A meeting your unit convened, with every participant's answer",
    description=(
        "Time, place, participants and their answers, each with its deadlines "
        "(`acknowledge_by`; once acknowledged, `answer_by`) and whether it is `overdue`. "
        "`overdue` lists only the participants past that deadline (`acknowledge`: not "
        "acknowledged; `answer`: acknowledged and not answered; `any`: either). An invited "
        "unit that forwarded its invitation shows `forwarded` and where it went "
        "(`forwarded_to`: the unit the meeting invited in its place, a participant with its "
        "own task and answer and `forwarded_from`; or `refused` with why the meeting could "
        "not invite it). Scope "
        "`referral:read`."
    ),
    responses=problem_responses(Forbidden, MeetingNotFound, NoUnitClaim),
)
async def get_meeting(
    meeting_id: Id, caller: Reader, session: DbSession, ctx: Ctx, overdue: OverdueFilter = None
) -> MeetingOut:
    work = work_of(ctx, session, caller)
    meeting = await meetings.get_meeting(work, meeting_id)
    await audit(ctx, work, "meeting.read", meeting)
    return await _meeting_out(work, meeting, overdue=overdue)


@meetings_router.put(
    "/meetings/{meeting_id}/plan",
    response_model=PlanOut,
    summary="Record the meeting's plan",
    description=(
        "The outcome of the meeting: the person's goals in their own words (`own_goals`) "
        "and the others, the **ordered** actions — each owned by a unit of any member or by "
        "an actor outside the federation named in words, with dates to start and to end by "
        "— the coordinating units (one per huvudman: a region's and a kommun's where both "
        "take part), the follow-up date (not in the past: 422 `not_in_past`), who took part "
        "and whether the person agrees. Shared at once with every party: the participants "
        "that **accepted** their invitation, a remissmöte's vårdkedjeremiss sender, the "
        "coordinating units and every unit owning an action, invited or not (it is told "
        "that the action is its own) — each unit of another member only if the consent "
        "service allows the category `plan` for the purpose now (the answer's `viewers` are "
        "those that have it; a participant that accepts later gets it then). Recording "
        "again revises it (actions keep their steps where owner and intervention are "
        "unchanged at a position); between meetings a coordinator revises it with `PUT "
        "/v1/plans/{id}`. A follow-up a coordinating unit held about a plan another member "
        "owns is sent there as a revision (202; the new version arrives as the plan). Scope "
        "`referral:write`."
    ),
    responses={
        202: {"description": "Sent to the plan's owner member, which records it"},
        **problem_responses(
            Forbidden, MeetingNotFound, StaleVersion, NoUnitClaim, InvalidInput, ServiceCallFailed
        ),
    },
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
    plan, here = await plans.record_plan(
        work,
        clients_of(ctx),
        meeting_id=meeting_id,
        data=body,
        expected_version=if_match_version(if_match),
    )
    accepted(response, here, plan.id)
    return await plan_answer(ctx, work, "plan.record", plan, response)

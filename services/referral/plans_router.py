"""HTTP API of plans after the meeting: read a plan, revise it (a coordinating unit), take
an action's steps (its owner), and the worklists of action owners and coordinators."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from services.referral import coordination, my_plan, plans
from services.referral.access import NoUnitClaim, StaleVersion, TransitionNotAllowed
from services.referral.actions import allowed_steps
from services.referral.api import IfMatch, Reader, Writer, work_of
from services.referral.coordination import ActionEntry
from services.referral.min_plan import render_html, render_pdf
from services.referral.models import Meeting, Plan
from services.referral.plans import ActionNotFound, NotActionOwner, NotCoordinator, PlanNotFound
from services.referral.schemas import (
    ActionItem,
    ActionOut,
    ActionStepIn,
    AttendanceOut,
    CoordinatedPlan,
    CoordinationOut,
    PlanIn,
    PlanOut,
    UnansweredInvitation,
)
from services.referral.siblings import clients_of
from shared.data.work import Work
from shared.web.app import Ctx, DbSession
from shared.web.clients import ServiceCallFailed
from shared.web.errors import Forbidden, InvalidInput, PreconditionRequired, problem_responses
from shared.web.etag import etag, required_if_match_version
from shared.web.fields import QueryBool

plans_router = APIRouter(prefix="/v1", tags=["meetings and plans"])
Id = Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$")]

STEP_PROBLEMS = (
    Forbidden,
    NoUnitClaim,
    NotActionOwner,
    PlanNotFound,
    ActionNotFound,
    TransitionNotAllowed,
    StaleVersion,
    PreconditionRequired,
    InvalidInput,
    ServiceCallFailed,
)


def _person(plan: Plan) -> dict[str, object]:
    return {"personnummer": plan.personnummer, "protected_identity": plan.protected_identity}


def _action_out(action: dict[str, object], allowed: list[str]) -> ActionOut:
    return ActionOut.model_validate(action | {"allowed_steps": allowed})


def plan_out(work: Work, plan: Plan) -> PlanOut:
    """The plan as the API shows it to the caller (its allowed steps on each action)."""
    caller = work.caller
    unit = (caller.org, caller.unit) if caller is not None and caller.unit else None
    return PlanOut(
        id=plan.id,
        owner_orgnr=plan.owner_orgnr,
        owner_unit_id=plan.owner_unit_id,
        kind=plan.kind,
        person=_person(plan),
        status=plan.status,
        own_goals=plan.own_goals,
        goals=plan.goals,
        actions=[
            ActionOut.model_validate(
                a | {"allowed_steps": allowed_steps(a, unit, plan.coordinators)}
            )
            for a in plan.actions
        ],
        coordinators=plan.coordinators,
        follow_up_date=plan.follow_up_date,
        attendance=AttendanceOut.model_validate(plan.attendance) if plan.attendance else None,
        person_agrees=plan.person_agrees,
        viewers=plan.viewers,
        version=plan.plan_version,
    )


async def audit(ctx: Ctx, work: Work, action: str, row: Meeting | Plan) -> None:
    """An audit record of ``action`` on a meeting or plan (``plan.*`` actions name the
    plan: a follow-up meeting's plan has the first meeting's id, not the meeting's)."""
    assert work.caller is not None
    await ctx.auditor.record_access(
        work.session,
        work.caller,
        action=action,
        person_id=row.personnummer,
        resource_type=action.split(".", 1)[0],  # "meeting" or "plan"
        resource_id=row.id,
    )


async def plan_answer(
    ctx: Ctx, work: Work, action: str, plan: Plan, response: Response | None = None
) -> PlanOut:
    """The plan, audited as ``action`` (with its ``ETag`` when ``response`` is given)."""
    await audit(ctx, work, action, plan)
    if response is not None:
        response.headers["ETag"] = etag(plan.plan_version)
    return plan_out(work, plan)


@plans_router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    summary="A plan your unit takes part in",
    description=(
        "The plan as its owner last shared it: visible to the convener, every participant "
        "unit that accepted, the vårdkedjeremiss's sender, the coordinating units and every "
        "unit owning an action — invited or not — at each of their members (a person with "
        "protected identity: only with the role `protected_identity`). Each action lists "
        "the `allowed_steps` your unit may take on it. A party's copy whose basis ended has "
        "`status: withdrawn` and shows nothing about the person (no personnummer, goals or "
        "free text). The `ETag` is the plan's version. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, PlanNotFound, NoUnitClaim),
)
async def get_plan(
    plan_id: Id, caller: Reader, session: DbSession, ctx: Ctx, response: Response
) -> PlanOut:
    work = work_of(ctx, session, caller)
    plan = await plans.get_plan(work, plan_id)
    return await plan_answer(ctx, work, "plan.read", plan, response)


def accepted(response: Response, recorded_here: bool, plan_id: str) -> None:
    """200 when the owner recorded it now; 202 when it went to the plan's owner."""
    if not recorded_here:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/v1/plans/{plan_id}"


class PrintFormat(enum.StrEnum):
    HTML = "html"
    PDF = "pdf"


@plans_router.get(
    "/plans/{plan_id}/min-plan",
    response_class=Response,
    summary="Print the person's own plan (Min plan)",
    description=(
        "The plan as the person reads it, in plain Swedish with no ids or codes: their own "
        "goals first, each action with who does it, when it starts and ends, where it "
        "stands and how to reach that function (its phone, functional e-mail, address and "
        "opening hours from the directory), the coordinating function, the next follow-up, "
        "who took part and whether the person agrees. `format=html` (default) for the "
        "browser and print, `pdf` (A4) as a download. With protected identity it prints no "
        "personnummer and no meeting place. Every unit that sees the plan may print it; "
        "audited as `plan.min_plan`. Scope `referral:read`."
    ),
    responses={
        200: {
            "description": "the person's plan",
            "content": {
                "text/html": {},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **problem_responses(Forbidden, PlanNotFound, TransitionNotAllowed, NoUnitClaim),
    },
)
async def min_plan(
    plan_id: Id,
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    format: Annotated[PrintFormat, Query(description="html or pdf")] = PrintFormat.HTML,
) -> Response:
    work = work_of(ctx, session, caller)
    plan = await plans.open_plan(work, plan_id)
    view = await my_plan.view_of(work, plan)
    await audit(ctx, work, "plan.min_plan", plan)
    if format is PrintFormat.PDF:
        pdf = await run_in_threadpool(render_pdf, view)  # CPU-bound
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="min-plan.pdf"'},
        )
    return Response(render_html(view), media_type="text/html; charset=utf-8")


@plans_router.put(
    "/plans/{plan_id}",
    response_model=PlanOut,
    summary="Revise a plan your unit coordinates",
    description=(
        "A coordinating unit revises the plan between meetings: goals, actions (an action "
        "keeps its id and steps where position, intervention and owner are unchanged), "
        "coordinators, the follow-up date (not in the past: 422 `not_in_past`). `If-Match` "
        "with the plan's `ETag` is required (412 if it changed, 428 if missing). When your "
        "member owns the plan the new version is recorded and shared with every party now "
        "(200); when another member owns it the revision goes to the owner, which applies it "
        "if the plan is still at that version (202; the new version arrives as the plan). "
        "Any other unit: 403 `not-coordinator`. Scope `referral:write`."
    ),
    status_code=status.HTTP_200_OK,
    responses={
        202: {"description": "Sent to the plan's owner member, which records it"},
        **problem_responses(
            Forbidden,
            NotCoordinator,
            NoUnitClaim,
            PlanNotFound,
            TransitionNotAllowed,
            StaleVersion,
            PreconditionRequired,
            InvalidInput,
            ServiceCallFailed,
        ),
    },
)
async def revise_plan(
    plan_id: Id,
    body: PlanIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> PlanOut:
    work = work_of(ctx, session, caller)
    plan, here = await plans.revise_plan(
        work,
        clients_of(ctx),
        plan_id=plan_id,
        data=body,
        expected_version=required_if_match_version(if_match),
    )
    accepted(response, here, plan.id)
    return await plan_answer(ctx, work, "plan.revise", plan, response)


@plans_router.post(
    "/plans/{plan_id}/actions/{action_id}/transitions",
    response_model=PlanOut,
    summary="Start, end or cancel an action your unit owns",
    description=(
        "An action is `planned`, then `started`, then `ended` (with its `outcome`: "
        "completed, replaced or interrupted) — or `cancelled` (with a `reason`) before it "
        "ends. Only the unit owning the action takes its steps (403 `not-action-owner`); an "
        "action of an actor outside the federation is stepped by a coordinating unit. Only "
        "the steps in the action's `allowed_steps` are allowed (409 lists them). `If-Match` "
        "with the plan's `ETag` is required (412 if it changed, 428 if missing). Every party "
        "of the plan is told (their units get a notification) — no action ends or fails to "
        "start unnoticed. When another member owns the plan the step goes to it (202) and "
        "comes back in the plan. Scope `referral:write`."
    ),
    responses={
        202: {"description": "Sent to the plan's owner member, which records it"},
        **problem_responses(*STEP_PROBLEMS),
    },
)
async def step_action(
    plan_id: Id,
    action_id: Id,
    body: ActionStepIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> PlanOut:
    work = work_of(ctx, session, caller)
    plan, here = await plans.step_action(
        work,
        clients_of(ctx),
        plan_id=plan_id,
        action_id=action_id,
        data=body,
        expected_version=required_if_match_version(if_match),
    )
    accepted(response, here, plan.id)
    return await plan_answer(ctx, work, f"plan.action_{body.to.value}", plan, response)


def _item(work: Work, entry: ActionEntry) -> ActionItem:
    return ActionItem(
        plan_id=entry.plan.id,
        plan_kind=entry.plan.kind,
        plan_owner_orgnr=entry.plan.owner_orgnr,
        plan_version=entry.plan.plan_version,
        person=_person(entry.plan),
        action=_action_out(entry.action, entry.allowed),
        overdue=entry.overdue,
    )


async def _audit_plans(ctx: Ctx, work: Work, action: str, rows: list[Plan]) -> None:
    for plan in {p.id: p for p in rows}.values():
        await audit(ctx, work, action, plan)


@plans_router.get(
    "/plan-actions",
    response_model=list[ActionItem],
    summary="The actions your unit owns",
    description=(
        "Every action your unit owns in a plan this member holds — whether or not your unit "
        "was invited to the meeting — with the person, the plan's version (for `If-Match`), "
        "the steps you may take and whether it is `overdue` (`start`: the date to start "
        "has passed; `end`: the date to end). `open=true` lists only planned and started "
        "ones, `overdue=true` only the overdue. Every plan read is audited. Scope "
        "`referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim, InvalidInput),
)
async def my_actions(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    open_only: Annotated[
        QueryBool, Query(alias="open", description="only planned and started actions")
    ] = False,
    overdue: Annotated[QueryBool, Query(description="only actions past a date")] = False,
) -> list[ActionItem]:
    work = work_of(ctx, session, caller)
    entries = await coordination.my_actions(work, only_open=open_only, only_overdue=overdue)
    await _audit_plans(ctx, work, "plan.worklist", [e.plan for e in entries])
    return [_item(work, e) for e in entries]


def _coordinated(plan: Plan) -> CoordinatedPlan:
    return CoordinatedPlan(
        id=plan.id,
        kind=plan.kind,
        owner_orgnr=plan.owner_orgnr,
        person=_person(plan),
        follow_up_date=plan.follow_up_date,
        version=plan.plan_version,
        open_actions=sum(a["status"] in ("planned", "started") for a in plan.actions),
    )


@plans_router.get(
    "/coordination",
    response_model=CoordinationOut,
    summary="The worklist of a coordinating unit",
    description=(
        "For a unit named as a plan's coordinating function: the plans it coordinates (of "
        "its own member and shared with it), every overdue action in them whoever owns it, "
        "the plans whose follow-up date has come while an action is still open, and the "
        "units that have not answered their invitation to a coming follow-up meeting "
        "convened here (`invitations_unanswered`; the convening unit is also alerted once "
        "one is past its deadline). From "
        "here the coordinator revises a plan (`PUT /v1/plans/{id}`), records an outside "
        "actor's steps, and convenes the follow-up. Every plan read is audited. Scope "
        "`referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim),
)
async def coordination_worklist(caller: Reader, session: DbSession, ctx: Ctx) -> CoordinationOut:
    work = work_of(ctx, session, caller)
    found = await coordination.coordination(work)
    await _audit_plans(ctx, work, "plan.coordination", found.plans)
    return CoordinationOut(
        plans=[_coordinated(p) for p in found.plans],
        actions_overdue=[_item(work, e) for e in found.actions_overdue],
        follow_ups_due=[_coordinated(p) for p in found.follow_ups_due],
        invitations_unanswered=[
            UnansweredInvitation(
                plan_id=u.meeting.follow_up_of or u.meeting.id,
                meeting_id=u.meeting.id,
                meeting_kind=u.meeting.kind,
                at=u.meeting.at,
                **{k: u.participant[k] for k in _UNANSWERED_FIELDS},
            )
            for u in found.invitations_unanswered
        ],
    )


_UNANSWERED_FIELDS = (
    "orgnr", "unit_id", "task_id", "status", "acknowledge_by", "answer_by", "overdue",
)  # fmt: skip

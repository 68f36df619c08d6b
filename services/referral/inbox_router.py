"""HTTP API of a unit's inbox and the closed loop: the worklist of incoming referrals, one
referral with the steps allowed now, taking a step, a task's history, and every referral
about one person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.referral import access, closed_loop, discharge_receiving, meetings, worklists
from services.referral.access import NoBasis, NoUnitClaim, ReferralNotFound
from services.referral.api import (
    STEP_PROBLEMS,
    Cursor,
    IfMatch,
    Limit,
    OverdueFilter,
    PersonReader,
    Reader,
    TaskId,
    UpdatedSince,
    Writer,
    audit,
    incoming_out,
    referral_out,
    sent_views,
    task_documents,
    work_of,
)
from services.referral.codes import Status
from services.referral.schemas import (
    IncomingOut,
    IncomingPage,
    PersonSearch,
    ReferralOut,
    TransitionIn,
    TransitionOut,
)
from services.referral.siblings import clients_of
from shared.domain.kinds import ReferralKind
from shared.web.app import Ctx, DbSession
from shared.web.clients import ServiceCallFailed
from shared.web.errors import Forbidden, problem_responses
from shared.web.etag import etag, required_if_match_version
from shared.web.pagination import decode_cursor, next_cursor

inbox_router = APIRouter(prefix="/v1", tags=["referrals"])


@inbox_router.get(
    "/incoming",
    response_model=IncomingPage,
    summary="Worklist: your unit's inbox of incoming referrals",
    description=(
        "The referrals filed in the caller's unit's own inbox (never a member-wide inbox), "
        "oldest first. Filter by `status`, `kind`, or `overdue` (`acknowledge`: delivered "
        "and not acknowledged by `acknowledge_by`; `answer`: acknowledged and not accepted "
        "or declined by `answer_by`; `any`: either; a task waiting for the sender's "
        "komplettering is neither), or `updated_since` (changed after it: arrived, or moved "
        "on, withdrawn or answered since). Each item shows both deadlines and "
        "whether it is `overdue`. Referrals about a person with protected identity are "
        "listed only for the role `protected_identity`. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim),
)
async def incoming(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    kind: Annotated[ReferralKind | None, Query()] = None,
    overdue: OverdueFilter = None,
    updated_since: UpdatedSince = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> IncomingPage:
    work = work_of(ctx, session, caller)
    page = await worklists.inbox_page(
        work,
        statuses=status_,
        kind=kind,
        overdue=overdue,
        updated_since=updated_since,
        after=decode_cursor(cursor),
        limit=limit,
    )
    items = []
    suggested = await meetings.suggestions(work, page.items)
    discharges = await discharge_receiving.received(work, page.items)
    for row in page.items:
        await audit(ctx, work, "incoming.list", row, row.id)
        items.append(incoming_out(work, row, suggested, discharges=discharges))
    return IncomingPage(items=items, next_cursor=next_cursor(page.rows, limit, str))


@inbox_router.get(
    "/incoming/{task_id}",
    response_model=IncomingOut,
    summary="One referral in your unit's inbox",
    description=(
        "The referral with the steps you may take now (`allowed_transitions`) and its "
        "`ETag` (send it as `If-Match` with a step). A vårdkedjeremiss shows the units its "
        "sender suggests for the remissmöte (`suggested_participants`, named as in this "
        "member's copy of the directory, and whether each can be invited): `POST "
        "/v1/meetings` without `participants` invites them. Its attached `documents` are "
        "listed (download each at its `href`). Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def get_incoming(
    task_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx, response: Response
) -> IncomingOut:
    work = work_of(ctx, session, caller)
    row = await access.get_incoming(work, task_id)
    await audit(ctx, work, "incoming.read", row, row.id)
    response.headers["ETag"] = etag(row.version)
    suggested = await meetings.suggestions(work, [row])
    discharges = await discharge_receiving.received(work, [row])
    documents = await task_documents(work, row)
    return incoming_out(work, row, suggested, documents, discharges=discharges)


@inbox_router.post(
    "/incoming/{task_id}/transitions",
    response_model=IncomingOut,
    summary="Take the next step with a referral your unit holds",
    description=(
        "acknowledge (kvittera; a kommun records its own case reference), ask the sending "
        "unit for more information instead of declining (komplettering: "
        "`information_requested` with a `question`, once acknowledged and never for an "
        "invitation; the task waits, overdue for nothing, until the sender answers and it "
        "comes back `acknowledged` with the answer in `komplettering` and `answer_by` moved "
        "on by the working days it waited), accept, decline "
        "(with a reason; the sender may revise and send again), forward (to another unit "
        "of this or another member: the basis is checked again and the documents the task "
        "holds go on with it, within this member's limits; a meeting invitation is "
        "forwarded through its meeting, which invites that unit in your place once the "
        "convener's consent check allows it: at once when the convener is of this member, "
        "else when your step reaches it), start (in_progress), "
        "complete (with an outcome), or return as wrongly sent (felsänd, with a reason). "
        "Completing or declining a referral (not an invitation) states its structured "
        "`result`: `decision` (granted, refused, referred_on, person_declined; declining "
        "grants nothing), the `intervention` and the day it `started_on`, a `text` note; "
        "`outcome` and `reason` stay the words the sender reads. "
        "Only the steps in `allowed_transitions` are allowed (409 lists them). `If-Match` "
        "with the referral's `ETag` is required (412 if it changed, 428 if missing). Every "
        "step is reported to the sender. Scope `referral:write`."
    ),
    responses=problem_responses(*STEP_PROBLEMS, NoBasis, ServiceCallFailed),
)
async def transition(
    task_id: TaskId,
    body: TransitionIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> IncomingOut:
    work = work_of(ctx, session, caller)
    row = await closed_loop.transition_incoming(
        work,
        clients_of(ctx),
        task_id=task_id,
        data=body,
        expected_version=required_if_match_version(if_match),
    )
    await audit(ctx, work, f"incoming.{body.to.value}", row, row.id)
    response.headers["ETag"] = etag(row.version)
    discharges = await discharge_receiving.received(work, [row])
    suggested = await meetings.suggestions(work, [row])
    return incoming_out(work, row, suggested, discharges=discharges)


@inbox_router.get(
    "/tasks/{task_id}/history",
    response_model=list[TransitionOut],
    summary="The history of a referral task",
    description=(
        "Every step of a task as this member saw it (the sending unit: its sent task; "
        "the receiving unit: its incoming one), oldest first. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def history(
    task_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx
) -> list[TransitionOut]:
    work = work_of(ctx, session, caller)
    row, steps = await worklists.task_history(work, task_id)
    await audit(ctx, work, "referral.history", row, task_id)
    return [TransitionOut.model_validate(t, from_attributes=True) for t in steps]


@inbox_router.post(
    "/person-search",
    response_model=list[ReferralOut | IncomingOut],
    summary="Every referral about a person, sent or received by this member",
    description=(
        "For staff with the scope `referral:person`: the person is named in the body, "
        "never in a URL. Every access is audited. Protected identities only with the "
        "role `protected_identity`."
    ),
    responses=problem_responses(Forbidden),
)
async def person_search(
    body: PersonSearch, caller: PersonReader, session: DbSession, ctx: Ctx
) -> list[ReferralOut | IncomingOut]:
    work = work_of(ctx, session, caller, needs_unit=False)
    sent, received = await worklists.about_person(work, body.personnummer)
    out: list[ReferralOut | IncomingOut] = []
    views = await sent_views(work, sent)
    for s in sent:
        await audit(ctx, work, "referral.person_search", s.referral, s.referral.id)
        names = await worklists.unit_names(work, s.recipients)
        out.append(referral_out(work, s, names, views=views))
    suggested = await meetings.suggestions(work, received)
    discharges = await discharge_receiving.received(work, received)
    for row in received:
        await audit(ctx, work, "incoming.person_search", row, row.id)
        out.append(incoming_out(work, row, suggested, discharges=discharges))
    return out

"""HTTP API of sending: send a referral, follow it (one, or the unit's worklist of sent
ones), withdraw it from a recipient, and answer a recipient's request for more information
(komplettering)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.referral import closed_loop, komplettering, sending, worklists
from services.referral.access import NoBasis, NoUnitClaim, ReferralNotFound
from services.referral.api import (
    STEP_PROBLEMS,
    Cursor,
    IfMatch,
    Limit,
    OverdueFilter,
    Reader,
    TaskId,
    UpdatedSince,
    Writer,
    audit,
    recipient_out,
    referral_out,
    sent_documents,
    sent_views,
    work_of,
)
from services.referral.attachments import AttachmentTooLarge
from services.referral.codes import Status
from services.referral.komplettering import NotTheSender
from services.referral.schemas import (
    InformationIn,
    OutgoingPage,
    RecipientOut,
    ReferralCreate,
    ReferralOut,
    WithdrawIn,
)
from services.referral.siblings import clients_of
from shared.domain.kinds import KINDS, ReferralKind, categories_table
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.clients import ServiceCallFailed
from shared.web.errors import Conflict, Forbidden, problem_responses
from shared.web.etag import etag, required_if_match_version
from shared.web.pagination import decode_cursor, next_cursor

sending_router = APIRouter(prefix="/v1", tags=["referrals"])


# The kinds and their blocks, as the kinds registry has them (shared/domain/kinds.py).
_KINDS_TEXT = ", ".join(s.label for s in KINDS.values())
_BLOCKS_TEXT = ", ".join(f"`{s.kind}`: `{s.details_field}`" for s in KINDS.values())


@sending_router.post(
    "/referrals",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralOut,
    summary="Send a referral or invitation from your unit",
    description=(
        f"Sends a referral or invitation ({_KINDS_TEXT}) from the caller's unit (the "
        "token's `unit`). Name the "
        "recipients (`recipients`: member and unit; each must be active and receive the "
        "kind) or let the directory choose (`resolve`: the person's kommun, with `needs`). "
        "For every recipient this member's consent service decides first: if any is "
        "refused, nothing is stored or sent and the 403 problem names the recipient and the "
        "missing basis. Otherwise the referral is stored with its basis and sent; its "
        "status per recipient follows in `GET /v1/referrals/{id}` (sent → delivered → "
        f"acknowledged → …). Give the block of details that belongs to the kind "
        f"({_BLOCKS_TEXT}). Documents your unit uploaded (`POST /v1/attachments`) go "
        "with it to every recipient when named in `attachment_ids` (413 over the limits of "
        "one referral). Send an `Idempotency-Key` to retry safely. Scope "
        "`referral:write`.\n\nWhat each kind shares (its information categories, which "
        "the consent to its purpose must cover) and on what it travels without consent:"
        f"\n\n{categories_table()}"
    ),
    responses=problem_responses(
        Forbidden, NoBasis, NoUnitClaim, Conflict, AttachmentTooLarge, ServiceCallFailed
    ),
)
async def send_referral(
    body: ReferralCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReferralOut | Response:
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/referrals", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    work = work_of(ctx, session, caller, needs_unit=False)
    referral, recipients = await sending.send_referral(work, clients_of(ctx), body)
    await audit(ctx, work, "referral.send", referral, referral.id)
    sent = worklists.Sent(referral, recipients)
    names = await worklists.unit_names(work, recipients)
    views = await sent_views(work, [sent])
    out = referral_out(work, sent, names, await sent_documents(work, referral), views=views)
    headers = {"Location": f"/v1/referrals/{referral.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@sending_router.get(
    "/referrals/{referral_id}",
    response_model=ReferralOut,
    summary="A referral your unit sent, with every recipient's status",
    description=(
        "The referral as sent, and per recipient: its task id, status (as the receiving "
        "unit last reported it), basis, deadlines (`acknowledge_by`; once acknowledged, "
        "`answer_by` to accept or decline) and whether it is `overdue`, reason, outcome, "
        "the structured `result` of a completed or declined task, the receiver's case "
        "reference, its rounds of `komplettering` (a question to your unit waits for its "
        "answer by `information_by`), and its attached `documents` (download each at its "
        "`href`). `{referral_id}` may also be the task id of one of its recipients (the "
        "id the receiving member knows it by). Only the sending unit sees it. Scope "
        "`referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def get_referral(
    referral_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx
) -> ReferralOut:
    work = work_of(ctx, session, caller)
    sent = await worklists.get_sent(work, referral_id)
    await audit(ctx, work, "referral.read", sent.referral, sent.referral.id)
    names = await worklists.unit_names(work, sent.recipients)
    views = await sent_views(work, [sent])
    documents = await sent_documents(work, sent.referral)
    return referral_out(work, sent, names, documents, views=views)


@sending_router.get(
    "/outgoing",
    response_model=OutgoingPage,
    summary="Worklist: the referrals your unit sent",
    description=(
        "Your unit's sent referrals, newest first, each with every recipient's status, "
        "deadlines (`acknowledge_by`, `answer_by`) and whether it is `overdue`. Filter by "
        "`status` (any recipient in it), `kind`, or `overdue` (any recipient past that "
        "deadline: `acknowledge`, not acknowledged by `acknowledge_by`; `answer`, "
        "acknowledged and not accepted or declined by `answer_by`; `information`, your "
        "unit's own: asked for more information and not answered by `information_by`; "
        "`any`, any of them), or `updated_since` (any recipient's status changed after it: "
        "poll for answers without a webhook). Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim),
)
async def outgoing(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    kind: Annotated[ReferralKind | None, Query()] = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    overdue: OverdueFilter = None,
    updated_since: UpdatedSince = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> OutgoingPage:
    work = work_of(ctx, session, caller)
    page = await worklists.sent_page(
        work,
        kind=kind,
        status=status_,
        overdue=overdue,
        updated_since=updated_since,
        after=decode_cursor(cursor),
        limit=limit,
    )
    names = await worklists.unit_names(work, [r for s in page.items for r in s.recipients])
    items = []
    views = await sent_views(work, page.items)
    for sent in page.items:
        await audit(ctx, work, "referral.list", sent.referral, sent.referral.id)
        items.append(referral_out(work, sent, names, views=views))
    return OutgoingPage(items=items, next_cursor=next_cursor(page.rows, limit, str))


@sending_router.post(
    "/referrals/{task_id}/withdraw",
    response_model=RecipientOut,
    summary="Withdraw a referral from one recipient",
    description=(
        "The sending unit withdraws its referral from the recipient whose task this is "
        "(`by_person: true` when the person declined, e.g. a kontaktbegäran). Allowed "
        "until the receiver closes it; the receiver confirms, or answers with the status "
        "the withdrawal came too late for. `If-Match` with the recipient's version is "
        "required. Scope `referral:write`."
    ),
    responses=problem_responses(*STEP_PROBLEMS),
)
async def withdraw(
    task_id: TaskId,
    body: WithdrawIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> RecipientOut:
    work = work_of(ctx, session, caller)
    recipient, referral = await closed_loop.withdraw(
        work,
        task_id=task_id,
        reason=body.reason,
        by_person=body.by_person,
        expected_version=required_if_match_version(if_match),
    )
    await audit(ctx, work, "referral.withdraw", referral, recipient.id)
    response.headers["ETag"] = etag(recipient.version)
    names = await worklists.unit_names(work, [recipient])
    return recipient_out(work, recipient, referral, names)


@sending_router.post(
    "/referrals/{referral_id}/recipients/{task_id}/information",
    response_model=RecipientOut,
    summary="Answer a recipient's request for more information (komplettering)",
    description=(
        "The receiving unit asked your unit a question instead of declining (the task is "
        "`information_requested`: the question is in its `komplettering`, and your unit's "
        "last day to answer in `information_by`). Answer with a `text`, documents your unit "
        "uploaded (`attachment_ids`, from `POST /v1/attachments`: they join the referral's "
        "documents and go to this recipient only; 413 over the limits of one referral), or "
        "both. The answer goes to the receiving unit and the task goes back to it "
        "(`acknowledged`): it goes on from there, its deadline to accept or decline "
        "(`answer_by`) moved on by the working days it waited. Only the sending unit answers "
        "(403 `not-the-sender` for any other unit); only a task waiting for information "
        "(409 lists the steps your unit may take now). `If-Match` with the recipient's "
        "`version` is required (412 if it changed, 428 if missing); send an "
        "`Idempotency-Key` to retry safely. Scope `referral:write`."
    ),
    responses=problem_responses(*STEP_PROBLEMS, NotTheSender, AttachmentTooLarge),
)
async def answer_information(
    referral_id: TaskId,
    task_id: TaskId,
    body: InformationIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> RecipientOut | Response:
    idem = Idempotency(ctx, session, caller)
    operation = f"POST /v1/referrals/{referral_id}/recipients/{task_id}/information"
    fingerprint = Idempotency.fingerprint(operation, body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    work = work_of(ctx, session, caller)
    recipient, referral = await komplettering.answer(
        work,
        referral_id=referral_id,
        task_id=task_id,
        data=body,
        expected_version=required_if_match_version(if_match),
    )
    await audit(ctx, work, "referral.information", referral, recipient.id)
    headers = {"ETag": etag(recipient.version)}
    names = await worklists.unit_names(work, [recipient])
    out = recipient_out(work, recipient, referral, names)
    await idem.remember(idempotency_key, fingerprint, status.HTTP_200_OK, out, headers)
    response.headers.update(headers)
    return out

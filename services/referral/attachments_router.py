"""HTTP API of attached documents (ADR 0023): upload one as your unit's draft, add drafts
to a referral your unit sent, and download a document of a referral your unit sent or of a
task in its inbox. Every access is audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from services.referral import attachments
from services.referral.access import NoUnitClaim, ReferralNotFound
from services.referral.api import (
    Cursor,
    Limit,
    Reader,
    TaskId,
    Writer,
    audit,
    document_out,
    work_of,
)
from services.referral.attachments import (
    AttachmentNotFound,
    AttachmentTaken,
    AttachmentTooLarge,
    NoOpenTask,
    UnsupportedAttachment,
)
from services.referral.models import Attachment, ReceivedAttachment
from services.referral.schemas import (
    AttachedOut,
    AttachmentIdsIn,
    AttachmentIn,
    DraftOut,
    DraftPage,
)
from shared.data.work import Work
from shared.domain import documents
from shared.domain.documents import DocumentType
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.limits import BodyTooLarge
from shared.web.pagination import decode_cursor, next_cursor

attachments_router = APIRouter(prefix="/v1", tags=["referrals"])

AttachmentId = Annotated[
    str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="the document's id")
]

_BINARY = {"type": "string", "format": "binary"}
_TYPES = ", ".join(f"`{t.value}`" for t in DocumentType)
_DOWNLOAD_HEADERS = {
    "Content-Disposition": "`attachment`, with the title as file name (its type's extension "
    "added): `filename` in ASCII, `filename*` in UTF-8",
    "X-Content-Type-Options": "`nosniff`: the type is the one told from the bytes",
    "Cache-Control": "`no-store`: nothing keeps a copy on the way",
}


def _download_responses(*errors: type[Any]) -> dict[int | str, dict[str, Any]]:
    """The document's bytes (200, each type) and the problems of a download."""
    return {
        200: {
            "description": "The document's bytes, as the sending unit uploaded them.",
            "content": {t.header: {"schema": _BINARY} for t in DocumentType},
            "headers": {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in _DOWNLOAD_HEADERS.items()
            },
        },
        **problem_responses(*errors),
    }


def _download(row: Attachment | ReceivedAttachment, data: bytes) -> Response:
    kind = DocumentType(row.content_type)
    return Response(
        content=data,
        media_type=kind.header,
        headers={
            "Content-Disposition": documents.content_disposition(row.title, kind),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@attachments_router.post(
    "/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=DraftOut,
    summary="Upload a document to attach to a referral",
    description=(
        f"Uploads a document ({_TYPES}) for your unit to attach to a referral: name its id "
        "in `attachment_ids` when you send the referral (`POST /v1/referrals`), or add it "
        "to one your unit sent (`POST /v1/referrals/{referral_id}/attachments`). Until then "
        "it is your unit's draft (listed at `GET /v1/attachments`, deleted there by id), "
        "deleted at `hold_until` (`VK_REFERRAL__ATTACHMENT_DRAFT_HOURS`, default 24 h). "
        "The type is told from the bytes (a PDF starts with `%PDF-`, "
        "a PNG and a JPEG with their signatures, text is UTF-8 without NUL) and must be the "
        "one declared: anything else is refused with 415 naming the field and rule "
        "(`type_not_allowed`, `content_not_allowed`, `type_mismatch`). A document over "
        "`VK_REFERRAL__ATTACHMENT_MAX_BYTES` (default 10 MiB) is refused with 413 (`content`, "
        "`max_document_bytes`; a body far over it is cut off unread with 413 "
        "`payload-too-large`); nothing is stored on a refusal. The upload is audited. Send "
        "an `Idempotency-Key` to retry safely. Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden, NoUnitClaim, AttachmentTooLarge, BodyTooLarge, UnsupportedAttachment
    ),
)
async def upload(
    body: AttachmentIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    idempotency_key: IdempotencyKeyHeader = None,
) -> DraftOut | Response:
    work = work_of(ctx, session, caller)
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/attachments", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    row = await attachments.upload(work, body)
    await _audit_draft(ctx, work, "attachment.upload", row)
    out = _draft_out(row)
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, {})
    return out


async def _audit_draft(ctx: Ctx, work: Work, action: str, row: Attachment) -> None:
    assert work.caller is not None
    await ctx.auditor.record_access(
        work.session,
        work.caller,
        action=action,
        person_id=None,  # not about anyone yet: the referral it goes with names the person
        resource_type="attachment",
        resource_id=row.id,
    )


def _draft_out(row: Attachment) -> DraftOut:
    assert row.hold_until is not None
    return DraftOut(
        id=row.id,
        title=row.title,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        received_at=row.created_at,
        hold_until=row.hold_until,
    )


@attachments_router.get(
    "/attachments",
    response_model=DraftPage,
    summary="Your unit's uploads waiting for a referral",
    description=(
        "The documents your unit uploaded (`POST /v1/attachments`) that no referral has "
        "taken yet, by id, each with its title, type, size, SHA-256 and `hold_until` (when "
        "it is deleted unless a referral names it first). Never the bytes. A document that "
        "went with a referral is listed on that referral instead. Every listed upload is "
        "audited. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim, InvalidInput),
)
async def list_drafts(
    caller: Reader, session: DbSession, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> DraftPage:
    work = work_of(ctx, session, caller)
    rows = await attachments.drafts(work, after=decode_cursor(cursor), limit=limit)
    for row in rows[:limit]:
        await _audit_draft(ctx, work, "attachment.list", row)
    return DraftPage(
        items=[_draft_out(r) for r in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda r: r.id),
    )


@attachments_router.delete(
    "/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete an upload your unit no longer means to send",
    description=(
        "Deletes one of your unit's uploads that no referral has taken (a document "
        "uploaded by mistake, or the wrong one): its bytes are gone at once instead of at "
        "`hold_until`. Once a referral took it, it is that referral's and is removed with "
        "the referral's retention (409 `attachment-attached`). Another unit's upload, or "
        "none, is 404. Audited. Scope `referral:write`."
    ),
    responses={
        204: {"description": "Deleted."},
        **problem_responses(Forbidden, NoUnitClaim, AttachmentNotFound, AttachmentTaken),
    },
)
async def delete_draft(
    attachment_id: AttachmentId, caller: Writer, session: DbSession, ctx: Ctx
) -> Response:
    work = work_of(ctx, session, caller)
    row = await attachments.delete_draft(work, attachment_id)
    await _audit_draft(ctx, work, "attachment.delete", row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@attachments_router.post(
    "/referrals/{referral_id}/attachments",
    response_model=AttachedOut,
    summary="Add documents to a referral your unit sent",
    description=(
        "Adds documents your unit uploaded (`POST /v1/attachments`) to a referral it sent. "
        "They go to every recipient whose task is still open (`sent_to`); a task closed by "
        "then gets none, and when every task is closed nothing is added (409 `no-open-task`). "
        "The referral's documents together stay within `VK_REFERRAL__ATTACHMENT_MAX_COUNT` "
        "and `VK_REFERRAL__ATTACHMENT_MAX_REFERRAL_BYTES` (413 naming `attachment_ids` and "
        "the rule); an id that is no waiting upload of your unit is refused with 422. Only "
        "the sending unit adds to its referral. Audited. Send an `Idempotency-Key` to retry "
        "safely. Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden, NoUnitClaim, ReferralNotFound, NoOpenTask, AttachmentTooLarge
    ),
)
async def add(
    referral_id: TaskId,
    body: AttachmentIdsIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    idempotency_key: IdempotencyKeyHeader = None,
) -> AttachedOut | Response:
    work = work_of(ctx, session, caller)
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint(f"POST /v1/referrals/{referral_id}/attachments", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    referral, docs, sent_to = await attachments.add_to_sent(work, referral_id, body.attachment_ids)
    await audit(ctx, work, "referral.attachments_add", referral, referral.id)
    href = f"/v1/referrals/{referral.id}"
    out = AttachedOut(
        referral_id=referral.id, documents=[document_out(d, href) for d in docs], sent_to=sent_to
    )
    await idem.remember(idempotency_key, fingerprint, status.HTTP_200_OK, out, {})
    return out


@attachments_router.get(
    "/referrals/{referral_id}/attachments/{attachment_id}",
    response_class=Response,
    summary="Download a document of a referral your unit sent",
    description=(
        "The document's bytes, as uploaded, with its type, `Content-Disposition: "
        "attachment` and its title as a safe file name. Only the sending unit reads it; "
        "any other unit gets 404. Audited. Scope `referral:read`."
    ),
    responses=_download_responses(Forbidden, NoUnitClaim, ReferralNotFound, AttachmentNotFound),
)
async def download_sent(
    referral_id: TaskId, attachment_id: AttachmentId, caller: Reader, session: DbSession, ctx: Ctx
) -> Response:
    work = work_of(ctx, session, caller)
    referral, row, data = await attachments.sent_document(work, referral_id, attachment_id)
    await audit(
        ctx, work, "referral.attachment_download", referral, row.id, resource_type="attachment"
    )
    return _download(row, data)


@attachments_router.get(
    "/incoming/{task_id}/attachments/{attachment_id}",
    response_class=Response,
    summary="Download a document of a referral in your unit's inbox",
    description=(
        "The document's bytes as they arrived from the sending member, checked again here "
        "(size, SHA-256 and type from the bytes), with its type, `Content-Disposition: "
        "attachment` and its title as a safe file name. Only the task's receiving unit "
        "reads it (a person with protected identity: only with the role "
        "`protected_identity`); any other unit gets 404, as for the task. Audited. Scope "
        "`referral:read`."
    ),
    responses=_download_responses(Forbidden, NoUnitClaim, ReferralNotFound, AttachmentNotFound),
)
async def download_received(
    task_id: TaskId, attachment_id: AttachmentId, caller: Reader, session: DbSession, ctx: Ctx
) -> Response:
    work = work_of(ctx, session, caller)
    incoming, row, data = await attachments.received_document(work, task_id, attachment_id)
    await audit(
        ctx,
        work,
        "incoming.attachment_download",
        incoming,
        row.attachment_id,
        resource_type="attachment",
    )
    return _download(row, data)

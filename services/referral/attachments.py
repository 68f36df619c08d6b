"""Attached documents at the sender (ADR 0023): a unit uploads a document (a PDF, PNG, JPEG
or UTF-8 text, its type told from its bytes), which waits as the unit's draft until a
referral names it — when it is sent, or later to every recipient still holding an open
task — and travels to each recipient's member in chunks on the bus. Documents are kept
until every task of their referral has been final for ``attachment_retention_days``; a
draft no referral took goes after ``attachment_draft_hours``.

The limits (``VK_REFERRAL__ATTACHMENT_*``) are answered 413 naming the field and the rule,
a type that is not taken (or bytes that are not what is declared) 415; nothing is stored
when a document is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from services.referral import worklists
from services.referral.access import caller_of, get_incoming, require_unit
from services.referral.attachment_repository import (
    AttachmentChunkRepository,
    AttachmentRepository,
    ReceivedAttachmentRepository,
)
from services.referral.codes import OPEN, Status
from services.referral.models import Attachment, Incoming, ReceivedAttachment, Recipient, Referral
from services.referral.repository import ReferralRepository
from services.referral.schemas import AttachmentIn
from shared.config import ReferralSettings
from shared.data.db import new_id
from shared.data.work import Work
from shared.domain import documents
from shared.domain.documents import DocumentType
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_ATTACHMENT_CHUNK_V1,
    ReferralAttachmentChunkV1,
)
from shared.web.errors import AppError, Conflict, FieldProblem, InvalidInput, NotFound

# --- problems ------------------------------------------------------------------------------


def _problem(field: str, rule: str, message: str) -> FieldProblem:
    return FieldProblem(field=field, rule=rule, message=message)


class AttachmentTooLarge(AppError):
    """Over one of the limits of attached documents (each problem names field and rule)."""

    status = 413
    slug = "attachment-too-large"
    title = "Over a limit of attached documents"

    @classmethod
    def field(cls, field: str, rule: str, message: str) -> AttachmentTooLarge:
        return cls(f"{field}: {message}", errors=[_problem(field, rule, message)])


class UnsupportedAttachment(AppError):
    """A document of a type a referral does not carry, or not of the type declared."""

    status = 415
    slug = "unsupported-attachment-type"
    title = "Not a document of a type a referral may carry"

    @classmethod
    def field(cls, field: str, rule: str, message: str) -> UnsupportedAttachment:
        return cls(f"{field}: {message}", errors=[_problem(field, rule, message)])


AttachmentNotFound = NotFound.kind("attachment-not-found", "No such document for your unit")
AttachmentTaken = Conflict.kind(
    "attachment-attached",
    "The document goes with a referral: it is kept and removed with the referral",
)
NoOpenTask = Conflict.kind(
    "no-open-task", "Every recipient's task of this referral is closed: nothing to add it to"
)

TYPES_TEXT = ", ".join(t.value for t in DocumentType)


# --- uploading -----------------------------------------------------------------------------


def checked(settings: ReferralSettings, body: AttachmentIn) -> tuple[DocumentType, bytes]:
    """The document's type and bytes, once its size and its type (declared, and as its
    bytes are) pass (413 or 415 naming the field otherwise)."""
    data = documents.b64decode(body.content)
    if data is None:  # the schema's pattern already refuses it
        raise InvalidInput.field("content", "base64", "the content is not base64")
    limit = settings.attachment_max_bytes
    if len(data) > limit:
        raise AttachmentTooLarge.field(
            "content", "max_document_bytes", f"a document is at most {limit} bytes"
        )
    declared = documents.declared_type(body.content_type)
    if declared is None:
        raise UnsupportedAttachment.field(
            "content_type", "type_not_allowed", f"a document is one of {TYPES_TEXT}"
        )
    actual = documents.sniff(data)
    if actual is None:
        raise UnsupportedAttachment.field(
            "content", "content_not_allowed", f"the bytes are none of {TYPES_TEXT}"
        )
    if actual is not declared:
        raise UnsupportedAttachment.field(
            "content_type", "type_mismatch", "the bytes are of another type than declared"
        )
    return actual, data


async def upload(work: Work, body: AttachmentIn) -> Attachment:
    """Keeps a document the caller's unit uploaded, as its draft until a referral takes it
    (deleted after ``attachment_draft_hours`` otherwise)."""
    caller = caller_of(work)
    unit = require_unit(caller)
    settings = work.settings.referral
    kind, data = checked(settings, body)
    row = Attachment(
        id=new_id(),
        unit_id=unit,
        created_by=caller.sub,
        title=body.title,
        content_type=kind.value,
        size=len(data),
        sha256=documents.sha256(data),
        content=data,
        hold_until=work.now + dt.timedelta(hours=settings.attachment_draft_hours),
        created_at=work.now,
    )
    work.session.add(row)
    await work.session.flush()
    return row


async def carried_on(work: Work, incoming: Incoming) -> list[str]:
    """The documents held for a task its unit forwards, copied as that unit's drafts for
    the referral the forward sends (their ids, for ``attachment_ids``): the next unit gets
    them with the rest of the content, through the same checks and limits as any upload.
    The task keeps its own copies until its retention."""
    caller = caller_of(work)
    unit = require_unit(caller)
    hold = work.now + dt.timedelta(hours=work.settings.referral.attachment_draft_hours)
    held = await ReceivedAttachmentRepository(work.session).of_task(incoming.id, content=True)
    drafts = [
        Attachment(
            id=new_id(),
            unit_id=unit,
            created_by=caller.sub,
            title=doc.title,
            content_type=doc.content_type,
            size=doc.size,
            sha256=doc.sha256,
            content=doc.content,
            hold_until=hold,
            created_at=work.now,
        )
        for doc in held
    ]
    work.session.add_all(drafts)
    await work.session.flush()
    return [d.id for d in drafts]


async def drafts(work: Work, *, after: str | None, limit: int) -> list[Attachment]:
    """A page of the caller's unit's uploads still waiting for a referral (``limit + 1``
    rows: one beyond says there is a next page)."""
    unit = require_unit(caller_of(work))
    return await AttachmentRepository(work.session).waiting(
        unit, work.now, after=after, limit=limit + 1
    )


async def delete_draft(work: Work, attachment_id: str) -> Attachment:
    """Deletes an upload of the caller's unit that no referral took (404 for any other
    unit's, or none; 409 once a referral took it). Returns what was deleted."""
    unit = require_unit(caller_of(work))
    repo = AttachmentRepository(work.session)
    row = await repo.get(attachment_id)
    if row is None or row.unit_id != unit or (row.referral_id is None and not _waits(work, row)):
        raise AttachmentNotFound("no such upload of your unit")
    if row.referral_id is not None:
        raise AttachmentTaken("the document goes with a referral your unit sent")
    await work.session.delete(row)
    await work.session.flush()
    return row


def _waits(work: Work, row: Attachment) -> bool:
    """Whether a draft still waits (one past its hold is as good as pruned)."""
    return row.hold_until is not None and row.hold_until > work.now


# --- attaching -----------------------------------------------------------------------------


async def claim(
    work: Work,
    ids: Sequence[str],
    *,
    already: Sequence[Attachment] = (),
    field: str = "attachment_ids",
) -> list[Attachment]:
    """The caller's unit's waiting uploads ``ids`` (422 for any other), within the limits
    of one referral together with the documents it ``already`` has (413)."""
    if not ids:
        return []
    settings = work.settings.referral
    if len(ids) + len(already) > settings.attachment_max_count:
        raise AttachmentTooLarge.field(
            field,
            "max_documents",
            f"a referral carries at most {settings.attachment_max_count} documents",
        )
    unit = require_unit(caller_of(work))
    found = {d.id: d for d in await AttachmentRepository(work.session).drafts(unit, ids, work.now)}
    unknown = [(f"{field}.{i}", "unknown_attachment") for i, a in enumerate(ids) if a not in found]
    if unknown:
        raise InvalidInput.fields(unknown)
    drafts = [found[a] for a in ids]
    limit = settings.attachment_max_referral_bytes
    if sum(d.size for d in (*already, *drafts)) > limit:
        raise AttachmentTooLarge.field(
            field, "max_referral_bytes", f"a referral's documents are at most {limit} bytes"
        )
    return drafts


def attach(work: Work, drafts: Sequence[Attachment], referral: Referral) -> None:
    """The drafts go with ``referral`` from now on (no longer pruned as drafts)."""
    for draft in drafts:
        draft.referral_id = referral.id
        draft.hold_until = None
        draft.attached_at = work.now


async def send_to(
    work: Work,
    referral: Referral,
    recipients: Sequence[Recipient],
    docs: Sequence[Attachment],
    *,
    added_later: bool = False,
) -> None:
    """Every document of ``docs`` to every recipient's member, in chunks after what was
    already sent for the task (keyed by the task: they keep their order); ``added_later``:
    added after sending, so the receiver tells the holding unit of each."""
    if not docs or not recipients:
        return
    await work.session.flush()
    repo = AttachmentRepository(work.session)
    size = work.settings.referral.attachment_chunk_bytes
    for doc in docs:
        data = await repo.content(referral.id, doc.id)
        assert data is not None, "an attached document has its bytes"
        count = documents.chunk_count(len(data), size)
        for recipient in recipients:
            for index, piece in enumerate(documents.chunks(data, size)):
                await work.publish(
                    topics.inbound(recipient.orgnr),
                    REFERRAL_ATTACHMENT_CHUNK_V1,
                    ReferralAttachmentChunkV1(
                        task_id=recipient.id,
                        referral_id=referral.id,
                        attachment_id=doc.id,
                        sender_orgnr=work.member,
                        recipient_orgnr=recipient.orgnr,
                        index=index,
                        count=count,
                        size=doc.size,
                        sha256=doc.sha256,
                        content_type=doc.content_type,
                        title=doc.title,
                        data=documents.b64encode(piece),
                        sent_at=work.now,
                        added_later=added_later,
                    ),
                    subject=recipient.id,
                    key=recipient.id,
                )


async def add_to_sent(
    work: Work, referral_id: str, ids: Sequence[str]
) -> tuple[Referral, list[Attachment], list[str]]:
    """Adds the caller's unit's uploads to a referral it sent, and sends them to every
    recipient whose task is still open (409 when none is; nothing is stored then).
    Returns the referral, all its documents and the tasks they went to."""
    sent = await worklists.get_sent(work, referral_id)
    # Two additions at once must not pass the limits together (the referral's row first).
    await ReferralRepository(work.session).lock(sent.referral.id)
    repo = AttachmentRepository(work.session)
    existing = await repo.of_referral(sent.referral.id)
    drafts = await claim(work, ids, already=existing)
    open_tasks = [r for r in sent.recipients if Status(r.status) in OPEN]
    if not open_tasks:
        raise NoOpenTask("every recipient's task is closed")
    attach(work, drafts, sent.referral)
    await send_to(work, sent.referral, open_tasks, drafts, added_later=True)
    return sent.referral, [*existing, *drafts], [r.id for r in open_tasks]


# --- reading -------------------------------------------------------------------------------


async def of_referral(work: Work, referral: Referral) -> list[Attachment]:
    """The documents of a referral this member sent (without their bytes)."""
    return await AttachmentRepository(work.session).of_referral(referral.id)


async def of_task(work: Work, incoming: Incoming) -> list[ReceivedAttachment]:
    """The documents held for a task filed here (without their bytes)."""
    return await ReceivedAttachmentRepository(work.session).of_task(incoming.id)


async def sent_document(
    work: Work, referral_id: str, attachment_id: str
) -> tuple[Referral, Attachment, bytes]:
    """A document of a referral the caller's unit sent, with its bytes (404 for anyone
    else, and for a document of another referral)."""
    sent = await worklists.get_sent(work, referral_id)
    repo = AttachmentRepository(work.session)
    row = await repo.get(attachment_id)
    data = await repo.content(sent.referral.id, attachment_id) if row is not None else None
    if row is None or data is None:
        raise AttachmentNotFound("no such document of the referral")
    return sent.referral, row, data


async def received_document(
    work: Work, task_id: str, attachment_id: str
) -> tuple[Incoming, ReceivedAttachment, bytes]:
    """A document of a task in the caller's unit's inbox, with its bytes (404 for any other
    unit, as for the task)."""
    incoming = await get_incoming(work, task_id)
    repo = ReceivedAttachmentRepository(work.session)
    row = await repo.get((incoming.id, attachment_id))
    data = await repo.content(incoming.id, attachment_id) if row is not None else None
    if row is None or data is None:
        raise AttachmentNotFound("no such document of the task")
    return incoming, row, data


# --- retention -----------------------------------------------------------------------------


async def prune(work: Work) -> int:
    """Deletes drafts past their hold, the documents of tasks (and of referrals whose every
    task) final for ``attachment_retention_days``, and pieces of documents that waited
    longer than the inbox's retention for their task (ADR 0016). Returns how many."""
    settings = work.settings
    closed_before = work.now - dt.timedelta(days=settings.referral.attachment_retention_days)
    waited_since = work.now - dt.timedelta(days=settings.kafka.inbox_retention_days)
    session = work.session
    return (
        await AttachmentRepository(session).prune_drafts(work.now)
        + await AttachmentRepository(session).prune_closed(closed_before)
        + await ReceivedAttachmentRepository(session).prune_closed(closed_before)
        + await AttachmentChunkRepository(session).prune_closed(closed_before)
        + await AttachmentChunkRepository(session).prune(waited_since)
    )

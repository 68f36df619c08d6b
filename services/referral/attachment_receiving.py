"""Attached documents at the receiver (ADR 0023): the pieces of a document arrive on the
inbound topic after the referral they go with; once every piece and the task are here, the
document is put together, checked again — its size, its SHA-256, its type from the bytes,
this member's own limits — and stored for the task's receiving unit.

Every piece is hostile until shown otherwise: it must come from the member that sent the
task (``sender_not_owner``), be addressed to this member (``not_recipient``), agree with the
document's other pieces and stay within this member's limits; a piece that does not is
dead-lettered (``Reject``) and nothing of it is kept. The order follows the rest of the
service (ADR 0016): a piece that comes before its task is kept until the task arrives, and
goes when the task is refused, withdrawn before it came, or never comes (pruned after the
inbox's retention); a piece of a task closed here, or answered here without being filed, is
dropped. When the task is withdrawn, or cancelled with its basis and not registered here
(ADR 0021), its documents go.
"""

from __future__ import annotations

import logging

from services.referral.attachment_repository import (
    AttachmentChunkRepository,
    ReceivedAttachmentRepository,
)
from services.referral.codes import OPEN_AT_RECEIVER, Status
from services.referral.models import AttachmentChunk, Incoming, ReceivedAttachment
from services.referral.repository import IncomingRepository, TransitionRepository
from shared.data.work import Work
from shared.domain import documents
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_DOCUMENT_ADDED_V1,
    ReferralAttachmentChunkV1,
    ReferralDocumentAddedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import require_sender

log = logging.getLogger("vardkedja.referral.attachments")

_SAME = ("referral_id", "sender_orgnr", "count", "size", "sha256", "content_type", "title")
"""What every piece of one document says alike."""


async def receive_chunk(work: Work, event: CloudEvent, payload: ReferralAttachmentChunkV1) -> None:
    """Keeps a piece of a document for a task of this member, and stores the document once
    it is whole and the task is here (``Reject`` for anything a sender may not say)."""
    if payload.recipient_orgnr != work.member:
        raise Reject("not_recipient", "the document is addressed to another member")
    require_sender(event, payload.sender_orgnr, "a member may only send its own documents")
    limits = work.settings.referral
    if payload.size > limits.attachment_max_bytes:
        raise Reject("attachment_too_large", "the document is over this member's limit")
    piece = payload.chunk()
    if not piece or len(piece) > min(payload.size, documents.MAX_CHUNK_BYTES):
        raise Reject("invalid_chunk", "the piece is empty or larger than its document")
    incoming = await IncomingRepository(work.session).get(payload.task_id)
    if incoming is not None:
        require_sender(event, incoming.sender_orgnr, "only the task's sender sends its documents")
        if incoming.referral_id != payload.referral_id:
            raise Reject("invalid_chunk", "the task belongs to another referral")
        if not _holds(incoming):
            return  # closed here (or nothing about the person kept): nothing more is kept
    elif await TransitionRepository(work.session).answered_here(payload.task_id):
        return  # refused or withdrawn before it came: nothing is kept for it
    held = await ReceivedAttachmentRepository(work.session).held(payload.task_id)
    if payload.attachment_id in held:
        return  # already whole here (a piece sent again)
    waiting = await AttachmentChunkRepository(work.session).of_task(payload.task_id)
    mine = [c for c in waiting if c.attachment_id == payload.attachment_id]
    if any(getattr(c, f) != getattr(payload, f) for c in mine for f in _SAME):
        raise Reject("invalid_chunk", "the piece disagrees with the document's other pieces")
    if any(c.position == payload.index for c in mine):
        return  # this piece is already here
    _within_limits(work, payload, held, waiting)
    work.session.add(
        AttachmentChunk(
            task_id=payload.task_id,
            attachment_id=payload.attachment_id,
            position=payload.index,
            referral_id=payload.referral_id,
            sender_orgnr=payload.sender_orgnr,
            count=payload.count,
            size=payload.size,
            sha256=payload.sha256,
            content_type=payload.content_type,
            title=payload.title,
            data=piece,
            received_at=work.now,
        )
    )
    await work.session.flush()
    if incoming is not None and len(mine) + 1 == payload.count:
        problem = await _store(work, incoming, payload.attachment_id)
        if problem is not None:
            raise Reject(problem, "the document is not what its pieces said")
        if payload.added_later:
            await _tell_holder(work, incoming, payload.content_type)


async def _tell_holder(work: Work, incoming: Incoming, content_type: str) -> None:
    """Tells the task's receiving unit that a document added after sending is here
    (notify: ``referral.document_added``; ids, the kind and the type only)."""
    event = ReferralDocumentAddedV1(
        referral_id=incoming.id, kind=incoming.kind, unit_id=incoming.unit_id,
        sender_orgnr=incoming.sender_orgnr, content_type=content_type, at=work.now,
    )  # fmt: skip
    topic = topics.internal(work.member)
    await work.publish(
        topic, REFERRAL_DOCUMENT_ADDED_V1, event, subject=incoming.id, key=incoming.id
    )


def _holds(incoming: Incoming) -> bool:
    """Whether documents may still come for a task filed here."""
    return Status(incoming.status) in OPEN_AT_RECEIVER and incoming.personnummer is not None


def _within_limits(
    work: Work,
    payload: ReferralAttachmentChunkV1,
    held: dict[str, int],
    waiting: list[AttachmentChunk],
) -> None:
    """This member's limits for one task: how many documents, and how many bytes together
    (those held, those arriving, and this one)."""
    limits = work.settings.referral
    sizes = dict(held)
    sizes.update({c.attachment_id: c.size for c in waiting})
    sizes[payload.attachment_id] = payload.size
    if len(sizes) > limits.attachment_max_count:
        raise Reject("too_many_attachments", "the task has more documents than this member takes")
    if sum(sizes.values()) > limits.attachment_max_referral_bytes:
        raise Reject("attachments_too_large", "the task's documents are over this member's limit")


async def _store(work: Work, incoming: Incoming, attachment_id: str) -> str | None:
    """Puts a whole document together, checks it and stores it for the task (its pieces
    go); the rule it breaks otherwise (nothing is stored then)."""
    chunks = AttachmentChunkRepository(work.session)
    pieces = [c for c in await chunks.of_task(incoming.id) if c.attachment_id == attachment_id]
    first = pieces[0]
    if first.sender_orgnr.replace("-", "") != incoming.sender_orgnr.replace("-", ""):
        return "sender_not_owner"
    if first.referral_id != incoming.referral_id:
        return "invalid_chunk"
    if sorted(c.position for c in pieces) != list(range(first.count)):
        return "invalid_chunk"
    data = b"".join(await chunks.data(incoming.id, attachment_id))
    problem = None
    if len(data) != first.size:
        problem = "size_mismatch"
    elif documents.sha256(data) != first.sha256:
        problem = "digest_mismatch"
    elif documents.sniff(data) != documents.DocumentType(first.content_type):
        problem = "type_mismatch"
    if problem is not None:
        return problem
    work.session.add(
        ReceivedAttachment(
            task_id=incoming.id,
            attachment_id=attachment_id,
            sender_orgnr=incoming.sender_orgnr,
            title=first.title,
            content_type=first.content_type,
            size=first.size,
            sha256=first.sha256,
            content=data,
            received_at=work.now,
        )
    )
    await chunks.drop(incoming.id, attachment_id)
    await work.session.flush()
    return None


async def on_filed(work: Work, incoming: Incoming) -> int:
    """A task was filed here: every document whose pieces all came before it is checked
    and stored now (one that fails its checks is dropped: the task is not refused for
    it). Returns how many were stored."""
    waiting = await AttachmentChunkRepository(work.session).of_task(incoming.id)
    by_document: dict[str, list[AttachmentChunk]] = {}
    for piece in waiting:
        by_document.setdefault(piece.attachment_id, []).append(piece)
    stored = 0
    for attachment_id, pieces in by_document.items():
        if len(pieces) < pieces[0].count:
            continue  # the rest is still on its way
        problem = await _store(work, incoming, attachment_id)
        if problem is None:
            stored += 1
        else:
            await AttachmentChunkRepository(work.session).drop(incoming.id, attachment_id)
            log.warning(
                "attached document refused",
                extra={"resource_id": incoming.id, "rule": problem},
            )
    return stored


async def drop_task(work: Work, task_id: str) -> int:
    """Deletes every document held for a task, and any piece still waiting for it."""
    dropped = await ReceivedAttachmentRepository(work.session).drop_task(task_id)
    await AttachmentChunkRepository(work.session).drop(task_id)
    return dropped

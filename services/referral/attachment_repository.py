"""All SQL of attached documents (ADR 0023): the sender's uploads, the receiver's documents
per task and the pieces still arriving. The bytes are read only by the queries that need
them (the columns are deferred: a list never loads a document)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import and_, delete, exists, not_, or_, select
from sqlalchemy.orm import undefer

from services.referral.codes import FINAL
from services.referral.models import (
    Attachment,
    AttachmentChunk,
    Incoming,
    ReceivedAttachment,
    Recipient,
)
from services.referral.repository import OPEN_STATUSES
from shared.data.db import RepositoryBase

FINAL_STATUSES = sorted(s.value for s in FINAL)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class AttachmentRepository(RepositoryBase[Attachment]):
    model = Attachment

    async def drafts(self, unit_id: str, ids: Iterable[str], now: dt.datetime) -> list[Attachment]:
        """The unit's uploads among ``ids`` that no referral took yet and still wait."""
        stmt = select(Attachment).where(
            Attachment.id.in_(list(ids)),
            Attachment.unit_id == unit_id,
            Attachment.referral_id.is_(None),
            Attachment.hold_until > now,
        )
        # Locked (PostgreSQL): a second request claiming the same upload waits, then finds
        # it taken; SQLite serialises its writers.
        return list(await self.session.scalars(stmt.with_for_update()))

    async def waiting(
        self, unit_id: str, now: dt.datetime, *, after: str | None, limit: int
    ) -> list[Attachment]:
        """A page of the unit's uploads that no referral took yet and still wait, by id."""
        stmt = select(Attachment).where(
            Attachment.unit_id == unit_id,
            Attachment.referral_id.is_(None),
            Attachment.hold_until > now,
        )
        if after:
            stmt = stmt.where(Attachment.id > after)
        return list(await self.session.scalars(stmt.order_by(Attachment.id).limit(limit)))

    async def of_referral(self, referral_id: str, *, content: bool = False) -> list[Attachment]:
        """A referral's documents, in the order they were attached (``content``: with the
        bytes)."""
        stmt = select(Attachment).where(Attachment.referral_id == referral_id)
        if content:
            stmt = stmt.options(undefer(Attachment.content))
        stmt = stmt.order_by(Attachment.attached_at, Attachment.created_at, Attachment.id)
        return list(await self.session.scalars(stmt))

    async def content(self, referral_id: str, attachment_id: str) -> bytes | None:
        stmt = select(Attachment.content).where(
            Attachment.id == attachment_id, Attachment.referral_id == referral_id
        )
        data = await self.session.scalar(stmt)
        return bytes(data) if data is not None else None

    async def prune_drafts(self, now: dt.datetime) -> int:
        """Deletes uploads no referral took before their hold ran out."""
        stmt = delete(Attachment).where(
            Attachment.referral_id.is_(None), Attachment.hold_until <= now
        )
        return _count(await self.session.execute(stmt))

    async def prune_closed(self, final_before: dt.datetime) -> int:
        """Deletes the documents of referrals whose every task is final and has not moved
        since ``final_before``."""
        still_held = exists().where(
            Recipient.referral_id == Attachment.referral_id,
            or_(Recipient.status.in_(OPEN_STATUSES), Recipient.updated_at >= final_before),
        )
        stmt = delete(Attachment).where(Attachment.referral_id.is_not(None), not_(still_held))
        return _count(await self.session.execute(stmt.execution_options(synchronize_session=False)))


class ReceivedAttachmentRepository(RepositoryBase[ReceivedAttachment]):
    model = ReceivedAttachment

    async def of_task(self, task_id: str, *, content: bool = False) -> list[ReceivedAttachment]:
        """The documents held for a task, in the order they arrived (``content``: with the
        bytes)."""
        stmt = select(ReceivedAttachment).where(ReceivedAttachment.task_id == task_id)
        if content:
            stmt = stmt.options(undefer(ReceivedAttachment.content))
        stmt = stmt.order_by(ReceivedAttachment.received_at, ReceivedAttachment.attachment_id)
        return list(await self.session.scalars(stmt))

    async def content(self, task_id: str, attachment_id: str) -> bytes | None:
        stmt = select(ReceivedAttachment.content).where(
            ReceivedAttachment.task_id == task_id,
            ReceivedAttachment.attachment_id == attachment_id,
        )
        data = await self.session.scalar(stmt)
        return bytes(data) if data is not None else None

    async def held(self, task_id: str) -> dict[str, int]:
        """The size of every document held for a task, by id."""
        stmt = select(ReceivedAttachment.attachment_id, ReceivedAttachment.size).where(
            ReceivedAttachment.task_id == task_id
        )
        return {str(a): int(s) for a, s in (await self.session.execute(stmt)).all()}

    async def drop_task(self, task_id: str) -> int:
        stmt = delete(ReceivedAttachment).where(ReceivedAttachment.task_id == task_id)
        return _count(await self.session.execute(stmt))

    async def prune_closed(self, final_before: dt.datetime) -> int:
        """Deletes the documents of tasks final here that have not moved since
        ``final_before``."""
        closed = select(Incoming.id).where(
            Incoming.status.in_(FINAL_STATUSES), Incoming.updated_at < final_before
        )
        stmt = delete(ReceivedAttachment).where(ReceivedAttachment.task_id.in_(closed))
        return _count(await self.session.execute(stmt.execution_options(synchronize_session=False)))


class AttachmentChunkRepository(RepositoryBase[AttachmentChunk]):
    model = AttachmentChunk

    async def of_task(self, task_id: str) -> list[AttachmentChunk]:
        """The pieces held for a task, without their bytes."""
        stmt = select(AttachmentChunk).where(AttachmentChunk.task_id == task_id)
        stmt = stmt.order_by(AttachmentChunk.attachment_id, AttachmentChunk.position)
        return list(await self.session.scalars(stmt))

    async def data(self, task_id: str, attachment_id: str) -> list[bytes]:
        """A document's pieces' bytes, in order."""
        stmt = select(AttachmentChunk.data).where(
            AttachmentChunk.task_id == task_id, AttachmentChunk.attachment_id == attachment_id
        )
        stmt = stmt.order_by(AttachmentChunk.position)
        return [bytes(d) for d in await self.session.scalars(stmt)]

    async def drop(self, task_id: str, attachment_id: str | None = None) -> int:
        """Deletes the pieces held for a task (or only those of one document)."""
        where = [AttachmentChunk.task_id == task_id]
        if attachment_id is not None:
            where.append(AttachmentChunk.attachment_id == attachment_id)
        stmt = delete(AttachmentChunk).where(and_(*where))
        return _count(await self.session.execute(stmt.execution_options(synchronize_session=False)))

    async def prune_closed(self, final_before: dt.datetime) -> int:
        """Deletes pieces still held for tasks final here that have not moved since
        ``final_before`` (a document whose last piece was refused)."""
        closed = select(Incoming.id).where(
            Incoming.status.in_(FINAL_STATUSES), Incoming.updated_at < final_before
        )
        stmt = delete(AttachmentChunk).where(AttachmentChunk.task_id.in_(closed))
        return _count(await self.session.execute(stmt.execution_options(synchronize_session=False)))

    async def prune(self, received_before: dt.datetime) -> int:
        """Deletes pieces that waited since before the cut-off."""
        stmt = delete(AttachmentChunk).where(AttachmentChunk.received_at < received_before)
        return _count(await self.session.execute(stmt.execution_options(synchronize_session=False)))

"""Inboxes: a unit's (or role's) notifications, who may read them, reading and
acknowledging one (which cancels its deadline's reminders), and its delivery log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.access import ADMIN_ROLE, caller_of
from services.notify.models import Delivery, DeliveryAttempt, Notification
from services.notify.repository import DeliveryRepository, NotificationRepository
from services.notify.timers import cancel_deadline
from shared.data.work import Work
from shared.identity.auth import Caller
from shared.web.errors import Forbidden, NotFound

# How many notifications the live stream reads at once.
STREAM_PAGE = 100


NotificationNotFound = NotFound.kind(
    "notification-not-found", "No such notification in your inboxes"
)


@dataclass(frozen=True)
class Inbox:
    """Whose inbox: a unit's (``unit``) or a role's (``role``)."""

    kind: str
    recipient: str


def ensure_recipient(*, caller: Caller, recipient_kind: str, recipient: str) -> None:
    """Allow an inbox to its unit, to holders of its role, and to the member's admins."""
    if caller.has_role(ADMIN_ROLE):
        return
    if recipient_kind == "unit" and caller.unit == recipient:
        return
    if recipient_kind == "role" and caller.has_role(recipient):
        return
    raise Forbidden("the inbox belongs to another unit or role")


async def list_inbox(
    work: Work, inbox: Inbox, *, unread_only: bool, before_seq: int | None, limit: int
) -> tuple[list[Notification], int]:
    """A page of an inbox, newest first, and how many of the inbox's notifications are
    unread."""
    repo = NotificationRepository(work.session)
    rows = await repo.inbox_page(
        recipient_kind=inbox.kind,
        recipient=inbox.recipient,
        unread_only=unread_only,
        before_seq=before_seq,
        limit=limit,
    )
    unread = await repo.count_unread(recipient_kind=inbox.kind, recipient=inbox.recipient)
    return rows, unread


async def latest_seq(session: AsyncSession, unit_id: str) -> int:
    """The sequence number of the newest notification of a unit's inbox (0: none yet)."""
    return await NotificationRepository(session).latest_seq(
        recipient_kind="unit", recipient=unit_id
    )


async def arrived_after(session: AsyncSession, unit_id: str, after_seq: int) -> list[Notification]:
    """The next notifications of a unit's inbox after ``after_seq``, oldest first."""
    return await NotificationRepository(session).after(
        recipient_kind="unit", recipient=unit_id, after_seq=after_seq, limit=STREAM_PAGE
    )


async def get_notification(work: Work, notification_id: str) -> Notification:
    """Gets a notification from one of the caller's inboxes (404 for any other)."""
    n = await NotificationRepository(work.session).by_id(notification_id)
    if n is None:
        raise NotificationNotFound()
    try:
        ensure_recipient(
            caller=caller_of(work), recipient_kind=n.recipient_kind, recipient=n.recipient
        )
    except Forbidden:
        raise NotificationNotFound() from None
    return n


async def mark_read(work: Work, notification_id: str) -> Notification:
    """Marks a notification read (the first reader is kept)."""
    n = await get_notification(work, notification_id)
    if n.read_at is None:
        n.read_at, n.read_by = work.now, caller_of(work).sub
        await work.session.flush()
    return n


async def acknowledge(work: Work, notification_id: str) -> Notification:
    """Acknowledges a notification and cancels its deadline's reminders and escalation."""
    n = await mark_read(work, notification_id)
    if n.acknowledged_at is None:
        n.acknowledged_at, n.acknowledged_by = work.now, caller_of(work).sub
        if n.deadline is not None:
            await cancel_deadline(work, subject_id=n.subject_id, deadline=n.deadline)
        await work.session.flush()
    return n


async def deliveries_of(
    work: Work, notification_id: str
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """The delivery log of a notification in one of the caller's inboxes: each channel's
    delivery and its attempts."""
    await get_notification(work, notification_id)
    repo = DeliveryRepository(work.session)
    deliveries = await repo.of_notification(notification_id)
    attempts = await repo.attempts_of([d.id for d in deliveries])
    return [(d, [a for a in attempts if a.delivery_id == d.id]) for d in deliveries]

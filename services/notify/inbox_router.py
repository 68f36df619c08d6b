"""HTTP API of the inboxes: a unit's or role's notifications, the live stream, reading and
acknowledging one, and its delivery log (thin: parse, the unit of work, :mod:`inbox`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from services.notify import inbox
from services.notify.access import ADMIN_ROLE, caller_of
from services.notify.api import (
    Cursor,
    Limit,
    ObjectId,
    Reader,
    ReadWork,
    Role,
    UnitId,
    WriteWork,
    delivery_out,
)
from services.notify.content import title
from services.notify.fanout import data_of
from services.notify.inbox import Inbox, NotificationNotFound
from services.notify.models import Notification
from services.notify.schemas import DeliveryOut, NotificationOut, NotificationPage
from shared.config import NotifySettings
from shared.data.db import ChangeWatch
from shared.data.work import Work
from shared.identity.auth import ensure_unit
from shared.web.app import Ctx
from shared.web.errors import Forbidden, problem_responses
from shared.web.fields import QueryBool
from shared.web.pagination import decode_int_cursor, next_cursor

inbox_router = APIRouter(prefix="/v1", tags=["inbox"])

# One notification of the caller's inboxes: its view, or 404 for anyone else's.
_ONE: dict[str, Any] = {
    "response_model": NotificationOut,
    "responses": problem_responses(Forbidden, NotificationNotFound),
}


# Fields of the view that the stored notification holds as they are shown.
_STORED = tuple(f for f in NotificationOut.model_fields if f not in ("kind", "title", "link"))


def notification_out(n: Notification, settings: NotifySettings) -> NotificationOut:
    """The API view of a notification (the same fields every channel carries)."""
    data = data_of(notification=n, settings=settings)
    stored = {f: getattr(n, f) for f in _STORED}
    return NotificationOut(kind=data.kind, title=title(data), link=data.link, **stored)


def _view(work: Work, n: Notification) -> NotificationOut:
    return notification_out(n, work.settings.notify)


@dataclass(frozen=True)
class _Asked:
    """The page of an inbox asked for: only unread ones or all, after which cursor, how many."""

    unread: bool
    cursor: str | None
    limit: int


async def _asked(unread: QueryBool = False, cursor: Cursor = None, limit: Limit = 50) -> _Asked:
    return _Asked(unread, cursor, limit)


Asked = Annotated[_Asked, Depends(_asked)]


async def _page(work: Work, whose: Inbox, asked: _Asked) -> NotificationPage:
    limit = asked.limit
    rows, unread = await inbox.list_inbox(
        work,
        whose,
        unread_only=asked.unread,
        before_seq=decode_int_cursor(asked.cursor),
        limit=limit + 1,
    )
    return NotificationPage(
        items=[_view(work, n) for n in rows[:limit]],
        unread=unread,
        next_cursor=next_cursor(rows, limit, lambda n: str(n.seq)),
    )


@inbox_router.get(
    "/units/{unit_id}/notifications",
    response_model=NotificationPage,
    summary="List a unit's inbox",
    description="The unit's notifications, newest first, with the count of unread ones and "
    "cursor pagination. `unread=true` lists only unread ones. Only the unit itself "
    "(the token's `unit`) and holders of `member_admin` may read it. Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_unit_inbox(unit_id: UnitId, work: ReadWork, asked: Asked) -> NotificationPage:
    ensure_unit(caller_of(work), unit_id, cross_unit_role=ADMIN_ROLE)
    return await _page(work, Inbox("unit", unit_id), asked)


@inbox_router.get(
    "/roles/{role}/notifications",
    response_model=NotificationPage,
    summary="List a role's inbox",
    description="Notifications addressed to a role of the member (for example escalations to "
    "`member_admin` when no coordinating function is known). Holders of the role and of "
    "`member_admin` may read it. Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_role_inbox(role: Role, work: ReadWork, asked: Asked) -> NotificationPage:
    inbox.ensure_recipient(caller=caller_of(work), recipient_kind="role", recipient=role)
    return await _page(work, Inbox("role", role), asked)


async def _stream(request: Request, ctx: Ctx, unit_id: str, after: int) -> AsyncIterator[bytes]:
    cfg = ctx.settings.notify
    keepalive_every = max(1, int(15 / cfg.sse_poll_interval_s))
    idle = 0
    # On SQLite a stat of the WAL file tells whether anything was written since the last look.
    watch = ChangeWatch(ctx.db.url)
    yield b"retry: 2000\n\n"
    while not await request.is_disconnected():
        rows: list[Notification] = []
        if watch.changed():
            async with ctx.db.sessionmaker() as session:
                rows = await inbox.arrived_after(session, unit_id, after)
        for n in rows:
            after = n.seq
            body = notification_out(n, cfg).model_dump_json()
            yield f"id: {n.seq}\nevent: notification\ndata: {body}\n\n".encode()
        if rows:
            idle = 0
            watch.forget()  # more may wait beyond this page: look again at once
            continue
        idle += 1
        if idle % keepalive_every == 0:
            yield b": keepalive\n\n"
        await asyncio.sleep(cfg.sse_poll_interval_s)


@inbox_router.get(
    "/units/{unit_id}/notifications/stream",
    summary="Live stream of a unit's inbox (server-sent events)",
    description="A `text/event-stream` of the unit's new notifications for live screens: one "
    "`notification` event per item (`id` is its sequence number, `data` the notification as "
    "JSON). Reconnect with `Last-Event-ID` to resume after the last one seen; without it the "
    "stream starts with what arrives next. Scope `notify:read`; the unit or `member_admin`.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the stream"},
        **problem_responses(Forbidden),
    },
)
async def stream_unit_inbox(
    unit_id: UnitId,
    caller: Reader,
    request: Request,
    ctx: Ctx,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            # Event ids are 64-bit sequence numbers: 18 digits always fit (19 may not).
            max_length=18,
            pattern=r"^[0-9]+$",
            description="the `id` of the last event received: the stream resumes after it",
        ),
    ] = None,
) -> StreamingResponse:
    ensure_unit(caller, unit_id, cross_unit_role=ADMIN_ROLE)
    if last_event_id is not None:
        after = int(last_event_id)
    else:
        async with ctx.db.sessionmaker() as session:
            after = await inbox.latest_seq(session, unit_id)
    return StreamingResponse(
        _stream(request, ctx, unit_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@inbox_router.get(
    "/notifications/{notification_id}",
    summary="Read one notification",
    description="A notification from one of your inboxes (404 for anyone else's). This is the "
    "link every e-mail and webhook carries. Scope `notify:read`.",
    **_ONE,
)
async def get_notification(notification_id: ObjectId, work: ReadWork) -> NotificationOut:
    return _view(work, await inbox.get_notification(work, notification_id))


@inbox_router.post(
    "/notifications/{notification_id}/read",
    summary="Mark a notification read",
    description="Marks it read (idempotent; the first reading is kept). Scope `notify:write`.",
    **_ONE,
)
async def read_notification(notification_id: ObjectId, work: WriteWork) -> NotificationOut:
    return _view(work, await inbox.mark_read(work, notification_id))


@inbox_router.post(
    "/notifications/{notification_id}/acknowledge",
    summary="Acknowledge a notification",
    description="The unit has taken the matter on: marks it read and acknowledged and cancels "
    "the pending reminders and escalation of its deadline (idempotent). "
    "Scope `notify:write`.",
    **_ONE,
)
async def acknowledge_notification(notification_id: ObjectId, work: WriteWork) -> NotificationOut:
    return _view(work, await inbox.acknowledge(work, notification_id))


@inbox_router.get(
    "/notifications/{notification_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="The delivery log of a notification",
    description="Each channel's delivery (inbox, webhook per subscription, e-mail) with every "
    "attempt: when, how long, the receiver's status code or error. Scope `notify:read`.",
    responses=problem_responses(Forbidden, NotificationNotFound),
)
async def notification_deliveries(notification_id: ObjectId, work: ReadWork) -> list[DeliveryOut]:
    return [delivery_out(d, log) for d, log in await inbox.deliveries_of(work, notification_id)]

"""HTTP API of the notify service (thin: validation, auth, then the service layer)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from services.notify import service
from services.notify.content import KINDS, title
from services.notify.models import Delivery, DeliveryAttempt, Notification, WebhookSubscription
from services.notify.repository import NotificationRepository
from services.notify.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    NotificationOut,
    NotificationPage,
    RulesOut,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionUpdate,
    SubscriptionWithSecret,
    UnitChannelOut,
    UnitChannelUpdate,
)
from services.notify.service import (
    ADMIN_ROLE,
    DeliveryNotFound,
    NotificationNotFound,
    NotRedeliverable,
    SubscriptionNotFound,
    UnitNotOwn,
    VersionMismatch,
)
from shared.config import NotifySettings
from shared.data.db import ChangeWatch
from shared.identity.auth import Caller, ensure_unit, require_scopes
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import etag, if_match_version
from shared.web.fields import QueryBool

inbox_router = APIRouter(prefix="/v1", tags=["inbox"])
subscription_router = APIRouter(prefix="/v1/webhook-subscriptions", tags=["webhooks"])
admin_router = APIRouter(prefix="/v1", tags=["administration"])

Reader = Annotated[Caller, Depends(require_scopes("notify:read"))]
Writer = Annotated[Caller, Depends(require_scopes("notify:write"))]
UnitId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="unit id")]
Role = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9_]+$", description="role name")]
ObjectId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{36}$")]
Cursor = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=500)]


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        value = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        value = ""
    if not value:
        raise InvalidInput.field("cursor", "cursor", "not a cursor from a previous page")
    return value


def _seq_cursor(cursor: str | None) -> int | None:
    value = _decode(cursor)
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput.field("cursor", "cursor", "not a cursor from a previous page")
    return int(value)


def notification_out(n: Notification, settings: NotifySettings) -> NotificationOut:
    """The API view of a notification (the same fields every channel carries)."""
    data = service.data_of(notification=n, settings=settings)
    return NotificationOut(
        id=n.id,
        kind=data.kind,
        title=title(data),
        subject_type=n.subject_type,
        subject_id=n.subject_id,
        unit_id=n.unit_id,
        referral_kind=n.referral_kind,
        urgency=n.urgency,
        status=n.status,
        deadline=n.deadline,
        due_at=n.due_at,
        counterpart_orgnr=n.counterpart_orgnr,
        recipient_kind=n.recipient_kind,
        recipient=n.recipient,
        created_at=n.created_at,
        read_at=n.read_at,
        acknowledged_at=n.acknowledged_at,
        link=data.link,
    )


def _delivery_out(d: Delivery, log: list[DeliveryAttempt]) -> DeliveryOut:
    out = DeliveryOut.model_validate(d, from_attributes=True)
    out.log = [AttemptOut.model_validate(a, from_attributes=True) for a in log]
    return out


def _subscription_out(sub: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut.model_validate(sub, from_attributes=True)


def _with_secret(sub: WebhookSubscription) -> SubscriptionWithSecret:
    return SubscriptionWithSecret.model_validate(sub, from_attributes=True)


def _require_admin(caller: Caller) -> None:
    if not caller.has_role(ADMIN_ROLE):
        raise Forbidden("needs the member_admin role")


# --- inboxes ------------------------------------------------------------------------------


async def _inbox(
    session: DbSession,
    settings: NotifySettings,
    recipient_kind: str,
    recipient: str,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> NotificationPage:
    rows = await service.list_inbox(
        session=session,
        recipient_kind=recipient_kind,
        recipient=recipient,
        unread_only=unread,
        before_seq=_seq_cursor(cursor),
        limit=limit + 1,
    )
    unread_count = await NotificationRepository(session).count_unread(
        recipient_kind=recipient_kind, recipient=recipient
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return NotificationPage(
        items=[notification_out(n, settings) for n in rows],
        unread=unread_count,
        next_cursor=_encode(str(rows[-1].seq)) if more else None,
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
async def list_unit_inbox(
    unit_id: UnitId,
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    unread: QueryBool = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> NotificationPage:
    ensure_unit(caller, unit_id, cross_unit_role=ADMIN_ROLE)
    return await _inbox(session, ctx.settings.notify, "unit", unit_id, unread, cursor, limit)


@inbox_router.get(
    "/roles/{role}/notifications",
    response_model=NotificationPage,
    summary="List a role's inbox",
    description="Notifications addressed to a role of the member (for example escalations to "
    "`member_admin` when no coordinating function is known). Holders of the role and of "
    "`member_admin` may read it. Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_role_inbox(
    role: Role,
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    unread: QueryBool = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> NotificationPage:
    service.ensure_recipient(caller=caller, recipient_kind="role", recipient=role)
    return await _inbox(session, ctx.settings.notify, "role", role, unread, cursor, limit)


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
                rows = await NotificationRepository(session).after(
                    recipient_kind="unit", recipient=unit_id, after_seq=after, limit=100
                )
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
            after = await NotificationRepository(session).latest_seq(
                recipient_kind="unit", recipient=unit_id
            )
    return StreamingResponse(
        _stream(request, ctx, unit_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@inbox_router.get(
    "/notifications/{notification_id}",
    response_model=NotificationOut,
    summary="Read one notification",
    description="A notification from one of your inboxes (404 for anyone else's). This is the "
    "link every e-mail and webhook carries. Scope `notify:read`.",
    responses=problem_responses(Forbidden, NotificationNotFound),
)
async def get_notification(
    notification_id: ObjectId, caller: Reader, session: DbSession, ctx: Ctx
) -> NotificationOut:
    n = await service.get_notification(
        session=session, caller=caller, notification_id=notification_id
    )
    return notification_out(n, ctx.settings.notify)


@inbox_router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark a notification read",
    description="Marks it read (idempotent; the first reading is kept). Scope `notify:write`.",
    responses=problem_responses(Forbidden, NotificationNotFound),
)
async def read_notification(
    notification_id: ObjectId, caller: Writer, session: DbSession, ctx: Ctx
) -> NotificationOut:
    n = await service.mark_read(session=session, caller=caller, notification_id=notification_id)
    return notification_out(n, ctx.settings.notify)


@inbox_router.post(
    "/notifications/{notification_id}/acknowledge",
    response_model=NotificationOut,
    summary="Acknowledge a notification",
    description="The unit has taken the matter on: marks it read and acknowledged and cancels "
    "the pending reminders and escalation of its deadline (idempotent). "
    "Scope `notify:write`.",
    responses=problem_responses(Forbidden, NotificationNotFound),
)
async def acknowledge_notification(
    notification_id: ObjectId, caller: Writer, session: DbSession, ctx: Ctx
) -> NotificationOut:
    n = await service.acknowledge(session=session, caller=caller, notification_id=notification_id)
    return notification_out(n, ctx.settings.notify)


@inbox_router.get(
    "/notifications/{notification_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="The delivery log of a notification",
    description="Each channel's delivery (inbox, webhook per subscription, e-mail) with every "
    "attempt: when, how long, the receiver's status code or error. Scope `notify:read`.",
    responses=problem_responses(Forbidden, NotificationNotFound),
)
async def notification_deliveries(
    notification_id: ObjectId, caller: Reader, session: DbSession
) -> list[DeliveryOut]:
    await service.get_notification(session=session, caller=caller, notification_id=notification_id)
    rows = await service.deliveries_of(session=session, notification_id=notification_id)
    return [_delivery_out(d, log) for d, log in rows]


# --- webhook subscriptions ----------------------------------------------------------------


@subscription_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionWithSecret,
    summary="Subscribe a case system or EHR to a unit's notifications",
    description="Creates a webhook subscription for a unit (the unit itself or `member_admin`) "
    "or, without `unit_id`, for the whole member (`member_admin`). Deliveries are signed per "
    "Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the "
    "secret returned here (once). Refused (422, nothing stored): a URL that is not https in "
    "production (`https_required`) or reaches a private address unless allowed "
    "(`private_address`), unknown `event_types` (`unknown_event_type`), a secret that is "
    "not `whsec_` + base64 of 24-64 bytes (`secret_too_short`, `secret_format`). Send an "
    "`Idempotency-Key` to retry safely. Scope `notify:write`.",
    responses=problem_responses(Forbidden),
)
async def create_subscription(
    body: SubscriptionCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SubscriptionWithSecret | Response:
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/webhook-subscriptions", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    sub = await service.create_subscription(
        session=session,
        settings=ctx.settings,
        caller=caller,
        unit_id=body.unit_id,
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
    )
    out = _with_secret(sub)
    headers = {"ETag": etag(sub.version), "Location": f"/v1/webhook-subscriptions/{sub.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@subscription_router.get(
    "",
    response_model=SubscriptionPage,
    summary="List webhook subscriptions",
    description="The subscriptions of `unit_id` (default: the token's unit); `member_admin` "
    "without `unit_id` sees all of the member's. Secrets are never listed. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_subscriptions(
    caller: Reader,
    session: DbSession,
    unit_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> SubscriptionPage:
    rows = await service.list_subscriptions(
        session=session, caller=caller, unit_id=unit_id, after_id=_decode(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return SubscriptionPage(
        items=[_subscription_out(s) for s in rows],
        next_cursor=_encode(rows[-1].id) if more else None,
    )


@subscription_router.get(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Read a webhook subscription",
    description="With its `ETag` for a later update. Scope `notify:read`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def get_subscription(
    subscription_id: ObjectId, caller: Reader, session: DbSession, response: Response
) -> SubscriptionOut:
    sub = await service.get_subscription(
        session=session, caller=caller, subscription_id=subscription_id
    )
    response.headers["ETag"] = etag(sub.version)
    return _subscription_out(sub)


@subscription_router.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a webhook subscription",
    description="Changes the URL, the kinds or `enabled` (same checks as on creation). With "
    "`If-Match` the change is refused (412) if the subscription changed since. "
    "Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound, VersionMismatch),
)
async def update_subscription(
    subscription_id: ObjectId,
    body: SubscriptionUpdate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=40)] = None,
) -> SubscriptionOut:
    sub = await service.update_subscription(
        session=session,
        settings=ctx.settings,
        caller=caller,
        subscription_id=subscription_id,
        expected_version=if_match_version(if_match),
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
    )
    response.headers["ETag"] = etag(sub.version)
    return _subscription_out(sub)


@subscription_router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SubscriptionWithSecret,
    summary="Rotate a subscription's signing secret",
    description="Sets a new secret (given, or generated) and returns it once. For "
    "`VK_NOTIFY__SECRET_ROTATION_GRACE_S` (default a day) every delivery carries two "
    "signatures, with the new and the previous secret, so the receiver can switch without "
    "losing a delivery. Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def rotate_secret(
    subscription_id: ObjectId,
    body: SecretRotation,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
) -> SubscriptionWithSecret:
    sub = await service.rotate_secret(
        session=session,
        settings=ctx.settings,
        caller=caller,
        subscription_id=subscription_id,
        secret=body.secret,
    )
    return _with_secret(sub)


@subscription_router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook subscription",
    description="Deliveries still pending for it end as dead (`gone`). Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def delete_subscription(
    subscription_id: ObjectId, caller: Writer, session: DbSession
) -> Response:
    await service.delete_subscription(
        session=session, caller=caller, subscription_id=subscription_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- administration -----------------------------------------------------------------------


@admin_router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="List deliveries by status (the dead-letter list)",
    description="Webhook and e-mail deliveries in a status, by id with cursor pagination: "
    "`dead` (the default) lists those that failed every attempt. `member_admin` only. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_deliveries(
    caller: Reader,
    session: DbSession,
    status_: Annotated[
        Literal["dead", "pending", "delivered", "skipped"], Query(alias="status")
    ] = "dead",
    channel: Literal["webhook", "email", "inbox"] | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> DeliveryPage:
    _require_admin(caller)
    rows = await service.list_deliveries(
        session=session, status=status_, channel=channel, after_id=_decode(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[_delivery_out(d, []) for d in rows],
        next_cursor=_encode(rows[-1].id) if more else None,
    )


@admin_router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    summary="Send a delivery again",
    description="Queues a dead (or delivered) webhook or e-mail delivery for another round of "
    "attempts, under the same delivery id (the receiver's `webhook-id`, so a receiver that "
    "already has it can drop it). `member_admin` only. Scope `notify:write`.",
    responses=problem_responses(Forbidden, DeliveryNotFound, NotRedeliverable),
)
async def redeliver(delivery_id: ObjectId, caller: Writer, session: DbSession) -> DeliveryOut:
    _require_admin(caller)
    d = await service.redeliver(session=session, delivery_id=delivery_id)
    return _delivery_out(d, [])


@admin_router.get(
    "/units/{unit_id}/channels",
    response_model=UnitChannelOut,
    summary="A unit's notification channels",
    description="The unit's kind and functional mailbox as notify knows them (from the "
    "member's directory, and the admin's override). The unit or `member_admin`. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def get_unit_channels(unit_id: UnitId, caller: Reader, session: DbSession) -> UnitChannelOut:
    ensure_unit(caller, unit_id, cross_unit_role=ADMIN_ROLE)
    unit = await service.get_unit_channel(session=session, unit_id=unit_id)
    return UnitChannelOut.model_validate(unit, from_attributes=True)


@admin_router.put(
    "/units/{unit_id}/channels",
    response_model=UnitChannelOut,
    summary="Set a unit's functional mailbox",
    description="Overrides the functional mailbox the directory lists for the unit (or sets "
    "one where it lists none) and turns e-mail on or off for it. A functional mailbox, "
    "never a person's. Only a unit of your own member, as your directory announced it: "
    "another member's unit or an unknown id answers 404 (`unit-not-own`); a new unit can "
    "be set once its announcement has reached notify (seconds). `member_admin` only. "
    "Scope `notify:write`.",
    responses=problem_responses(Forbidden, UnitNotOwn),
)
async def set_unit_channels(
    unit_id: UnitId, body: UnitChannelUpdate, caller: Writer, session: DbSession
) -> UnitChannelOut:
    _require_admin(caller)
    unit = await service.set_unit_channel(
        session=session, unit_id=unit_id, email=body.email, email_enabled=body.email_enabled
    )
    return UnitChannelOut.model_validate(unit, from_attributes=True)


@admin_router.get(
    "/rules",
    response_model=RulesOut,
    summary="The rules table in force",
    description="Which event goes to which recipients on which channels "
    "(`VK_NOTIFY__RULES`), and the notification kinds subscriptions may name. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def get_rules(caller: Reader, ctx: Ctx) -> RulesOut:
    return RulesOut(rules=ctx.settings.notify.rules, kinds=list(KINDS))

"""HTTP API of failed deliveries: the list by status (the dead letters) and redelivery,
for the member's admins (thin: parse, the unit of work, :mod:`deliveries`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.notify import deliveries
from services.notify.access import caller_of, require_admin
from services.notify.api import Cursor, Limit, ObjectId, ReadWork, WriteWork, delivery_out
from services.notify.deliveries import DeliveryNotFound, NotRedeliverable
from services.notify.schemas import DeliveryOut, DeliveryPage
from shared.web.errors import Forbidden, problem_responses
from shared.web.pagination import decode_cursor, next_cursor

deliveries_router = APIRouter(prefix="/v1", tags=["administration"])


@deliveries_router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="List deliveries by status (the dead-letter list)",
    description="Webhook and e-mail deliveries in a status, by id with cursor pagination: "
    "`dead` (the default) lists those that failed every attempt. `member_admin` only. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_deliveries(
    work: ReadWork,
    status_: Annotated[
        Literal["dead", "pending", "delivered", "skipped"], Query(alias="status")
    ] = "dead",
    channel: Literal["webhook", "email", "inbox"] | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> DeliveryPage:
    require_admin(caller_of(work))
    rows = await deliveries.list_deliveries(
        work, status=status_, channel=channel, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return DeliveryPage(
        items=[delivery_out(d, []) for d in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda d: d.id),
    )


@deliveries_router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    summary="Send a delivery again",
    description="Queues a dead (or delivered) webhook or e-mail delivery for another round of "
    "attempts, under the same delivery id (the receiver's `webhook-id`, so a receiver that "
    "already has it can drop it). `member_admin` only. Scope `notify:write`.",
    responses=problem_responses(Forbidden, DeliveryNotFound, NotRedeliverable),
)
async def redeliver(delivery_id: ObjectId, work: WriteWork) -> DeliveryOut:
    require_admin(caller_of(work))
    return delivery_out(await deliveries.redeliver(work, delivery_id), [])

"""Failed deliveries: the member's list of deliveries by status (``dead``: the dead letters)
and sending a webhook or e-mail delivery again under the same id."""

from __future__ import annotations

from services.notify.models import Delivery
from services.notify.repository import DeliveryRepository
from shared.data.work import Work
from shared.web.errors import Conflict, NotFound

DeliveryNotFound = NotFound.kind("delivery-not-found", "No such delivery")
NotRedeliverable = Conflict.kind(
    "not-redeliverable", "Only a dead or delivered webhook or e-mail delivery can be sent again"
)


async def list_deliveries(
    work: Work, *, status: str, channel: str | None, after_id: str | None, limit: int
) -> list[Delivery]:
    """Lists deliveries in one status (``dead`` for the dead-letter list), by id."""
    return await DeliveryRepository(work.session).page_by_status(
        status=status, channel=channel, after_id=after_id, limit=limit
    )


async def get_delivery(work: Work, delivery_id: str) -> Delivery:
    """Gets one delivery."""
    d = await DeliveryRepository(work.session).get(delivery_id)
    if d is None:
        raise DeliveryNotFound()
    return d


async def redeliver(work: Work, delivery_id: str) -> Delivery:
    """Queues a dead (or delivered) webhook or e-mail delivery again, under the same id."""
    d = await get_delivery(work, delivery_id)
    if d.channel == "inbox" or d.status not in ("dead", "delivered"):
        raise NotRedeliverable(allowed=["dead", "delivered"])
    d.status = "pending"
    d.next_attempt_at = work.now
    d.lease_until = None
    d.lease_token = None
    d.dead_at = None
    d.redeliveries += 1
    await work.session.flush()
    return d

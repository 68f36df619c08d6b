"""Publishing events onto a member's topics as another service of it would (tests only)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.config import KafkaSettings
from shared.messaging.events import CloudEvent
from shared.messaging.kafka import Producer, ensure_topics
from tests.helpers.signed import signed


def event_of(
    orgnr: str, service: str, type_: str, payload: BaseModel, *, key: str | None = None
) -> CloudEvent:
    """A CloudEvent from ``service`` of member ``orgnr``."""
    return CloudEvent(
        source=f"urn:vardkedja:{orgnr.replace('-', '')}:{service}",
        type=type_,
        partitionkey=key,
        data=payload.model_dump(mode="json"),
    )


async def publish(kafka: KafkaSettings, topic: str, event: CloudEvent, *, times: int = 1) -> None:
    """Write ``event`` to ``topic`` ``times`` times (a redelivery is the same record again)."""
    await ensure_topics(kafka, [topic], client_id="notify-test-admin")
    producer = Producer(kafka, "notify-test-producer")
    await producer.start()
    try:
        record = signed(event, topic)
        results = await producer.send_ordered([record] * times)
        for r in results:
            if isinstance(r, BaseException):
                raise r
    finally:
        await producer.stop()

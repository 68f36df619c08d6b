"""Dead letters: the records a consumer refuses, kept and forwarded.

A record the inbox refuses (it cannot be decoded or admitted, its type is unknown, its
payload invalid, its handler rejected it or kept failing) is kept in ``dead_letter`` as it
arrived, with the reason and the error, and copied to the member's dead-letter topic
through the outbox: as an event of this member whose sealed data is the record, so nothing
of it is readable there, whatever the sender wrote in clear. The inbox writes both in the
transaction that marks the record consumed (:meth:`DeadLetter.keep`), then reports it
(:meth:`DeadLetter.report`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.data.db import utcnow
from shared.data.infra import InfraTables
from shared.messaging.events import CloudEvent, topics
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.outbox import protected_record
from shared.web.observability import DEAD_LETTERS, EVENTS_CONSUMED, trace_id_var

log = logging.getLogger("vardkedja.inbox")

DEAD_LETTER_TYPE = "se.vardkedja.infra.dead_letter.v1"
"""The type of a dead letter's copy on the member's dead-letter topic."""


@dataclass(frozen=True)
class DeadLetterCopy:
    """A dead letter's copy for the member's dead-letter topic, as its outbox row holds it:
    an event of this member whose sealed data is the record as it arrived (key, headers,
    body), so nothing of it is readable there, whatever the sender wrote in clear; its key
    is the record's own only when this member wrote it (an aggregate id), else none."""

    id: str
    topic: str
    key: str | None
    body: bytes
    headers: list[list[str]]

    @classmethod
    def of(
        cls, settings: Settings, record: ReceivedRecord, id_: str, why: list[list[str]]
    ) -> DeadLetterCopy:
        """The copy of ``record`` with outbox id ``id_``; ``why`` are its ``vk_dlt_*``
        headers (why and where from)."""
        from shared.messaging.events.payloads import DeadLetterV1

        topic = topics.deadletter(settings.member.orgnr)
        copy = CloudEvent(
            id=id_,
            source=settings.source,
            type=DEAD_LETTER_TYPE,
            partitionkey=None,
            data=DeadLetterV1.of(record).model_dump(mode="json"),
        )
        key, body, headers = protected_record(settings, copy, topic)
        text_key = key.decode() if key is not None else None
        return cls(id_, topic, text_key, body, _texts(headers) + why)


@dataclass(frozen=True)
class DeadLetter:
    """One record refused by ``consumer``, why, and its copy for the dead-letter topic."""

    consumer: str
    record: ReceivedRecord
    event: CloudEvent | None
    reason: str
    error: str
    attempts: int
    event_id: str
    copy: DeadLetterCopy

    @classmethod
    def of(
        cls,
        settings: Settings,
        consumer: str,
        record: ReceivedRecord,
        event: CloudEvent | None,
        *,
        reason: str,
        error: str,
        attempts: int,
    ) -> DeadLetter:
        """``record`` refused by ``consumer`` of the member of ``settings``."""
        event_id = event.id if event else _record_id(record)
        why = [
            ["vk_dlt_reason", reason],
            ["vk_dlt_consumer", consumer],
            ["vk_dlt_topic", record.topic],
            ["vk_dlt_partition", str(record.partition)],
            ["vk_dlt_offset", str(record.offset)],
            ["vk_dlt_attempts", str(attempts)],
        ]
        copy = DeadLetterCopy.of(settings, record, _dead_letter_outbox_id(consumer, event_id), why)
        return cls(consumer, record, event, reason, error, attempts, event_id, copy)

    @property
    def event_type(self) -> str | None:
        return self.event.type if self.event else None

    async def keep(self, session: AsyncSession, infra: InfraTables) -> None:
        """The ``dead_letter`` row and (but for a record read from the dead-letter topic
        itself) the copy's outbox row, in the caller's transaction."""
        record = self.record
        await session.execute(
            infra.dead_letter.insert().values(
                consumer=self.consumer,
                event_id=self.event_id,
                event_type=self.event_type,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                headers=_texts(record.headers),
                body=record.value,
                reason=self.reason,
                error=self.error,
                attempts=self.attempts,
                created_at=utcnow(),
            )
        )
        copy = self.copy
        if record.topic != copy.topic:  # never loop a dead letter back to itself
            await session.execute(
                infra.outbox.insert().values(
                    event_id=copy.id,
                    topic=copy.topic,
                    key=copy.key,
                    event_type=DEAD_LETTER_TYPE,
                    headers=copy.headers,
                    body=copy.body,
                    created_at=utcnow(),
                    attempts=0,
                    publish_count=0,
                )
            )

    def report(self, service: str) -> None:
        """Count and log the kept dead letter (no personal data)."""
        DEAD_LETTERS.labels(service, self.consumer, self.reason).inc()
        EVENTS_CONSUMED.labels(service, self.consumer, "dead_lettered").inc()
        log.warning(
            "event dead-lettered",
            extra={
                "consumer": self.consumer,
                "event_id": self.event_id,
                "reason": self.reason,
                "topic": self.record.topic,
                "partition": self.record.partition,
                "offset": self.record.offset,
                "trace_id": trace_id_var.get(),
            },
        )


def _texts(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    """Headers as the JSON columns keep them."""
    return [[k, v.decode("utf-8", "replace")] for k, v in headers]


def _dead_letter_outbox_id(consumer: str, event_id: str) -> str:
    """The outbox id of a dead letter's copy for the DLT: one per consumer and event, and
    within the outbox's 64 characters however long the event's id (up to 255, or a
    record id for an undecodable record)."""
    digest = hashlib.sha256(f"{consumer}\0{event_id}".encode()).hexdigest()
    return f"dlt:{digest[:60]}"


def _record_id(record: ReceivedRecord) -> str:
    """An id for a record without a usable event id: where it was, and a digest of what it
    was (a broker that lost its log reuses offsets for other records)."""
    digest = hashlib.sha256(record.value or b"")
    for k, v in record.headers:
        digest.update(k.encode() + b"\0" + v + b"\0")
    return f"kafka:{record.topic}:{record.partition}:{record.offset}:{digest.hexdigest()[:16]}"


__all__ = ["DEAD_LETTER_TYPE", "DeadLetter", "DeadLetterCopy"]

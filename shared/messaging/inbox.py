"""Idempotent consumers: the inbox.

For every record, one database transaction records the event id in ``inbox_event`` *and*
applies the handler's effect; a second delivery of the same id finds the row and changes
nothing. Offsets are committed to Kafka only after that transaction has committed, so a
crash at any point leads to redelivery, never to loss (at-least-once delivery,
exactly-once effect).

Failures: a record that cannot be decoded, has an unknown type, an invalid payload, or a
sender that is not a federation member is dead-lettered at once (retrying cannot help). A
handler that raises is retried with backoff; its attempts are persisted so a crash loop
cannot retry forever; after ``dead_letter_after`` attempts it is dead-lettered with the
error kept. Database outages are not counted as attempts: they wait. Nothing stops the
consumer loop. (The attempts: :mod:`shared.messaging.attempts`; keeping and forwarding a
dead letter: :mod:`shared.messaging.dead_letters`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.data.db import Database, is_infrastructure_error, utcnow
from shared.data.infra import InfraTables
from shared.messaging.attempts import FailedAttempts
from shared.messaging.dead_letters import DeadLetter
from shared.messaging.events import (
    CATALOGUE,
    Catalogue,
    CloudEvent,
    MalformedEvent,
    attributes,
    decode,
    topics,
)
from shared.messaging.kafka import Consumer, ReceivedRecord, TopicPartition, ensure_topics
from shared.messaging.outbox import Outbox
from shared.messaging.trust import Trust, Untrusted, member_trust
from shared.web.observability import (
    EVENT_LAG,
    EVENTS_CONSUMED,
    adopt_traceparent,
)

log = logging.getLogger("vardkedja.inbox")

MAX_RECORD_BYTES = 2_000_000
"""The largest record admitted (a sealed body is about 4/3 of its 1 MB of data)."""


@dataclass(frozen=True)
class Delivery:
    """What a handler gets: the event, its validated payload and where it came from."""

    event: CloudEvent
    payload: BaseModel
    record: ReceivedRecord


Handler = Callable[[AsyncSession, Delivery], Awaitable[None]]
# Applies a run of consecutive deliveries of one type in one call, with the same effect as
# the type's Handler applied to each in order (used to catch up fast, e.g. a replica rebuild).
BatchHandler = Callable[[AsyncSession, list[Delivery]], Awaitable[None]]


class Reject(Exception):
    """Raised by a handler for an event that must never be applied (dead-lettered at once).

    ``rule`` names why, e.g. ``sender_not_owner``. The message must not contain personal data.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class _Ready:
    delivery: Delivery
    handler: Handler | None
    type_: str


@dataclass(frozen=True)
class _Skip:
    """A valid event of a type this consumer does not handle (another service's)."""

    event: CloudEvent


@dataclass(frozen=True)
class _Bad:
    event: CloudEvent | None
    rule: str
    message: str


@dataclass
class ConsumerSpec:
    """One named consumer of a service: its topics and a handler per event type."""

    name: str
    topics: list[str]
    handlers: Mapping[str, Handler]
    # Optional: a faster equivalent of ``handlers[type]`` for several events at once. A type
    # with a batch handler must have a handler too (the careful one-by-one path uses it).
    batch_handlers: Mapping[str, BatchHandler] = field(default_factory=dict)
    # Types known to the catalogue but not handled here are skipped (several services share
    # a topic); types unknown to the catalogue are dead-lettered.
    catalogue: Catalogue = field(default_factory=lambda: CATALOGUE)


def _runs_of_one_type(items: list[_Ready]) -> list[list[_Ready]]:
    """``items`` split into runs of consecutive items of the same type (order kept)."""
    runs: list[list[_Ready]] = []
    for item in items:
        if runs and runs[-1][0].type_ == item.type_:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class EventConsumer:
    """Consumes one :class:`ConsumerSpec` for one service of one member."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        infra: InfraTables,
        spec: ConsumerSpec,
        *,
        group_id: str | None = None,
        retry_base: float = 0.2,
        max_retry_sleep: float = 10.0,
        on_applied: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.infra = infra
        self.spec = spec
        self.group_id = group_id or topics.consumer_group(
            settings.member.orgnr, settings.service, spec.name
        )
        self.retry_base = retry_base
        self.max_retry_sleep = max_retry_sleep
        self.on_applied = on_applied
        self.outbox = Outbox(settings, infra)
        self._stop = asyncio.Event()
        self._consumer: Consumer | None = None
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "skipped": 0, "dead": 0}
        self._failed = FailedAttempts(db, infra, spec.name)
        member_trust(settings)  # refuses to start without its keys and the trust list
        allowed = settings.federation_members
        self._allowed_senders = {o.replace("-", "") for o in allowed} if allowed else None

    def stop(self) -> None:
        self._stop.set()

    @property
    def trust(self) -> Trust:
        """This member's trust as its files say now: a trust list updated for another
        member's rotation is read without a restart (two stat calls per record)."""
        return member_trust(self.settings)

    def _sender_allowed(self, sender: str | None) -> bool:
        """In the trust list (checked with the signature) and, where the settings list the
        federation's members, listed there too."""
        if sender is None:
            return False
        return self._allowed_senders is None or sender in self._allowed_senders

    async def run(self) -> None:
        """Consume until :meth:`stop`; reconnects after broker errors."""
        backoff = 0.0
        while not self._stop.is_set():
            consumer = Consumer(
                self.settings.kafka,
                topics=self.spec.topics,
                group_id=self.group_id,
                client_id=f"{self.group_id}",
            )
            try:
                if self.settings.kafka.create_topics:
                    await ensure_topics(
                        self.settings.kafka, self.spec.topics, client_id=f"{self.group_id}-admin"
                    )
                await consumer.start()
                self._consumer = consumer
                backoff = 0.0
                while not self._stop.is_set():
                    batch = await consumer.poll(timeout_ms=200)
                    if batch:
                        await self._handle_batch(consumer, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(10.0, max(0.2, backoff * 2))
                log.warning(
                    "consumer reconnecting",
                    extra={
                        "consumer": self.spec.name,
                        "error_type": type(exc).__name__,
                        "backoff_s": backoff,
                    },
                )
                await self._sleep(backoff)
            finally:
                self._consumer = None
                # A dead broker makes a client's stop retry for long: bound it.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), timeout=5)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _handle_batch(
        self, consumer: Consumer, batch: dict[TopicPartition, list[ReceivedRecord]]
    ) -> None:
        offsets: dict[TopicPartition, int] = {}
        try:
            for tp, records in batch.items():
                if len(records) > 1 and await self._apply_batch(records):
                    offsets[tp] = records[-1].offset + 1
                    continue
                for record in records:
                    if self._stop.is_set():
                        return
                    await self.handle(record)
                    offsets[tp] = record.offset + 1
        finally:
            # Everything handled so far is committed in the database: commit its offsets.
            if offsets:
                await consumer.commit(offsets)

    def _validate(self, record: ReceivedRecord) -> _Ready | _Bad | _Skip:
        """Decode and check a record (no I/O): what to apply, or why it must be refused."""
        try:
            attributes(record.headers)
            if record.value is not None and len(record.value) > MAX_RECORD_BYTES:
                raise MalformedEvent("body_too_large", "record exceeds the size limit")
            # Its sender, signature, destination and (on a member's topic) seal, before
            # anything of its data is read.
            value = self.trust.admit(record.topic, record.key, record.value, record.headers)
            event = decode(record.key, value, record.headers)
        except MalformedEvent as exc:
            return _Bad(None, exc.rule, str(exc))
        except Untrusted as exc:
            return _Bad(None, exc.rule, str(exc))
        if not self.spec.catalogue.is_known(event.type):
            return _Bad(event, "unknown_type", "event type not in the catalogue")
        sender = event.sender_orgnr
        if not self._sender_allowed(sender):
            return _Bad(event, "sender_not_member", "sender is not a federation member")
        member = topics.member_of_topic(record.topic)
        if member is not None and topics.internal(member) == record.topic and sender != member:
            return _Bad(event, "sender_not_owner", "only the member writes its internal topic")
        if self.spec.catalogue.current_type(event.type) not in self.spec.handlers:
            # Another service's event on a shared topic: nothing to apply, so no payload
            # validation, no inbox row and no transaction (its own service checks it).
            return _Skip(event)
        try:
            type_, payload = self.spec.catalogue.resolve(event)
        except ValidationError as exc:
            rules = ",".join(sorted({str(e["type"]) for e in exc.errors()}))
            fields = ",".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()}))
            return _Bad(event, "invalid_payload", f"invalid fields: {fields} ({rules})")
        return _Ready(Delivery(event, payload, record), self.spec.handlers.get(type_), type_)

    async def _apply_batch(self, records: list[ReceivedRecord]) -> bool:
        """Apply a partition's records in ONE transaction when every one is clean (the
        common case: one commit instead of one per event). False — with nothing applied —
        when any record needs the careful path: a refused record, earlier failed attempts,
        a duplicate, a handler error, a Reject or a database error."""
        ready = [self._validate(r) for r in records]
        if any(isinstance(r, _Bad) for r in ready):
            return False
        items = [r for r in ready if isinstance(r, _Ready)]
        for item in items:
            if await self._failed.count(item.delivery.event.id):
                return False
        skipped = len(ready) - len(items)
        if not items:
            self._skipped(skipped)
            return True
        try:
            async with self.db.transaction() as session:
                await self._insert_inbox_rows(session, items)
                for run in _runs_of_one_type(items):
                    batch_handler = self.spec.batch_handlers.get(run[0].type_)
                    if batch_handler is not None and run[0].handler is not None:
                        await batch_handler(session, [item.delivery for item in run])
                        continue
                    for item in run:
                        if item.handler is not None:
                            await item.handler(session, item.delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        for item in items:
            self._applied(item, self._outcome_of(item))
        self._skipped(skipped)
        return True

    def _skipped(self, n: int) -> None:
        if n:
            self.counts["skipped"] += n
            EVENTS_CONSUMED.labels(self.settings.service, self.spec.name, "skipped").inc(n)

    @staticmethod
    def _outcome_of(item: _Ready) -> str:
        return "applied" if item.handler is not None else "skipped"

    async def _insert_inbox(self, session: AsyncSession, item: _Ready, outcome: str) -> None:
        await self._record_inbox(
            session, item.delivery.event.id, item.type_, item.delivery.record, outcome
        )

    async def _insert_inbox_rows(self, session: AsyncSession, items: list[_Ready]) -> None:
        """The inbox rows of a whole batch in one statement (raises if any is a repeat)."""
        await session.execute(
            self.infra.inbox.insert(),
            [
                self._inbox_row(
                    item.delivery.event.id, item.type_, item.delivery.record, self._outcome_of(item)
                )
                for item in items
            ],
        )

    def _inbox_row(
        self, event_id: str, event_type: str | None, record: ReceivedRecord, outcome: str
    ) -> dict[str, object]:
        return {
            "consumer": self.spec.name,
            "event_id": event_id,
            "event_type": event_type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "outcome": outcome,
            "received_at": utcnow(),
        }

    async def _record_inbox(
        self,
        session: AsyncSession,
        event_id: str,
        event_type: str | None,
        record: ReceivedRecord,
        outcome: str,
    ) -> None:
        """The inbox row: this consumer has dealt with ``event_id`` (raises on a repeat)."""
        await session.execute(
            self.infra.inbox.insert().values(
                **self._inbox_row(event_id, event_type, record, outcome)
            )
        )

    def _applied(self, item: _Ready, outcome: str) -> None:
        """Count and report one committed outcome."""
        self.counts[outcome] += 1
        EVENTS_CONSUMED.labels(self.settings.service, self.spec.name, outcome).inc()
        if outcome == "applied":
            event = item.delivery.event
            lag = (dt.datetime.now(dt.UTC) - event.time).total_seconds()
            EVENT_LAG.labels(self.settings.service, self.spec.name).observe(max(0.0, lag))
            if self.on_applied is not None:
                self.on_applied(item.delivery)

    async def handle(self, record: ReceivedRecord) -> str:
        """Apply one record exactly once; returns the outcome. Never raises for bad events."""
        checked = self._validate(record)
        if isinstance(checked, _Skip):
            self._skipped(1)
            return "skipped"
        if isinstance(checked, _Bad):
            return await self._dead_letter(record, checked.event, checked.rule, checked.message, 1)
        event = checked.delivery.event
        adopt_traceparent(event.traceparent)
        attempts = await self._failed.count(event.id)
        while True:
            if attempts >= self.settings.kafka.dead_letter_after:
                err = await self._failed.last_error(event.id)
                return await self._dead_letter(record, event, "failed", err, attempts)
            try:
                return await self._apply(checked)
            except Reject as exc:
                return await self._dead_letter(record, event, exc.rule, str(exc), attempts + 1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_infrastructure_error(exc):
                    log.warning(
                        "database unavailable; waiting",
                        extra={"consumer": self.spec.name, "error_type": type(exc).__name__},
                    )
                    await self._sleep(min(self.max_retry_sleep, 1.0))
                    if self._stop.is_set():
                        raise
                    continue
                attempts += 1
                error = f"{type(exc).__name__}: {exc}"[:500]
                await self._failed.record(event.id, attempts, error)
                log.warning(
                    "handler failed",
                    extra={
                        "consumer": self.spec.name,
                        "event_id": event.id,
                        "event_type": event.type,
                        "attempt": attempts,
                        "error_type": type(exc).__name__,
                    },
                )
                sleep = min(self.max_retry_sleep, self.retry_base * 2 ** (attempts - 1))
                await self._sleep(sleep * (0.5 + random.random() / 2))  # noqa: S311 - jitter
                if self._stop.is_set():
                    raise

    async def _apply(self, item: _Ready) -> str:
        outcome = self._outcome_of(item)
        # No savepoint: the inbox row is the first statement of the unit of work, and a
        # primary-key conflict (already applied, or a concurrent delivery that won) rolls the
        # whole unit back. (pysqlite would commit a savepoint opened as the first statement.)
        try:
            async with self.db.transaction() as session:
                await self._insert_inbox(session, item, outcome)
                if item.handler is not None:
                    await item.handler(session, item.delivery)
        except IntegrityError:
            if not await self._seen(item.delivery.event.id):
                raise  # a constraint of the handler's own tables: a real failure
            outcome = "duplicate"
            self.counts[outcome] += 1
            EVENTS_CONSUMED.labels(self.settings.service, self.spec.name, outcome).inc()
            return outcome
        self._applied(item, outcome)
        return outcome

    async def _seen(self, event_id: str) -> bool:
        ib = self.infra.inbox
        async with self.db.sessionmaker() as session:
            found = await session.scalar(
                select(ib.c.event_id).where(
                    ib.c.consumer == self.spec.name, ib.c.event_id == event_id
                )
            )
        return found is not None

    async def _dead_letter(
        self,
        record: ReceivedRecord,
        event: CloudEvent | None,
        reason: str,
        error: str,
        attempts: int,
    ) -> str:
        """Keep the record and the error, forward it to the member's DLT via the outbox,
        and mark it consumed — all in one transaction. Waits out database outages."""
        letter = DeadLetter.of(
            self.settings,
            self.spec.name,
            record,
            event,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        while True:
            try:
                async with self.db.transaction() as session:
                    await self._record_inbox(
                        session, letter.event_id, letter.event_type, record, "dead_lettered"
                    )
                    await letter.keep(session, self.infra)
                break
            except IntegrityError:
                return "duplicate"  # already dead-lettered (or applied) before
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                await self._sleep(1.0)
                if self._stop.is_set():
                    raise
        self.counts["dead"] += 1
        letter.report(self.settings.service)
        return "dead_lettered"


__all__ = ["ConsumerSpec", "Delivery", "EventConsumer", "Handler", "Reject"]

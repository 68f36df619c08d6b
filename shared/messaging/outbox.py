"""Transactional outbox and its relay.

:class:`Outbox` writes an event row in the caller's transaction — the same one as the state
change — so an event exists if and only if the change committed. :class:`OutboxRelay` (in the
worker process) publishes unsent rows in ``seq`` order and marks them sent after the broker's
acknowledgement. A crash between the two re-publishes the row; consumers are idempotent.

Broker loss: the embedded broker keeps its log in memory. Whenever the relay connects (and
a producer that lost a broker connection is replaced, since it sends nothing more), and
every few seconds, it checks that the broker still holds what it published (its marker
record is still at its offset, and no partition's log ends at or below the relay's latest
write there) before it publishes anything new. If not (the broker restarted empty), it
marks the recently sent rows unsent again and re-publishes them in order, so nothing that
was not yet consumed is lost (consumers drop what they have already applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.data.db import ChangeWatch, Database, utcnow
from shared.data.infra import OUTBOX_CHANNEL, InfraTables
from shared.messaging.events import CloudEvent, encode, topics
from shared.messaging.events.payloads import RELAY_MARKER_V1, RelayMarkerV1
from shared.messaging.kafka import (
    ConnectionLost,
    OffsetProbe,
    OutgoingRecord,
    Producer,
    SentRecord,
    TopicPartition,
)
from shared.messaging.trust import member_trust
from shared.web.observability import (
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
    OUTBOX_REPLAYS,
    RELAY_ERRORS,
    current_traceparent,
)

log = logging.getLogger("vardkedja.outbox")


def protected_record(
    settings: Settings, event: CloudEvent, topic: str
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """``event`` as a record for ``topic``: (key, body, headers), its data sealed for the
    topic's member (a member's topic) and signed by the member of ``settings``."""
    key, body, headers = encode(event)
    body, headers = member_trust(settings).protect(
        topic, key, body, headers, event_id=event.id, source=event.source
    )
    return key, body, headers


class Outbox:
    """Writes events into the outbox table inside the caller's transaction."""

    def __init__(self, settings: Settings, infra: InfraTables) -> None:
        self.settings = settings
        self.infra = infra
        self._insert = infra.outbox.insert()
        # Nothing is written unsigned: a process without its keys and the trust list
        # refuses to start (TrustConfigError), in every environment.
        member_trust(settings)

    def event(
        self,
        type_: str,
        payload: BaseModel,
        *,
        subject: str | None = None,
        key: str | None = None,
        aggversion: int | None = None,
    ) -> CloudEvent:
        """A CloudEvent from this service, carrying the current trace context."""
        return CloudEvent(
            source=self.settings.source,
            type=type_,
            subject=subject,
            aggversion=aggversion,
            traceparent=current_traceparent(),
            partitionkey=key,
            data=payload.model_dump(mode="json"),
        )

    async def add(self, session: AsyncSession, topic: str, event: CloudEvent) -> None:
        """Write ``event`` for ``topic`` in ``session``'s transaction (flushes, never commits).
        The row holds the record as it goes on the bus: sealed for ``topic``'s member and
        signed by this one (:mod:`shared.messaging.trust`)."""
        key, body, headers = protected_record(self.settings, event, topic)
        # One statement object with parameters (not .values(...) per call): SQLAlchemy
        # compiles it once and reuses it, instead of building and keying a new one each time.
        await session.execute(
            self._insert,
            {
                "event_id": event.id,
                "topic": topic,
                "key": key.decode() if key is not None else None,
                "event_type": event.type,
                "headers": [[k, v.decode()] for k, v in headers],
                "body": body,
                "created_at": utcnow(),
                "attempts": 0,
                "publish_count": 0,
            },
        )

    async def publish(
        self,
        session: AsyncSession,
        topic: str,
        type_: str,
        payload: BaseModel,
        *,
        subject: str | None = None,
        key: str | None = None,
        aggversion: int | None = None,
    ) -> CloudEvent:
        """Build an event and add it to the outbox; returns it."""
        ev = self.event(type_, payload, subject=subject, key=key, aggversion=aggversion)
        await self.add(session, topic, ev)
        return ev


class OutboxRelay:
    """Publishes the outbox of one service, in order, surviving broker outages with backoff."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        infra: InfraTables,
        *,
        batch_size: int = 200,
        idle_interval: float = 0.02,
        loss_check_interval: float = 5.0,
        max_backoff: float | None = None,
        producer_factory: Callable[[], Producer] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.infra = infra
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.loss_check_interval = loss_check_interval
        self.max_backoff = (
            settings.kafka.relay_max_backoff_s if max_backoff is None else max_backoff
        )
        self._producer_factory = producer_factory or (
            lambda: Producer(settings.kafka, f"{settings.member.digits}-{settings.service}-relay")
        )
        self._producer: Producer | None = None
        self._probe: OffsetProbe | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        # Highest offset written per partition, to notice a broker that lost its log.
        self._high: dict[TopicPartition, int] = {}
        # Per partition, the lowest offset of this relay's latest write there: a log that
        # still holds it ends past it. (Not the highest: the embedded broker reports a log
        # end of one past the *first* record of the last batch.)
        self._floor: dict[TopicPartition, int] = {}
        self._watch = ChangeWatch(db.url, channel=OUTBOX_CHANNEL)
        self.safety_poll_interval = 1.0
        # (partition, offset, event id) of this relay's marker on its internal topic.
        self._marker: tuple[TopicPartition, int, str] | None = None
        self._marker_written = 0.0
        self.marker_refresh_interval = 3600.0
        # Set on every (re)connect (a producer that lost a broker connection is replaced):
        # nothing is published until the broker is known to still hold what this relay
        # published before (it may have restarted empty).
        self._unverified = True
        self.published = 0
        self.replays = 0
        self.errors = 0
        # Topics created (or found) since the producer connected.
        self._topics_ensured: set[str] = set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Publish now instead of at the next idle tick."""
        self._wake.set()

    async def run(self) -> None:
        """Publish until :meth:`stop`; broker and database errors back off and retry."""
        await self._load_high_marks()
        backoff = 0.0
        last_loss_check = 0.0
        last_query = 0.0
        full = False
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                try:
                    producer = await self._ensure_producer()
                    if producer.connection_lost:
                        # It sends nothing more, and the broker may have restarted empty: a
                        # new producer (after the backoff, should the broker keep dropping
                        # connections), checked before it publishes.
                        raise ConnectionLost("the relay's producer lost a broker connection")
                    if self.settings.kafka.replay_on_broker_loss and (
                        self._unverified
                        or loop.time() - last_loss_check >= self.loss_check_interval
                    ):
                        last_loss_check = loop.time()
                        if not await self._verify():
                            continue
                    # While idle, query only when the database may have changed (on
                    # PostgreSQL the outbox's trigger notifies, and wakes this loop).
                    await self._watch.listen(self.wake)
                    if (
                        not full
                        and not self._watch.changed()
                        and loop.time() - last_query < self.safety_poll_interval
                    ):
                        await self._idle(self.idle_interval)
                        continue
                    last_query = loop.time()
                    n = await self.publish_batch()
                    full = n >= self.batch_size  # more may wait: look again at once
                    backoff = 0.0
                    if n == 0:
                        await self._idle(self.idle_interval)
                except Exception as exc:  # broker down, DB down: wait and retry, never exit
                    RELAY_ERRORS.labels(self.settings.service).inc()
                    self.errors += 1
                    backoff = min(self.max_backoff, max(0.1, backoff * 2))
                    sleep = backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter
                    log.warning(
                        "outbox relay retrying",
                        extra={"error_type": type(exc).__name__, "backoff_s": round(sleep, 2)},
                    )
                    await self._reset_producer()
                    await self._idle(sleep)
                    full = True  # what failed waits in the outbox: look again at once
        finally:
            await self._reset_producer()
            await self._watch.aclose()

    async def _verify(self) -> bool:
        """Run the loss check; whether publishing may go on."""
        known = await self._check_broker_loss()
        if self._producer is None:
            return False  # it replayed: reconnect, re-create topics, check again
        if known:
            self._unverified = False
            return True
        if self._unverified:
            # Publishing now could put new records ahead of a replay of older ones of the
            # same key: ask again first.
            await self._idle(min(1.0, self.loss_check_interval))
            return False
        return True

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _ensure_producer(self) -> Producer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                await _quiet_stop(producer)
                raise
            self._producer = producer
            # Any error or lost connection replaces the producer; the broker may have
            # restarted meanwhile. The marker is kept (not rewritten) until it has been read
            # back.
            self._unverified = True
            if self.settings.kafka.create_topics:
                await self._ensure_topics()
        return self._producer

    async def _ensure_topics(self) -> None:
        from shared.messaging.kafka import ensure_topics

        async with self.db.sessionmaker() as session:
            names = (await session.execute(select(self.infra.outbox.c.topic).distinct())).scalars()
            wanted = list(names)
        wanted.append(topics.internal(self.settings.member.orgnr))  # the marker's topic
        await ensure_topics(self.settings.kafka, wanted)
        self._topics_ensured = set(wanted)

    async def _write_marker(self) -> None:
        """Write this relay's marker; :meth:`_check_broker_loss` reads it back later."""
        assert self._producer is not None
        relay = f"{self.settings.member.digits}-{self.settings.service}"
        marker = CloudEvent(
            source=self.settings.source,
            type=RELAY_MARKER_V1,
            partitionkey=f"relay-marker:{relay}",
            data=RelayMarkerV1(relay=relay).model_dump(mode="json"),
        )
        topic = topics.internal(self.settings.member.orgnr)
        key, value, headers = protected_record(self.settings, marker, topic)
        [result] = await self._producer.send_ordered([OutgoingRecord(topic, key, value, headers)])
        if isinstance(result, BaseException):
            raise result
        self._marker = (TopicPartition(result.topic, result.partition), result.offset, marker.id)
        self._marker_written = asyncio.get_running_loop().time()

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        probe, self._probe = self._probe, None
        if producer is not None:
            await _quiet_stop(producer)
        if probe is not None:
            await _quiet_stop(probe)

    async def _load_high_marks(self) -> None:
        """Where this relay wrote, from the rows sent within the replay window (older rows
        are not replayed, and after an earlier loss their offsets belong to a log that is
        gone): the highest offset per partition, and the lowest of the latest batch there
        (its rows share one ``sent_at``)."""
        since = utcnow() - dt.timedelta(hours=self.settings.kafka.replay_window_hours)
        ob = self.infra.outbox
        sent = (
            ob.c.sent_at.is_not(None),
            ob.c.partition.is_not(None),
            ob.c.created_at >= since,
        )
        latest = (
            select(ob.c.topic, ob.c.partition, func.max(ob.c.sent_at).label("sent_at"))
            .where(*sent)
            .group_by(ob.c.topic, ob.c.partition)
            .subquery()
        )
        async with self.db.sessionmaker() as session:
            rows = await session.execute(
                select(ob.c.topic, ob.c.partition, func.max(ob.c.offset))
                .where(*sent)
                .group_by(ob.c.topic, ob.c.partition)
            )
            for topic, partition, offset in rows:
                self._high[TopicPartition(topic, partition)] = int(offset)
            rows = await session.execute(
                select(ob.c.topic, ob.c.partition, func.min(ob.c.offset))
                .join(
                    latest,
                    (ob.c.topic == latest.c.topic)
                    & (ob.c.partition == latest.c.partition)
                    & (ob.c.sent_at == latest.c.sent_at),
                )
                .where(*sent)
                .group_by(ob.c.topic, ob.c.partition)
            )
            for topic, partition, offset in rows:
                self._floor[TopicPartition(topic, partition)] = int(offset)

    async def publish_batch(self) -> int:
        """Publish up to ``batch_size`` unsent events; returns how many were marked sent."""
        assert self._producer is not None
        ob = self.infra.outbox
        async with self.db.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(ob.c.seq, ob.c.topic, ob.c.key, ob.c.headers, ob.c.body)
                    .where(ob.c.sent_at.is_(None))
                    .order_by(ob.c.seq)
                    .limit(self.batch_size)
                )
            ).all()
        OUTBOX_PENDING.labels(self.settings.service).set(len(rows))
        if not rows:
            return 0
        records = [
            OutgoingRecord(
                topic=r.topic,
                key=r.key.encode() if r.key is not None else None,
                value=bytes(r.body),
                headers=[(k, v.encode()) for k, v in r.headers],
            )
            for r in rows
        ]
        if self.settings.kafka.create_topics:
            # A topic first written since the producer connected (another member's inbound
            # topic, say): Apache Kafka creates none on its own.
            new = {r.topic for r in records} - self._topics_ensured
            if new:
                from shared.messaging.kafka import ensure_topics

                await ensure_topics(self.settings.kafka, new)
                self._topics_ensured |= new
        results = await self._producer.send_ordered(records)
        sent: list[tuple[int, SentRecord]] = []
        failed_keys: set[tuple[str, str | None]] = set()
        first_error: BaseException | None = None
        for row, res in zip(rows, results, strict=True):
            if isinstance(res, BaseException):
                failed_keys.add((row.topic, row.key))
                first_error = first_error or res
            elif (row.topic, row.key) not in failed_keys:
                # A later event of a key whose earlier event failed is sent again after it.
                sent.append((row.seq, res))
        loss = False
        now = utcnow()
        for _seq, res in sent:
            tp = TopicPartition(res.topic, res.partition)
            if res.offset <= self._high.get(tp, -1):
                loss = True
            self._high[tp] = max(self._high.get(tp, -1), res.offset)
        floor: dict[TopicPartition, int] = {}
        for res in results:  # every acknowledged record, marked sent or not
            if isinstance(res, SentRecord):
                tp = TopicPartition(res.topic, res.partition)
                floor[tp] = min(floor.get(tp, res.offset), res.offset)
        self._floor.update(floor)
        async with self.db.transaction() as session:
            if sent:
                # One executemany for the whole batch, not a round trip per row.
                await session.execute(
                    update(ob)
                    .where(ob.c.seq == bindparam("b_seq"))
                    .values(
                        sent_at=now,
                        partition=bindparam("b_partition"),
                        offset=bindparam("b_offset"),
                        attempts=ob.c.attempts + 1,
                        publish_count=ob.c.publish_count + 1,
                        last_error=None,
                    )
                    .execution_options(synchronize_session=False),
                    [
                        {"b_seq": seq, "b_partition": res.partition, "b_offset": res.offset}
                        for seq, res in sent
                    ],
                )
            if failed_keys:
                failed_seqs = [
                    r.seq
                    for r, res in zip(rows, results, strict=True)
                    if isinstance(res, BaseException)
                ]
                await session.execute(
                    update(ob)
                    .where(ob.c.seq.in_(failed_seqs))
                    .values(attempts=ob.c.attempts + 1, last_error=type(first_error).__name__)
                )
        for _seq, res in sent:
            OUTBOX_PUBLISHED.labels(self.settings.service, res.topic).inc()
        self.published += len(sent)
        if loss and self.settings.kafka.replay_on_broker_loss:
            await self._replay("offset went backwards")
        if first_error is not None:
            raise first_error
        return len(sent)

    async def _check_broker_loss(self) -> bool:
        """Check that the broker still holds what this relay published; replay if not.

        Lost when a partition's log ends at or below the first offset of this relay's latest
        write there (known from its outbox even after a restart of the relay), or when the
        record at this relay's marker's offset is gone or another one. (Comparing offsets
        alone is not enough on a partition other members write: their replays can refill it
        past our offsets before we look.) A log that only grew, as on Apache Kafka, is never
        a loss. Writes a marker when the relay has none. False when the broker did not
        answer the read in time (unknown); an unreachable broker raises.
        """
        if self._probe is None:
            self._probe = OffsetProbe(
                self.settings.kafka, f"{self.settings.member.digits}-{self.settings.service}-probe"
            )
        if self._floor:
            ends = await self._probe.end_offsets(self._floor)
            if any(ends[tp] <= offset for tp, offset in self._floor.items()):
                await self._replay("a partition's log ends below what the relay wrote")
                return True
        if self._marker is None:
            await self._write_marker()
            return True
        tp, offset, marker_id = self._marker
        found = await self._probe.event_id_at(tp, offset)
        if found == "":
            return False
        if found != marker_id:
            await self._replay("the relay's marker is gone from the log")
            return True
        if asyncio.get_running_loop().time() - self._marker_written > self.marker_refresh_interval:
            await self._write_marker()  # stay ahead of the topic's retention
        return True

    async def _replay(self, why: str) -> None:
        """The broker lost events: publish recently sent ones again, in their original order."""
        window = dt.timedelta(hours=self.settings.kafka.replay_window_hours)
        ob = self.infra.outbox
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ob)
                .where(ob.c.sent_at.is_not(None), ob.c.created_at >= utcnow() - window)
                .values(sent_at=None)
            )
            count: Any = getattr(result, "rowcount", 0)
        self._high.clear()
        self._floor.clear()
        self._marker = None  # a new one is written once the producer has reconnected
        self.replays += 1
        OUTBOX_REPLAYS.labels(self.settings.service).inc()
        log.warning("broker lost its log; re-publishing", extra={"reason": why, "count": count})
        await self._reset_producer()  # topics must be created again


async def _quiet_stop(client: Producer | OffsetProbe) -> None:
    with contextlib.suppress(Exception):
        # A dead broker makes a client's stop retry for long: bound it.
        await asyncio.wait_for(client.stop(), timeout=5)

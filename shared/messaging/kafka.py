"""Our one module that speaks to Kafka (aiokafka). Nothing else imports aiokafka.

Plain Kafka only — no transactions, no broker-specific features — so the same code runs on
Apache Kafka in production and on the embedded Tansu broker in development and tests
(ADR 0002). Delivery guarantees come from the outbox and the idempotent inbox, not from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import CloseReason
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from shared.config import KafkaSettings
from shared.messaging.events import topics as topic_names

log = logging.getLogger("vardkedja.kafka")
T = TypeVar("T")

__all__ = [
    "PROBE_FETCH_MAX_BYTES",
    "ConnectionLost",
    "Consumer",
    "KafkaError",
    "OffsetProbe",
    "OutgoingRecord",
    "Producer",
    "ReceivedRecord",
    "SentRecord",
    "TopicPartition",
    "broker_node_ids",
    "broker_reachable",
    "committed_offsets",
    "ensure_topics",
]


def _common(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id_prefix}-{client_id}",
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol == "SSL":
        ctx = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
        kwargs["ssl_context"] = ctx
    return kwargs


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class SentRecord:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class ReceivedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class ConnectionLost(KafkaConnectionError):  # type: ignore[misc]
    """A client lost a broker connection: it sends nothing more (see :class:`_LossGuard`)."""


class _LossGuard:
    """Stops an aiokafka client from talking to a broker after it lost a connection to one
    (closed by the broker or the network, not dropped by the client for being idle).

    aiokafka reconnects on its own, without a word, and sends again what was in flight. After
    a restart of a broker that keeps its log in memory (the embedded one) the new connection
    reaches an empty log: a producer would put a record there ahead of the replay of older
    records of its key, and a consumer would commit offsets of the old log there, which then
    hide the replayed records below them (ADR 0005). So from the first lost connection on,
    the client opens no new connection: its requests fail, and its owner replaces it and
    checks the broker before it goes on.
    """

    def __init__(self, client: Any) -> None:
        self.lost = asyncio.Event()
        # No public API tells of a closed connection or lets a client refuse a new one: the
        # client calls these two for every connection it closes and every request it sends.
        on_closed, get_conn = client._on_connection_closed, client._get_conn

        def closed(conn: object, reason: object) -> None:
            # Not a connection the client itself dropped for being idle: no broker went
            # away, and its other connections, or the owner's periodic check, see a restart
            # (without this, a client on a cluster would be replaced every few minutes).
            if reason != CloseReason.IDLE_DROP:
                self.lost.set()
            on_closed(conn, reason)

        async def conn_unless_lost(node_id: object, **kwargs: Any) -> object:
            return None if self.lost.is_set() else await get_conn(node_id, **kwargs)

        client._on_connection_closed = closed
        client._get_conn = conn_unless_lost

    def check(self) -> None:
        """:class:`ConnectionLost` once a connection is lost."""
        if self.lost.is_set():
            raise ConnectionLost("a broker connection was lost")

    async def unless_lost(self, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result, or :class:`ConnectionLost` as soon as a connection is lost
        (aiokafka would retry for as long as no connection can be opened)."""
        if self.lost.is_set() and asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: nothing of it reaches a broker
        self.check()
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise ConnectionLost("a broker connection was lost")


class Producer:
    """A producer with acks=all; idempotence only where the broker supports it.

    **It sends nothing more once it has lost a broker connection** (:class:`_LossGuard`):
    every record not yet acknowledged then fails with :class:`ConnectionLost`, and the owner
    makes a new producer and checks the broker before it publishes again
    (:class:`shared.messaging.outbox.OutboxRelay`).
    """

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            **_common(settings, client_id),
            acks="all",
            enable_idempotence=settings.idempotent_producer,
            linger_ms=2,
            max_batch_size=256 * 1024,
        )
        self._guard = _LossGuard(self._producer.client)

    async def start(self) -> None:
        """Connect, and open a connection to every broker now, so that a broker that
        restarts after the caller's next check closes one (see :attr:`connection_lost`).
        :class:`ConnectionLost` if a connection is lost meanwhile (the guard refuses every
        new one, and aiokafka would wait for them for ever)."""
        await self._guard.unless_lost(self._producer.start())
        client = self._producer.client
        for broker in client.cluster.brokers():
            if not await client.ready(broker.nodeId):
                raise KafkaConnectionError(f"broker {broker.nodeId} is not reachable")

    async def stop(self) -> None:
        self._fail_unsent()
        await self._producer.stop()

    @property
    def connection_lost(self) -> bool:
        """Whether a broker connection closed since :meth:`start`: nothing more is sent."""
        return self._guard.lost.is_set()

    def _fail_unsent(self) -> None:
        if self.connection_lost:
            # Nothing can go out any more: fail what waits, so that stopping does not wait
            # for it (aiokafka's stop flushes).
            self._producer._message_accumulator.fail_all(ConnectionLost("broker connection lost"))

    async def send_ordered(
        self, records: Sequence[OutgoingRecord]
    ) -> list[SentRecord | BaseException]:
        """Send ``records`` in order and wait for every acknowledgement.

        aiokafka keeps at most one request in flight per broker node, so records of one
        partition are written in the order given. The result has, per record, where it was
        written or the exception that stopped it (:class:`ConnectionLost` for each record not
        acknowledged when a connection closed).
        """
        if self.connection_lost:
            # Nothing more goes out. (Idempotent, aiokafka's sender may also have died on
            # the lost connection; its later sends then fail with a generic error.)
            return [ConnectionLost("a broker connection was lost") for _ in records]
        futures: list[asyncio.Future[Any] | BaseException] = []
        for rec in records:
            try:
                futures.append(
                    await self._producer.send(
                        rec.topic, value=rec.value, key=rec.key, headers=rec.headers
                    )
                )
            except KafkaError as exc:  # e.g. unknown topic, buffer full, connection lost
                futures.append(exc)
        pending = [f for f in futures if not isinstance(f, BaseException)]
        if pending:
            with contextlib.suppress(ConnectionLost):
                await self._guard.unless_lost(asyncio.wait(pending))
            self._fail_unsent()
        results: list[SentRecord | BaseException] = []
        for fut in futures:
            if isinstance(fut, BaseException):
                results.append(fut)
                continue
            try:
                md = await fut
                results.append(SentRecord(md.topic, md.partition, md.offset))
            except KafkaError as exc:
                results.append(exc)
        return results


class Consumer:
    """A group consumer that never commits on its own: offsets are committed by the caller
    after the database transaction of the handled records has committed."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        topics: Iterable[str],
        group_id: str,
        client_id: str,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            **_common(settings, client_id),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=200,
            session_timeout_ms=settings.session_timeout_ms,
            rebalance_timeout_ms=settings.rebalance_timeout_ms,
            heartbeat_interval_ms=max(300, settings.session_timeout_ms // 5),
        )
        self._guard = _LossGuard(self._consumer._client)

    async def start(self) -> None:
        """Connect and join the group. :class:`ConnectionLost` if a broker connection is
        lost meanwhile: the guard then refuses every new connection, and aiokafka would
        wait for the group's assignment for ever (a broker restarted while a worker was
        starting its consumer left it so, reading nothing)."""
        await self._guard.unless_lost(self._consumer.start())

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own cancellation
            # aiokafka's fetcher lets out the cancellation of a fetch that was waiting out
            # its backoff after an error, and leaves the rest unclosed: finish the job.
            fetcher = self._consumer._fetcher
            pending = list(fetcher._pending_tasks) if fetcher is not None else []
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._consumer._client.close()

    @property
    def connection_lost(self) -> bool:
        """Whether a broker connection closed since :meth:`start`: :meth:`poll` and
        :meth:`commit` then raise :class:`ConnectionLost`, and the owner starts a new
        consumer, which reads from the offsets the broker holds now."""
        return self._guard.lost.is_set()

    async def poll(self, timeout_ms: int = 200) -> dict[TopicPartition, list[ReceivedRecord]]:
        """Records fetched so far; none after a lost connection (a new consumer reads them
        again, from the broker as it is now)."""
        self._guard.check()
        batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        return {
            tp: [
                ReceivedRecord(
                    m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ())
                )
                for m in msgs
            ]
            for tp, msgs in batch.items()
        }

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read, i.e. last handled + 1).

        Never after a lost connection: the offsets belong to the log the records came from,
        and a broker that restarted empty would keep them for a new log, where they would
        hide every record below them. :class:`ConnectionLost` instead."""
        await self._guard.unless_lost(self._consumer.commit(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` again from ``offset`` (used after a failed batch)."""
        self._consumer.seek(tp, offset)


async def ensure_topics(
    settings: KafkaSettings, names: Iterable[str], *, client_id: str = "admin"
) -> None:
    """Create the topics that do not exist yet, each with production's configuration
    (:func:`shared.messaging.events.topics.topic_configs`: compaction, retention, and
    ``min.insync.replicas`` when replicated). An existing topic is left as it is."""
    wanted = sorted(set(names))
    admin = AIOKafkaAdminClient(**_common(settings, client_id))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                settings.partitions,
                settings.replication_factor,
                topic_configs=topic_names.topic_configs(
                    name, replication_factor=settings.replication_factor
                ),
            )
            for name in wanted
            if name not in existing
        ]
        if new:
            _raise_refused(await admin.create_topics(new))
            log.info("topics created", extra={"topics": [t.name for t in new]})
    finally:
        await admin.close()


def _raise_refused(response: Any) -> None:
    """Raise the broker's error for a topic it did not create. aiokafka returns the errors
    instead of raising them: a configuration or replication factor the broker refuses would
    otherwise leave the topic missing without a word. One that exists already is fine (another
    process created it first)."""
    for entry in response.topic_errors:  # (topic, error_code[, error_message])
        name, code = entry[0], entry[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            message = entry[2] if len(entry) > 2 and entry[2] else ""
            raise for_code(code)(f"creating topic {name}: {message}".rstrip(": "))


PROBE_FETCH_MAX_BYTES = 64 * 1024
"""What one read of :meth:`OffsetProbe.event_id_at` may fetch. It wants one record, but a
fetch at the client's defaults (1 MiB a partition, 50 MiB a request; the embedded broker
answers with the log from the offset on) brought back the log written since the record,
every few seconds in every relay: memory and time that grew with the traffic. A broker
always returns at least the first record batch, however large, so a small limit never
hides the record asked for."""


class OffsetProbe:
    """Asks the broker for log-end offsets, on one long-lived client without a group."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self._consumer = AIOKafkaConsumer(
            **_common(settings, client_id),
            enable_auto_commit=False,
            fetch_max_bytes=PROBE_FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PROBE_FETCH_MAX_BYTES,
        )
        self._started = False

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def event_id_at(self, tp: TopicPartition, offset: int) -> str | None:
        """The ``ce_id`` of the record at ``offset`` of ``tp``: None when the log no longer
        holds that offset (or the topic is gone), ``""`` when the broker did not answer in
        time (unknown)."""
        ends = await self.end_offsets([tp])
        if ends[tp] <= offset:
            return None
        self._consumer.assign([tp])
        try:
            self._consumer.seek(tp, offset)
            batch = await self._consumer.getmany(tp, timeout_ms=2000, max_records=1)
        finally:
            # Assigned, the client would go on fetching the partition in the background
            # and keep what it fetched until the next look: let it go now.
            self._consumer.unsubscribe()
        records = batch.get(tp, [])
        if not records:
            return ""
        if records[0].offset != offset:
            return None
        value: bytes = dict(records[0].headers or ()).get("ce_id", b"")
        return value.decode("utf-8", "replace")

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log-end offset of each partition; 0 for a partition the broker does not know
        (its topic is gone, or was re-created with fewer partitions). An unreachable broker
        raises."""
        if not self._started:
            await self._consumer.start()
            self._started = True
        wanted = list(tps)
        consumer = self._consumer
        # Fresh metadata from the broker (what topics() asks for; the client's own partition
        # map may be stale). Asking for an offset of a partition the broker does not have
        # would wait for the request timeout and fail, every time.
        cluster = await consumer._client.fetch_all_metadata()
        present = [
            tp for tp in wanted if tp.partition in (cluster.partitions_for_topic(tp.topic) or ())
        ]
        result: dict[TopicPartition, int] = {tp: 0 for tp in wanted if tp not in present}
        if present:
            async with asyncio.timeout(self.settings.request_timeout_ms / 1000):
                result.update(await consumer.end_offsets(present))
        return result


async def committed_offsets(
    settings: KafkaSettings,
    group_id: str,
    tps: Iterable[TopicPartition],
    *,
    client_id: str = "offsets",
) -> dict[TopicPartition, int]:
    """The offsets a consumer group has committed on ``tps`` (for lag and for tests).

    Asked through a consumer of that group that never subscribes, so it does not join the
    group (the embedded broker's answer to the admin client's OffsetFetch cannot be parsed).
    """
    consumer = AIOKafkaConsumer(
        **_common(settings, client_id), group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            offset = await consumer.committed(tp)
            if offset is not None and offset >= 0:
                out[tp] = offset
        return out
    finally:
        await consumer.stop()


async def broker_node_ids(settings: KafkaSettings, *, timeout: float = 2.0) -> set[int]:
    """The ids of the live brokers a Metadata answer names (a broker that is up and serving,
    not only a port that accepts connections)."""
    admin = AIOKafkaAdminClient(**_common(settings, "health"))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            cluster = await admin._client.fetch_all_metadata()
            return {b.nodeId for b in cluster.brokers()}
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def broker_reachable(settings: KafkaSettings, *, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request within ``timeout`` seconds."""
    admin = AIOKafkaAdminClient(**_common(settings, "health"))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            await admin.list_topics()
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()

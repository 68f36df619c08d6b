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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.config import KafkaSettings
from shared.events import topics as topic_names

log = logging.getLogger("vardkedja.kafka")

__all__ = [
    "PROBE_FETCH_MAX_BYTES",
    "Consumer",
    "KafkaError",
    "OffsetProbe",
    "OutgoingRecord",
    "Producer",
    "ReceivedRecord",
    "SentRecord",
    "TopicPartition",
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


class Producer:
    """A producer with acks=all; idempotence only where the broker supports it."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            **_common(settings, client_id),
            acks="all",
            enable_idempotence=settings.idempotent_producer,
            linger_ms=2,
            max_batch_size=256 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def connections(self) -> frozenset[object]:
        """The producer's open broker connections. aiokafka reconnects on its own and says
        nothing; a connection that is no longer in the set was closed (the broker may have
        restarted)."""
        conns = self._producer.client._conns.values()  # no public API tells of a reconnect
        return frozenset(c for c in conns if c.connected())

    async def send_ordered(
        self, records: Sequence[OutgoingRecord]
    ) -> list[SentRecord | BaseException]:
        """Send ``records`` in order and wait for every acknowledgement.

        aiokafka keeps at most one request in flight per broker node, so records of one
        partition are written in the order given. The result has, per record, where it was
        written or the exception that stopped it.
        """
        futures: list[asyncio.Future[Any] | BaseException] = []
        for rec in records:
            try:
                futures.append(
                    await self._producer.send(
                        rec.topic, value=rec.value, key=rec.key, headers=rec.headers
                    )
                )
            except KafkaError as exc:  # e.g. unknown topic, buffer full
                futures.append(exc)
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
            heartbeat_interval_ms=max(300, settings.session_timeout_ms // 5),
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> dict[TopicPartition, list[ReceivedRecord]]:
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
        """Commit ``offsets`` (the next offset to read, i.e. last handled + 1)."""
        await self._consumer.commit(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` again from ``offset`` (used after a failed batch)."""
        self._consumer.seek(tp, offset)


async def ensure_topics(
    settings: KafkaSettings, names: Iterable[str], *, client_id: str = "admin"
) -> None:
    """Create the topics that do not exist yet (compaction where the layout says so)."""
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
                topic_configs={"cleanup.policy": "compact"}
                if name in topic_names.COMPACTED
                else {},
            )
            for name in wanted
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            log.info("topics created", extra={"topics": [t.name for t in new]})
    finally:
        await admin.close()


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

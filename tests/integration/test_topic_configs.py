"""Topic configuration on Apache Kafka: ``ensure_topics`` creates each kind of topic as
production does (``shared.messaging.events.topics.topic_configs``, the table ``create-topics.sh`` is
checked against), compaction really keeps the newest record of each key, and a directory
replica rebuilt from offset 0 of a compacted ``vardkedja.directory`` equals the owner's units.

Kafka never cleans a topic's active segment and rolls a segment only when a record comes
after ``segment.ms``, so the compacted topics here roll every few hundred milliseconds and
are cleaned at a low dirty ratio (the test broker's cleaner looks every second,
``log.cleaner.backoff.ms``). The brokers are private: the rebuild reads the whole directory
topic, which must hold only that test's units."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationFactorError, UnknownTopicOrPartitionError

from services.directory.schemas import UnitUpdate
from shared.data import migrations
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.kafka import OutgoingRecord, Producer, TopicPartition, ensure_topics
from shared.web.app import create_app
from tests.conftest import ORG_REGION, ORG_VAXJO, kafka_settings, make_settings, running_broker
from tests.helpers.directory import SPEC, auth
from tests.helpers.harness import eventually
from tests.integration.directory.test_directory_replication import (
    make_changes,
    replica_units,
    running_worker,
    source_units,
)

FAST_COMPACTION = {
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
}
"""Added to the directory's configuration so that a test sees the cleaner at work."""

DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs' source of a value set on the topic itself (not a default)."""


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Apache Kafka of this module's own: the first test creates ``vardkedja.directory``."""
    yield from running_broker("kafka", tmp_path_factory.mktemp("topic-configs"))


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Broker]:
    """Apache Kafka of one test (its ``vardkedja.directory`` is created by the test)."""
    yield from running_broker("kafka", tmp_path / "kafka")


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="topic-configs-test")
    await admin.start()
    return admin


async def topic_overrides(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Per topic, the configuration set on the topic itself (what it was created with)."""
    found: dict[str, dict[str, str]] = {}

    async def described() -> bool:
        # A topic just created may not be known yet to the broker that answers.
        admin = await admin_client(bootstrap)
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
            )
        finally:
            await admin.close()
        for response in responses:
            assert response.API_VERSION >= 1, "config_source needs DescribeConfigs v1"
            for error_code, _message, _type, name, entries in response.resources:
                if error_code == UnknownTopicOrPartitionError.errno:
                    return False
                assert error_code == 0, name
                found[name] = {
                    entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG
                }
        return True

    await eventually(described, within=30, what="the topics' configuration described")
    return found


async def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str]) -> None:
    admin = await admin_client(bootstrap)
    try:
        response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()
    assert [entry[1] for entry in response.topic_errors] == [0], response


async def read_from_zero(
    bootstrap: str, topic: str, partitions: int
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` still in the log, from offset 0 to the log end (key, value),
    read without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[bytes | None, bytes | None]] = []

        async def read() -> None:
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(*tps, timeout_ms=200)).values():
                    records.extend(
                        (r.key, r.value)
                        for r in batch
                        if r.offset < ends[TopicPartition(r.topic, r.partition)]
                    )

        await asyncio.wait_for(read(), timeout=30)
    finally:
        await consumer.stop()
    return records


async def log_end_total(bootstrap: str, topic: str, partitions: int) -> int:
    """How many records were ever written to ``topic`` (the sum of its log-end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return sum(ends.values())


class TestEnsureTopicsCreatesProductionsConfiguration:
    async def test_every_kind_of_topic_gets_its_configuration(self, kafka: Broker) -> None:
        orgnr = f"55{uuid.uuid4().int % 10**8:08d}"
        other = f"test.plain.{uuid.uuid4().hex[:8]}"
        names = [topics.DIRECTORY, *topics.member_topics(orgnr), other]
        await ensure_topics(kafka_settings(kafka.bootstrap), names)

        found = await topic_overrides(kafka.bootstrap, names)
        assert found[topics.DIRECTORY] == {"cleanup.policy": "compact"}
        week, month = str(7 * 24 * 3600 * 1000), str(30 * 24 * 3600 * 1000)
        assert found[topics.inbound(orgnr)] == {"cleanup.policy": "delete", "retention.ms": week}
        assert found[topics.internal(orgnr)] == {"cleanup.policy": "delete", "retention.ms": week}
        assert found[topics.deadletter(orgnr)] == {
            "cleanup.policy": "delete",
            "retention.ms": month,
        }
        assert found[other] == {}, "a topic outside the layout keeps the broker's defaults"
        for name in names:
            assert found[name] == topics.topic_configs(name)

    async def test_an_existing_topic_keeps_its_configuration(self, kafka: Broker) -> None:
        orgnr = f"56{uuid.uuid4().int % 10**8:08d}"
        await create_topic(kafka.bootstrap, topics.inbound(orgnr), 1, {"retention.ms": "1234"})
        await ensure_topics(kafka_settings(kafka.bootstrap), topics.member_topics(orgnr))
        found = await topic_overrides(kafka.bootstrap, topics.member_topics(orgnr))
        assert found[topics.inbound(orgnr)] == {"retention.ms": "1234"}
        assert found[topics.internal(orgnr)] == topics.topic_configs(topics.internal(orgnr))

    async def test_a_topic_the_broker_refuses_is_an_error(self, kafka: Broker) -> None:
        # aiokafka returns the broker's refusal instead of raising it; the topic would be
        # missing without a word.
        settings = kafka_settings(kafka.bootstrap, replication_factor=3)  # one node here
        with pytest.raises(InvalidReplicationFactorError):
            await ensure_topics(settings, [f"test.refused.{uuid.uuid4().hex[:8]}"])

    def test_replicated_topics_need_two_in_sync_replicas(self) -> None:
        # One node cannot hold three replicas: the table, which ensure_topics applies with
        # the settings' replication factor, is what is checked here.
        for name in (topics.DIRECTORY, *topics.member_topics(ORG_VAXJO)):
            assert "min.insync.replicas" not in topics.topic_configs(name, replication_factor=2)
            assert topics.topic_configs(name, replication_factor=3) == {
                **topics.topic_configs(name),
                "min.insync.replicas": "2",
            }


class TestCompactionKeepsTheNewestRecordOfEachKey:
    async def test_old_versions_are_removed(self, kafka: Broker) -> None:
        topic = f"test.compacted.{uuid.uuid4().hex[:8]}"
        await create_topic(
            kafka.bootstrap, topic, 1, {**topics.topic_configs(topics.DIRECTORY), **FAST_COMPACTION}
        )
        keys, versions = [f"unit-{k:02d}" for k in range(20)], 30
        producer = Producer(kafka_settings(kafka.bootstrap), "compaction-test")
        await producer.start()
        written = 0
        try:
            for version in range(versions):
                sent = await producer.send_ordered(
                    [
                        OutgoingRecord(topic, key.encode(), f"{key}:{version}".encode(), [])
                        for key in keys
                    ]
                )
                assert not [s for s in sent if isinstance(s, BaseException)]
                written += len(sent)

            remaining: list[tuple[bytes | None, bytes | None]] = []

            async def compacted() -> bool:
                # A record now and then rolls the segment the versions are in (only a
                # record after segment.ms does): the cleaner never touches the active one.
                nonlocal written, remaining
                await producer.send_ordered([OutgoingRecord(topic, b"tick", b"tick", [])])
                written += 1
                remaining = await read_from_zero(kafka.bootstrap, topic, 1)
                per_key = Counter(k for k, _ in remaining if k != b"tick")
                return set(per_key.values()) == {1}

            await eventually(compacted, within=60, what="every key compacted to one record")
        finally:
            await producer.stop()

        newest = {k: v for k, v in remaining if k != b"tick"}
        assert newest == {k.encode(): f"{k}:{versions - 1}".encode() for k in keys}
        assert len(remaining) < written


class OwnerApi:
    """The owner's directory API in this process, changing its units one at a time."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers = auth(ORG_VAXJO)
        self.current: dict[str, tuple[dict[str, Any], str]] = {}  # body, ETag
        self.changes = 0

    async def change(self, unit_id: str) -> None:
        """A new mission for ``unit_id`` (a new version, broadcast on the directory)."""
        if unit_id not in self.current:
            r = await self.client.get(f"/v1/units/{unit_id}", headers=self.headers)
            body = {k: v for k, v in r.json().items() if k in UnitUpdate.model_fields}
            self.current[unit_id] = body, r.headers["ETag"]
        body, etag = self.current[unit_id]
        self.changes += 1
        r = await self.client.put(
            f"/v1/units/{unit_id}",
            json={**body, "mission": f"Uppdrag, ändring {self.changes}"},
            headers={**self.headers, "If-Match": etag},
        )
        assert r.status_code == 200, r.text
        self.current[unit_id] = body, r.headers["ETag"]


@contextlib.asynccontextmanager
async def owner_api(url: str, bootstrap: str) -> AsyncIterator[OwnerApi]:
    app = create_app(SPEC, make_settings(orgnr=ORG_VAXJO, db_url=url, bootstrap=bootstrap))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield OwnerApi(client)
    finally:
        await app.state.ctx.db.dispose()


class TestAReplicaRebuiltFromTheCompactedDirectory:
    async def test_equals_the_owners_units(self, own_kafka: Broker, tmp_path: Path) -> None:
        bootstrap = own_kafka.bootstrap
        partitions = kafka_settings(bootstrap).partitions
        # Created before any service starts: ensure_topics leaves it as it is.
        await create_topic(
            bootstrap,
            topics.DIRECTORY,
            partitions,
            {**topics.topic_configs(topics.DIRECTORY), **FAST_COMPACTION},
        )
        urls = {name: f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("vaxjo", "fresh")}
        for url in urls.values():
            await migrations.upgrade(SPEC.migrations_dir, url)

        async with running_worker(urls["vaxjo"], ORG_VAXJO, bootstrap):
            await make_changes(urls["vaxjo"], bootstrap)
            async with owner_api(urls["vaxjo"], bootstrap) as owner:
                units = sorted(await source_units(urls["vaxjo"]))
                for _ in range(12):
                    for unit_id in units:
                        await owner.change(unit_id)
                next_unit = itertools.cycle(units)

                async def compacted() -> bool:
                    changes = sum(
                        int(u["version"]) for u in (await source_units(urls["vaxjo"])).values()
                    )
                    written = await log_end_total(bootstrap, topics.DIRECTORY, partitions)
                    if written < changes:  # the relay has not published every change yet
                        return False
                    kept = await read_from_zero(bootstrap, topics.DIRECTORY, partitions)
                    if len(kept) < changes:
                        return True
                    # The relay may have published the changes in one burst, inside one
                    # segment: a segment rolls only when a record comes after segment.ms.
                    await owner.change(next(next_unit))
                    return False

                await eventually(compacted, within=60, what="old versions compacted away")

            source = await source_units(urls["vaxjo"])
            assert min(unit["version"] for unit in source.values()) > 12
            kept = Counter(
                k.decode()
                for k, _ in await read_from_zero(bootstrap, topics.DIRECTORY, partitions)
                if k
            )
            assert set(source) <= set(kept), "each unit's newest record stays"
            assert [u for u, s in source.items() if kept[u] < s["version"]], (
                "some unit's older versions are gone from the log"
            )

            # A new member while the owner runs on: an empty database, and a consumer group
            # that never read the topic.
            async with running_worker(urls["fresh"], ORG_REGION, bootstrap):

                async def rebuilt() -> bool:
                    return await replica_units(urls["fresh"]) == source

                await eventually(rebuilt, within=60, what="the rebuilt replica equal to the owner")
            assert await replica_units(urls["fresh"]) == await source_units(urls["vaxjo"])

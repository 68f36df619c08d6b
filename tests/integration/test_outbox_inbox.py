"""The outbox relay and the idempotent inbox against the real embedded broker and real
databases (SQLite and PostgreSQL): order per key, exactly-once effect under redelivery,
broker restarts, consumer crashes, and dead-lettering of poison messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shared.messaging.broker import Broker
from shared.messaging.events import CloudEvent, topics
from shared.messaging.kafka import (
    Consumer,
    OutgoingRecord,
    Producer,
    TopicPartition,
    committed_offsets,
    ensure_topics,
)
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory, make_settings
from tests.helpers.consumer_proc import CRASH_EXIT
from tests.helpers.harness import COUNTED, BatchCalls, CountedV1, Harness, eventually, infra
from tests.helpers.signed import signed

ROOT = Path(__file__).resolve().parents[2]


def new_topic() -> str:
    return f"vardkedja.test.{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def running(*coros: Awaitable[Any]) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Run ``coros`` as tasks for the duration of the block, then cancel them."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def assert_in_order_once(effects: list[tuple[str, int]], expected: dict[str, int]) -> None:
    """Every key's effects are 0..n-1, each once, in order."""
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, seq in effects:
        per_key[key].append(seq)
    assert {k: len(v) for k, v in per_key.items()} == expected, "lost or duplicated effects"
    for key, seqs in per_key.items():
        assert seqs == list(range(expected[key])), f"order broken for key {key}"


async def produce_raw(bootstrap: str, records: list[OutgoingRecord]) -> None:
    """Write ``records`` as they are (creating their topics first: Apache Kafka creates
    none on its own)."""
    settings = make_settings(bootstrap=bootstrap).kafka
    await ensure_topics(settings, {r.topic for r in records})
    producer = Producer(settings, "test-raw")
    await producer.start()
    try:
        results = await producer.send_ordered(records)
        assert not [r for r in results if isinstance(r, BaseException)]
    finally:
        await producer.stop()


class TestOrderAndExactlyOnce:
    async def test_events_of_each_key_are_applied_once_in_order(
        self, broker: Broker, db_url: str
    ) -> None:
        h = await Harness(
            make_settings(db_url=db_url, bootstrap=broker.bootstrap), new_topic()
        ).setup()
        keys = ["case-a", "case-b", "case-c"]
        for seq in range(40):
            for key in keys:
                await h.write(key, seq)
        relay = h.relay()
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 120), what="120 effects")
        assert_in_order_once(await h.effects(), dict.fromkeys(keys, 40))
        assert await h.unsent() == 0
        assert relay.published == 120

    async def test_a_batch_handler_applies_runs_in_order_and_poison_takes_the_careful_path(
        self, broker: Broker, db_url: str
    ) -> None:
        settings = make_settings(db_url=db_url, bootstrap=broker.bootstrap, dead_letter_after=2)
        h = await Harness(settings, new_topic()).setup()
        keys = ["case-a", "case-b", "case-c"]
        for seq in range(60):
            for key in keys:
                await h.write(key, seq)
        await h.write("poison", 0)  # its partition's batch fails and is applied one by one
        for key in keys:
            await h.write(key, 60)
        batch = BatchCalls()
        relay = h.relay()
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}", batch_handler=batch)
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 183), what="183 effects")
            await eventually(lambda: _count_is(h, infra.dead_letter, 1), what="the poison")
        assert_in_order_once(await h.effects(), dict.fromkeys(keys, 61))
        assert max(batch.sizes) > 1, "runs of events went through the batch handler"
        assert consumer.counts["applied"] == 183
        assert consumer.counts["dead"] == 1
        assert await h.count(infra.inbox) == 184

    async def test_the_same_event_delivered_three_times_is_applied_once(
        self, broker: Broker, db_url: str
    ) -> None:
        topic = new_topic()
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        event = CloudEvent(
            source="urn:vardkedja:2120000647:directory",
            type=COUNTED,
            partitionkey="case-x",
            data=CountedV1(key="case-x", seq=0).model_dump(),
        )
        await produce_raw(broker.bootstrap, [signed(event, topic)] * 3)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(consumer.run()):
            await eventually(
                lambda: _true(consumer.counts["duplicate"] == 2), what="three deliveries"
            )
        assert await h.effects() == [("case-x", 0)]
        assert consumer.counts["applied"] == 1
        assert await h.count(infra.inbox) == 1

    async def test_known_types_without_a_handler_are_skipped_not_dead_lettered(
        self, broker: Broker, db_url: str
    ) -> None:
        topic = new_topic()
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        other = CloudEvent(
            source="urn:vardkedja:2120000647:referral",
            type="se.vardkedja.test.other.v1",
            data={"note": "for another service"},
        )
        await produce_raw(broker.bootstrap, [signed(other, topic)])
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(consumer.run()):
            await eventually(lambda: _true(consumer.counts["skipped"] == 1), what="skip")
        assert await h.count(infra.dead_letter) == 0
        # Another service's event costs no transaction here: no inbox row either.
        assert await h.count(infra.inbox) == 0


class TestBrokerOutage:
    async def test_relay_resumes_after_the_broker_is_killed_and_restarted(
        self, private_broker: Broker, db_url: str
    ) -> None:
        """The broker loses its log (its log directory wiped before the restart; Tansu, which
        keeps it in memory, loses it on any restart): every record and committed offset is
        gone. The relay notices (a partition's log ends below what it wrote) and re-publishes
        the replay window; the consumer re-reads from the start and its inbox drops what
        it already applied. Result: every effect exactly once, in order per key."""
        settings = make_settings(db_url=db_url, bootstrap=private_broker.bootstrap)
        h = await Harness(settings, new_topic()).setup()
        for seq in range(20):
            await h.write("case-a", seq)
            await h.write("case-b", seq)
        relay = h.relay(loss_check_interval=0.5, max_backoff=1.0)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 40), what="first 40 effects")
            private_broker.lose_log()
            for seq in range(20, 35):  # accepted while the broker is down
                await h.write("case-a", seq)
                await h.write("case-b", seq)
            await asyncio.sleep(1.0)  # let the relay fail and back off against a dead broker
            assert await h.unsent() > 0, "nothing can be published while the broker is down"
            private_broker.start()
            await eventually(lambda: _has(h, 70), within=90, what="all 70 effects")
            await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 35, "case-b": 35})
        assert relay.replays >= 1, "the relay must notice the broker lost its log"
        # Whether the consumer meets the replayed copies depends on where its position was
        # when the log was lost (the replay goes out before anything new); if it does, the
        # inbox drops them: each effect happened once, in order (asserted above).

    async def test_a_loss_is_noticed_even_when_another_member_refilled_the_partition(
        self, private_broker: Broker, db_url: str, databases: DatabaseFactory
    ) -> None:
        """Two members write one single-partition topic. After the broker restarts without
        its log, the
        busier member's replay refills the partition past every offset the quieter member
        wrote, before the quieter one looks. Comparing offsets would miss the loss; the
        quieter relay's marker (read back from its own internal topic) does not."""
        topic = new_topic()
        quiet = await Harness(
            make_settings(db_url=db_url, bootstrap=private_broker.bootstrap, partitions=1),
            topic,
        ).setup()
        busy = await Harness(
            make_settings(
                orgnr=ORG_REGION,
                db_url=await databases.new("busy"),
                bootstrap=private_broker.bootstrap,
                partitions=1,
            ),
            topic,
        ).setup()
        for seq in range(5):
            await quiet.write("quiet", seq)
        for seq in range(40):
            await busy.write("busy", seq)
        quiet_relay = quiet.relay(loss_check_interval=4.0, max_backoff=1.0)
        busy_relay = busy.relay(loss_check_interval=0.3, max_backoff=1.0)
        consumer = quiet.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(quiet_relay.run(), busy_relay.run(), consumer.run()):
            await eventually(lambda: _has(quiet, 45), what="all effects before the restart")
            private_broker.lose_log()
            private_broker.start()
            await eventually(
                lambda: _true(quiet_relay.replays >= 1), within=90, what="the quiet relay's replay"
            )
            await eventually(lambda: _unsent_zero(quiet), what="quiet outbox drained")
            await asyncio.sleep(1.0)  # redeliveries reach the inbox, which drops them
            await eventually(
                lambda: _true(busy_relay.replays >= 1), within=60, what="the busy relay's replay"
            )
        assert_in_order_once(await quiet.effects(), {"quiet": 5, "busy": 40})


def _spawn_consumer(
    db_url: str, bootstrap: str, topic: str, group: str, crash: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.consumer_proc",
            db_url,
            bootstrap,
            topic,
            group,
            crash,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _wait_exit(proc: subprocess.Popen[str], within: float = 60) -> int:
    await eventually(lambda: _true(proc.poll() is not None), within=within, what="process exit")
    return int(proc.returncode)


class TestConsumerCrash:
    @pytest.mark.parametrize("crash", ["after_commit:5", "in_handler:5"])
    async def test_a_consumer_killed_before_its_offset_commit_gets_the_event_again_applies_once(
        self, broker: Broker, db_url: str, crash: str
    ) -> None:
        topic = new_topic()
        group = f"g-{uuid.uuid4().hex[:6]}"
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        for seq in range(10):
            await h.write("case-k", seq)
        relay = h.relay()
        async with running(relay.run()):
            await eventually(lambda: _unsent_zero(h), what="published")
        first = _spawn_consumer(db_url, broker.bootstrap, topic, group, crash)
        assert await _wait_exit(first) == CRASH_EXIT
        applied_before = len(await h.effects())
        # after_commit: the 5th effect (and, when applied as one batch, its batch) committed
        # but no offset did; in_handler: the 5th effect (and its batch) rolled back.
        if crash.startswith("after_commit"):
            assert applied_before >= 5
        else:
            assert applied_before < 5

        second = _spawn_consumer(db_url, broker.bootstrap, topic, group, "none")
        try:
            await eventually(lambda: _has(h, 10), what="all effects after restart")
            # ... and the redelivered ones handled: the group's offset reached the end.
            await eventually(
                lambda: _committed(broker.bootstrap, group, topic, 10), what="offsets committed"
            )
        finally:
            second.terminate()
            out, _ = second.communicate(timeout=30)
        counts = json.loads(out.strip().splitlines()[-1])
        assert_in_order_once(await h.effects(), {"case-k": 10})
        # The events applied before the crash were delivered again and dropped by the inbox.
        assert counts["duplicate"] == applied_before
        assert counts["applied"] == 10 - applied_before


class TestDeadLetters:
    async def test_poison_and_malformed_events_are_dead_lettered_and_the_consumer_goes_on(
        self, broker: Broker, db_url: str
    ) -> None:
        topic = new_topic()
        settings = make_settings(db_url=db_url, bootstrap=broker.bootstrap, dead_letter_after=3)
        h = await Harness(settings, topic).setup()
        src = "urn:vardkedja:2120000647:directory"

        def rec(event: CloudEvent) -> OutgoingRecord:
            return signed(event, topic)

        good = CloudEvent(source=src, type=COUNTED, data={"key": "ok", "seq": 0})
        records = [
            OutgoingRecord(topic, b"x", b"not a cloud event", []),  # no ce_* headers
            # body is not JSON (signed by its member all the same)
            signed(CloudEvent(source=src, type=COUNTED, id="bad-json-id"), topic, body=b"{not"),
            rec(CloudEvent(source=src, type="se.vardkedja.test.unknown.v1", data={})),
            rec(CloudEvent(source=src, type=COUNTED, data={"key": "k", "seq": "NaN"})),
            rec(CloudEvent(source=src, type=COUNTED, data={"key": "poison", "seq": 1})),
            rec(good),
        ]
        await produce_raw(broker.bootstrap, records)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        relay = h.relay()
        async with running(consumer.run(), relay.run()) as tasks:
            await eventually(lambda: _has(h, 1), what="the good event after the bad ones")
            # Records of other partitions may be handled later than the good one.
            await eventually(lambda: _count_is(h, infra.dead_letter, 5), what="five dead letters")
            await eventually(lambda: _unsent_zero(h), what="dead letters forwarded")
            assert not any(t.done() for t in tasks), "the consumer keeps running"
        assert await h.effects() == [("ok", 0)]

        dl = infra.dead_letter
        async with h.db.sessionmaker() as session:
            rows = (await session.execute(select(dl).order_by(dl.c.id))).all()
        # Records of different keys sit in different partitions: compare without order.
        reasons = sorted(r.reason for r in rows)
        assert reasons == sorted(
            ["missing_attribute", "body_json", "unknown_type", "invalid_payload", "failed"]
        )
        poison = next(r for r in rows if r.reason == "failed")
        assert poison.attempts == 3
        assert poison.error.startswith("RuntimeError: poison event")
        assert bytes(poison.body) == records[4].value  # the original record is kept

        # Every dead letter was forwarded to the member's dead-letter topic with its reason.
        dlt = topics.deadletter(ORG_VAXJO)
        seen = await _read_topic(broker.bootstrap, dlt, want=5, only=lambda r: _from(r, topic))
        forwarded = sorted(dict(r.headers)["vk_dlt_reason"].decode() for r in seen)
        assert forwarded == reasons


def _from(record: Any, topic: str) -> bool:
    return dict(record.headers).get("vk_dlt_topic") == topic.encode()


async def _read_topic(
    bootstrap: str, topic: str, want: int, only: Any, within: float = 30
) -> list[Any]:
    consumer = Consumer(
        make_settings(bootstrap=bootstrap).kafka,
        topics=[topic],
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
        client_id="reader",
    )
    await consumer.start()
    seen: list[Any] = []
    try:

        async def enough() -> bool:
            for records in (await consumer.poll(200)).values():
                seen.extend(r for r in records if only(r))
            return len(seen) >= want

        await eventually(enough, within=within, what=f"{want} records on {topic}")
    finally:
        await consumer.stop()
    return seen


async def _committed(bootstrap: str, group: str, topic: str, n: int) -> bool:
    kafka = make_settings(bootstrap=bootstrap).kafka
    tps = [TopicPartition(topic, p) for p in range(kafka.partitions)]
    return sum((await committed_offsets(kafka, group, tps)).values()) >= n


async def _true(value: bool) -> bool:
    return value


async def _has(h: Harness, n: int) -> bool:
    return len(await h.effects()) >= n


async def _count_is(h: Harness, table: Any, n: int) -> bool:
    return await h.count(table) == n


async def _unsent_zero(h: Harness) -> bool:
    return await h.unsent() == 0

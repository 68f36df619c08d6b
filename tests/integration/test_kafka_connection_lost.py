"""Our Kafka clients after a lost broker connection (``shared.messaging.kafka``, the loss guard).

aiokafka reconnects on its own and sends again what was in flight, without a word. After a
broker lost its log and its groups' offsets (Tansu on any restart, as it keeps them in
memory; Apache Kafka when its log directory is lost), the new connection reaches an empty
broker. These tests restart a real broker without its log under a producer and a consumer
and read back what the restarted broker holds:

- a record the producer had in flight when the broker died is not written to the new log
  (it would stand ahead of the replay of older records of its key); it fails instead;
- a consumer's offsets, read from the old log, are not committed to the new broker (they
  would hide every replayed record below them from the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid

import pytest

from shared.messaging.broker import Broker
from shared.messaging.kafka import (
    ConnectionLost,
    Consumer,
    OutgoingRecord,
    Producer,
    SentRecord,
    TopicPartition,
    committed_offsets,
    ensure_topics,
)
from tests.conftest import kafka_settings
from tests.helpers.harness import eventually
from tests.integration.test_outbox_inbox import new_topic, produce_raw
from tests.reliability.tools import end_offsets


def _record(topic: str, i: int) -> OutgoingRecord:
    return OutgoingRecord(topic, b"case-a", f"value-{i}".encode(), [])


async def _bounded_stop(client: Producer | Consumer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.stop(), timeout=10)


class TestAProducerThatLostItsConnection:
    async def test_a_record_in_flight_when_the_broker_died_is_not_written_to_the_new_log(
        self, private_broker: Broker
    ) -> None:
        """The broker is paused while a record is in flight, then killed and restarted
        empty. The record fails with ConnectionLost, and the restarted broker has nothing:
        without the guard, aiokafka sends it again over a new connection (to offset 0)."""
        settings = kafka_settings(private_broker.bootstrap)
        topic = new_topic()
        await ensure_topics(settings, [topic])
        producer = Producer(settings, "guarded")
        await producer.start()
        try:
            [first] = await producer.send_ordered([_record(topic, 0)])
            assert isinstance(first, SentRecord)
            assert private_broker.process is not None
            os.kill(private_broker.process.pid, signal.SIGSTOP)
            in_flight = asyncio.ensure_future(producer.send_ordered([_record(topic, 1)]))
            await asyncio.sleep(0.5)  # the request is written and waits for the answer
            assert not in_flight.done()
            private_broker.lose_log()
            private_broker.start()
            await ensure_topics(settings, [topic])  # the new, empty log
            [result] = await asyncio.wait_for(in_flight, timeout=60)
            assert isinstance(result, ConnectionLost), result
            assert producer.connection_lost
            [after] = await producer.send_ordered([_record(topic, 2)])
            assert isinstance(after, ConnectionLost), "a producer that lost a connection sent"
        finally:
            await _bounded_stop(producer)
        # Give a retry that got through time to be written before looking.
        await asyncio.sleep(1.0)
        assert sum((await end_offsets(private_broker.bootstrap, topic)).values()) == 0


class TestAConsumerThatLostItsConnection:
    async def test_it_commits_no_offset_of_the_old_log_to_the_restarted_broker(
        self, private_broker: Broker
    ) -> None:
        """A consumer reads five records, the broker is killed and restarted empty, the
        consumer's group joins the new broker, and only then the consumer commits what it
        handled (as a worker does that was stalled with records in hand). The commit must
        fail with ConnectionLost and the restarted broker must hold no offset for the group;
        without the guard the group's offset on the new broker is 5, and the new log's
        records 0-4 would never be read by the group."""
        settings = kafka_settings(private_broker.bootstrap)
        topic, group = new_topic(), f"g-{uuid.uuid4().hex[:8]}"
        await ensure_topics(settings, [topic])
        await produce_raw(private_broker.bootstrap, [_record(topic, i) for i in range(5)])
        consumer = Consumer(settings, topics=[topic], group_id=group, client_id="guarded")
        await consumer.start()
        got: dict[TopicPartition, int] = {}
        try:

            async def five_read() -> bool:
                for tp, records in (await consumer.poll(200)).items():
                    got[tp] = records[-1].offset + 1
                return sum(got.values()) >= 5

            await eventually(five_read, what="five records read")
            private_broker.lose_log()
            private_broker.start()
            await ensure_topics(settings, [topic])
            # Let the consumer's heartbeat find the restarted broker and its group join it
            # again (the session timeout is 2 s): a commit after that is accepted there.
            await asyncio.sleep(4)
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(consumer.commit(got), timeout=60)
            assert consumer.connection_lost
            with pytest.raises(ConnectionLost):
                await consumer.poll(200)
        finally:
            await _bounded_stop(consumer)
        assert await committed_offsets(settings, group, list(got)) == {}

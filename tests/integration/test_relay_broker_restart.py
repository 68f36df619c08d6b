"""The relay after a broker outage, when it has nothing new to publish.

A broker that lost its log (Tansu on any restart, as it keeps it in memory; Apache Kafka
when its log directory is lost) no longer holds what the relay has published and marked
sent; a consumer that had not read it yet can only get it from a replay. An idle relay
learns of the loss only by looking (no later publish gets an offset that went backwards).
These tests restart a real broker without its log while the relay is idle, with no consumer
running until the broker is back, so every event exists only in the sender's outbox:

- the broker is down for longer than the relay's loss check (the check fails, the relay
  resets its producer and reconnects): the relay must still check what the broker holds
  before it writes a new marker, and publish its window again;
- the relay process itself starts after the broker lost its log (it has no marker in
  memory): the log ends below offsets its outbox says it wrote, so it publishes again;
- an outage that loses nothing (the broker is paused; or Apache Kafka is SIGKILLed and
  restarted on its log): the relay reconnects and publishes nothing twice;
- a record already handed to the producer when the broker dies: the producer's client
  would send it again on its own, to the restarted broker, ahead of the replay of older
  records of its key; it must not.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Sequence

from shared.messaging.broker import Broker
from shared.messaging.kafka import OutgoingRecord, Producer, SentRecord
from shared.messaging.outbox import OutboxRelay
from tests.conftest import make_settings
from tests.helpers.harness import Harness, eventually
from tests.integration.test_outbox_inbox import (
    _has,
    _unsent_zero,
    assert_in_order_once,
    new_topic,
    running,
)
from tests.reliability.tools import end_offsets


async def _write(h: Harness, keys: list[str], n: int) -> None:
    """``n`` events of each key, into the outbox."""
    for seq in range(n):
        for key in keys:
            await h.write(key, seq)


async def _ten_events(broker: Broker, db_url: str) -> Harness:
    """A harness on a topic of its own with 5 events of each of two keys in its outbox."""
    h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), new_topic()).setup()
    await _write(h, ["case-a", "case-b"], 5)
    return h


def _relay(h: Harness) -> OutboxRelay:
    return h.relay(loss_check_interval=0.5, max_backoff=1.0)


async def _errors_at_least(relay: OutboxRelay, n: int) -> bool:
    return relay.errors >= n


class TestAnIdleRelayAfterTheBrokerLostItsLog:
    async def test_events_sent_before_an_outage_longer_than_the_loss_check_are_published_again(
        self, private_broker: Broker, db_url: str
    ) -> None:
        """The broker dies after the relay has published everything, stays down past the
        loss check (which fails: the relay resets and reconnects) and comes back empty. No
        new event is written, so nothing is published after the restart that could show
        offsets going backwards."""
        h = await _ten_events(private_broker, db_url)
        relay = _relay(h)
        async with running(relay.run()):
            await eventually(lambda: _unsent_zero(h), what="all 10 events marked sent")
            private_broker.lose_log()
            # The outage outlasts the loss check: the relay has failed against the dead
            # broker (and reset its producer) before the broker comes back.
            await eventually(lambda: _errors_at_least(relay, 2), what="the relay's failures")
            private_broker.start()
            consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
            async with running(consumer.run()):
                await eventually(lambda: _has(h, 10), within=45, what="all 10 effects")
                await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 5, "case-b": 5})
        assert relay.replays == 1

    async def test_a_relay_started_after_the_broker_lost_its_log_publishes_it_again(
        self, private_broker: Broker, db_url: str
    ) -> None:
        """A worker that restarts along with the broker has no marker in memory; what its
        outbox says it wrote (partition and offset of each sent row) is beyond the new
        log's end."""
        h = await _ten_events(private_broker, db_url)
        async with running(_relay(h).run()):
            await eventually(lambda: _unsent_zero(h), what="all 10 events marked sent")
        private_broker.lose_log()
        private_broker.start()
        relay = _relay(h)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 10), within=45, what="all 10 effects")
            await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 5, "case-b": 5})
        assert relay.replays == 1


class TestAnOutageThatLosesNothing:
    async def test_a_relay_that_reconnects_to_a_broker_that_kept_its_log_publishes_nothing_again(
        self, private_broker: Broker, db_url: str
    ) -> None:
        """The broker is paused (SIGSTOP) for longer than the request timeout, so the
        relay's check fails and it reconnects, then resumed with its log intact, as Apache
        Kafka comes back from a restart. The relay finds its marker and its offsets still
        there: no replay, and the log holds each event once. (The consumer may read some
        again: its offset commit can time out against the paused broker, and it resumes from
        the last commit that landed; its inbox drops those copies, which is not the relay's
        doing.)"""
        h = await _ten_events(private_broker, db_url)
        relay = _relay(h)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        assert private_broker.process is not None
        pid = private_broker.process.pid
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 10), what="the first 10 effects")
            os.kill(pid, signal.SIGSTOP)
            try:
                await eventually(lambda: _errors_at_least(relay, 2), what="the relay's failures")
            finally:
                os.kill(pid, signal.SIGCONT)
            for key in ["case-a", "case-b"]:
                await h.write(key, 5)
            await eventually(lambda: _has(h, 12), within=45, what="all 12 effects")
            await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 6, "case-b": 6})
        assert relay.replays == 0
        assert sum((await end_offsets(private_broker.bootstrap, h.topic)).values()) == 12

    async def test_a_broker_killed_and_restarted_on_its_log_makes_no_relay_replay(
        self, kafka_private_broker: Broker, db_url: str
    ) -> None:
        """Apache Kafka SIGKILLed and started again on the same log directory, as a crashed
        broker comes back: the relay reconnects, finds its marker and its offsets there,
        replays nothing, and the consumer (a new one, from the group's committed offsets)
        applies each event once."""
        private_broker = kafka_private_broker
        h = await _ten_events(private_broker, db_url)
        relay = _relay(h)
        consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
        async with running(relay.run(), consumer.run()):
            await eventually(lambda: _has(h, 10), what="the first 10 effects")
            private_broker.kill()
            for key in ["case-a", "case-b"]:  # accepted while the broker is down
                await h.write(key, 5)
            await eventually(lambda: _errors_at_least(relay, 1), what="the relay's failure")
            private_broker.start()
            for key in ["case-a", "case-b"]:
                await h.write(key, 6)
            await eventually(lambda: _has(h, 14), within=60, what="all 14 effects")
            await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 7, "case-b": 7})
        assert relay.replays == 0, "the relay replayed a log the broker kept"


class _WatchedProducer(Producer):
    """The relay's producer, unchanged, telling the test when it has records in flight."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sending = asyncio.Event()
        self.written: list[tuple[OutgoingRecord, SentRecord]] = []

    async def send_ordered(
        self, records: Sequence[OutgoingRecord]
    ) -> list[SentRecord | BaseException]:
        self.sending.set()
        results = await super().send_ordered(records)
        self.written += [
            (r, w) for r, w in zip(records, results, strict=True) if isinstance(w, SentRecord)
        ]
        return results


class TestARecordInFlightWhenTheBrokerDies:
    async def test_it_is_not_sent_to_the_restarted_broker_ahead_of_older_records_of_its_key(
        self, private_broker: Broker, db_url: str
    ) -> None:
        """Three events of a key are published (no consumer yet). The broker is paused, a
        fourth event is written, and the relay hands it to its producer: the request waits
        on the paused broker. The broker is then killed and restarted empty. aiokafka
        retries a request that failed on a broken connection, so the fourth event would
        reach the new broker first and the replay of the three would follow it; a consumer
        would then apply the fourth before the others. The producer must not send it to a
        broker the relay has not checked: the relay notices the loss and publishes all
        four in order: what the producers wrote to the new broker is the four, once each, in
        order, in one partition."""
        h = await Harness(
            make_settings(db_url=db_url, bootstrap=private_broker.bootstrap), new_topic()
        ).setup()
        await _write(h, ["case-a"], 3)
        producers: list[_WatchedProducer] = []

        def factory() -> Producer:
            producers.append(_WatchedProducer(h.settings.kafka, "watched-relay"))
            return producers[-1]

        # Only a lost connection may make this relay check the broker (not its timer): a
        # check against the paused broker would hold the relay until the request timeout.
        relay = h.relay(loss_check_interval=3600, max_backoff=1.0, producer_factory=factory)
        assert private_broker.process is not None
        async with running(relay.run()):
            await eventually(lambda: _unsent_zero(h), what="the first 3 events marked sent")
            last_before = producers[-1].written[-1]
            os.kill(private_broker.process.pid, signal.SIGSTOP)
            producers[-1].sending.clear()
            await h.write("case-a", 3)
            await asyncio.wait_for(producers[-1].sending.wait(), timeout=30)
            private_broker.lose_log()
            before_restart = len(producers)
            private_broker.start()
            consumer = h.consumer(f"g-{uuid.uuid4().hex[:6]}")
            async with running(consumer.run()):
                await eventually(lambda: _has(h, 4), within=45, what="all 4 effects")
                await eventually(lambda: _unsent_zero(h), what="outbox drained")
        assert_in_order_once(await h.effects(), {"case-a": 4})
        assert relay.replays == 1
        # The in-flight producer's writes after the kill, and every later producer's.
        in_flight = producers[before_restart - 1]
        written = in_flight.written[in_flight.written.index(last_before) + 1 :] + [
            w for p in producers[before_restart:] for w in p.written
        ]
        by_partition: dict[int, list[int]] = {}
        for rec, at in sorted(written, key=lambda w: (w[1].partition, w[1].offset)):
            if at.topic == h.topic:
                by_partition.setdefault(at.partition, []).append(json.loads(rec.value)["seq"])
        assert list(by_partition.values()) == [[0, 1, 2, 3]], by_partition

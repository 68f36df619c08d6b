"""The relay's loss check reads its marker back without fetching the log written after it.

The relay asks every few seconds whether the record at its marker's offset is still there.
The marker is written once an hour, and the member's internal topic grows with every event
meanwhile; the soak showed every worker's memory and latency growing with it while the probe
fetched the log behind the marker at the client's default sizes (the embedded broker answers
with the log from the offset on) and kept it buffered until the next look.
"""

from __future__ import annotations

import tracemalloc

from shared.messaging.broker import Broker
from shared.messaging.kafka import (
    OffsetProbe,
    OutgoingRecord,
    Producer,
    TopicPartition,
    ensure_topics,
)
from tests.conftest import kafka_settings
from tests.integration.test_outbox_inbox import new_topic

BEHIND = 3000
"""Records written after the marker (about 3 MB in all)."""


async def test_reading_the_marker_back_fetches_a_bounded_amount(broker: Broker) -> None:
    settings = kafka_settings(broker.bootstrap, partitions=1)
    topic = new_topic()
    await ensure_topics(settings, [topic])
    producer = Producer(settings, "probe-test")
    await producer.start()
    try:
        [marker] = await producer.send_ordered(
            [OutgoingRecord(topic, b"marker", b"{}", [("ce_id", b"the-marker")])]
        )
        assert not isinstance(marker, BaseException)
        body = b"x" * 1000
        for start in range(0, BEHIND, 500):
            await producer.send_ordered(
                [
                    OutgoingRecord(topic, f"k{i}".encode(), body, [("ce_id", f"e{i}".encode())])
                    for i in range(start, start + 500)
                ]
            )
    finally:
        await producer.stop()

    probe = OffsetProbe(settings, "probe-test-probe")
    tp = TopicPartition(topic, 0)
    try:
        # (The embedded broker's log end is one past the first record of the last batch.)
        assert (await probe.end_offsets([tp]))[tp] > marker.offset + BEHIND // 2
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(3):
                assert await probe.event_id_at(tp, marker.offset) == "the-marker"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Three looks cost less than the log behind the marker once (before the limit:
        # 15 MB for these 3 MB; now about 1 MB whatever the log's length).
        assert peak - before < BEHIND * len(body)
        # Nothing stays assigned, so nothing is fetched and kept between two looks.
        assert probe._consumer.assignment() == set()
        assert await probe.event_id_at(tp, marker.offset + 1) == "e0"
    finally:
        await probe.stop()

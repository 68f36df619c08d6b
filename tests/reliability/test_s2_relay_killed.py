"""Scenario 2: the outbox relay killed between publishing and marking sent.

The relay (``shared.messaging.outbox.OutboxRelay``, unchanged) runs in a process of its own
(``tests.reliability.procs relay``) while the test writes a stream of events of four keys
into the harness's outbox. The test SIGKILLs the relay repeatedly, and aims each kill at
the window between the broker's acknowledgement and the ``sent_at`` mark: it watches the
topic's log end and kills the relay the moment a new record appears there (no product hook:
the relay's own code runs unchanged). Whether a kill landed in the window is read off
afterwards: the broker holds records whose outbox rows are not marked sent. Those rows are
published again by the next relay; the consumer (``tests.helpers.consumer_proc``, its own
process) drops the copies.

Figures: kills, kills that landed in the window, copies re-published (records on the topic
minus distinct events, read back from offset 0), duplicates the consumer dropped (must
equal the copies), lost, duplicated effects, order inversions per key, the relay's restart
time and the drain time.

What it cannot show: a kill in the middle of the mark's own transaction is the same as a
kill before it (the transaction rolls back); a relay that dies after the mark commits
leaves nothing to re-publish. A hook that exits right after ``send_ordered`` returns
(before the mark) would hit the window on every kill instead of by aiming.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from shared.messaging.broker import Broker
from tests.conftest import make_settings
from tests.helpers.harness import Harness, eventually, infra
from tests.integration.test_outbox_inbox import (
    _spawn_consumer,
    assert_in_order_once,
    new_topic,
)
from tests.reliability.report import report, scaled, seconds_since
from tests.reliability.tools import (
    LogEnd,
    committed_total,
    copies_per_event,
    inversions,
    kill_proc,
    log_ends,
    per_key,
    query,
    read_all,
    running,
    spawn,
    stop_proc,
    wait_line,
)

pytestmark = pytest.mark.e2e

KEYS = [f"case-{i}" for i in range(4)]
RELAY = ("tests.reliability.procs", "relay")


async def _marked(db_url: str) -> int:
    ob = infra.outbox
    q = select(func.count()).select_from(ob).where(ob.c.sent_at.is_not(None))
    [(n,)] = await query(db_url, q)
    return int(n)


class TestRelayKilledBetweenPublishAndMark:
    async def test_each_republished_copy_is_dropped_by_the_inbox(
        self, broker: Broker, db_url: str, backend: str
    ) -> None:
        kills_wanted = scaled(6, env="VK_RELIABILITY_RELAY_KILLS")
        hits_wanted = scaled(3)
        topic, group = new_topic(), f"g-{uuid.uuid4().hex[:6]}"
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        written: Counter[str] = Counter()
        stop_writing = asyncio.Event()

        async def writer() -> None:
            while not stop_writing.is_set():  # ~4 events every 20 ms while the relay is killed
                for key in KEYS:
                    await h.write(key, written[key])
                    written[key] += 1
                await asyncio.sleep(0.02)

        consumer = _spawn_consumer(db_url, broker.bootstrap, topic, group, "none")
        await wait_line(consumer, "ready")  # its SIGTERM handler is in place
        watch = LogEnd(broker.bootstrap, topic)
        kills = 0
        hits: list[int] = []
        restart_s: list[float] = []
        excess = 0
        try:
            async with running(writer()) as [writing]:
                while kills < kills_wanted or (
                    sum(1 for x in hits if x) < hits_wanted and kills < 4 * kills_wanted
                ):
                    t0 = time.monotonic()
                    relay = spawn(*RELAY, h.db.url, broker.bootstrap, topic)
                    await wait_line(relay, "ready")
                    restart_s.append(seconds_since(t0))
                    await asyncio.sleep(random.uniform(0.3, 1.0))  # let it work a while
                    # Aim: kill the moment the broker shows a new record of this topic.
                    await watch.grows_past(await watch.total())
                    kill_proc(relay)
                    kills += 1
                    # Records on the broker whose rows are not marked sent: republished later.
                    # (Tansu at times reports a log end one short: a kill's count can be
                    # one low; the total below is read back from the topic, exactly.)
                    now = await watch.total() - await _marked(h.db.url)
                    hits.append(max(0, now - excess))
                    excess = max(excess, now)
                stop_writing.set()
                await writing
            expected = dict(written)
            total = sum(expected.values())
            t_drain = time.monotonic()
            relay = spawn(*RELAY, h.db.url, broker.bootstrap, topic)

            async def drained() -> bool:
                return len(await h.effects()) >= total and await h.unsent() == 0

            await eventually(drained, within=120, what=f"{total} effects and the outbox drained")
            drain_s = seconds_since(t_drain)
            stop_proc(relay)
            records = await read_all(broker.bootstrap, topic)
            ends = log_ends(records)

            async def all_handled() -> bool:
                done = await committed_total(broker.bootstrap, group, topic)
                return all(done[p] >= n for p, n in ends.items())

            await eventually(all_handled, within=60, what="the consumer's offsets at the end")
        finally:
            await watch.close()
            counts_line = stop_proc(consumer)
        counts = json.loads(counts_line)
        copies = copies_per_event(records)
        republished = sum(n - 1 for n in copies.values())
        effects = await h.effects()
        applied_ids = len(effects)
        figures = {
            "backend": backend,
            "events_accepted": total,
            "relay_kills": kills,
            "kills_in_window": sum(1 for x in hits if x),
            "unmarked_rows_on_broker_per_kill": hits,
            "republished_copies": republished,
            "redeliveries_dropped_by_inbox": counts["duplicate"],
            "lost": total - len({(k, s) for k, s in effects}),
            "duplicated_effects": applied_ids - len(set(effects)),
            "order_inversions": inversions(per_key(effects)),
            "relay_restart_to_ready_s": restart_s,
            "drain_s": drain_s,
        }
        report("s2-relay-killed", figures, variant=backend)
        assert_in_order_once(effects, expected)
        assert len(copies) == total, "every event reached the broker"
        assert counts["duplicate"] == republished, "every republished copy was dropped"
        assert counts["applied"] == total
        assert republished >= 1, "no kill landed between publish and mark"

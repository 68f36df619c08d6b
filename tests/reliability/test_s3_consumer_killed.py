"""Scenario 3: the consumer killed mid-batch; offsets are committed only after the DB commit.

The harness's events (four keys) are on the broker first, so the consumer
(``tests.helpers.consumer_proc``, a process of its own) polls them in big batches (up to
200 records over three partitions, each partition's run applied in one transaction). It is
then killed again and again, in turn:

- ``after_commit:K``: it exits (``os._exit``, as SIGKILL) right after the K-th effect's
  transaction committed, before the poll's offsets are committed: mid-batch;
- ``in_handler:K``: it exits inside the K-th handler, before that transaction commits;
- SIGKILL from outside, a moment after it applied something.

After every death the test compares the group's committed offsets with the database:
every offset below a committed one must have its inbox row (an offset committed ahead of
the database commit would be a loss on the next start). Applied minus committed is what
the next process gets again (redeliveries); its inbox drops them.

Figures: events, kills by kind, offsets committed ahead of the database (0), redeliveries
per kill and in all, duplicates the last process dropped (must equal the last kill's
redeliveries), lost, duplicated effects, order inversions, restart and drain seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from shared.messaging.broker import Broker
from tests.conftest import make_settings
from tests.helpers.consumer_proc import CRASH_EXIT
from tests.helpers.harness import Harness, eventually, infra
from tests.integration.test_outbox_inbox import (
    _spawn_consumer,
    _wait_exit,
    assert_in_order_once,
    new_topic,
)
from tests.reliability.report import report, scaled, seconds_since
from tests.reliability.tools import (
    committed_total,
    inversions,
    kill_proc,
    log_ends,
    per_key,
    query,
    read_all,
    running,
    stop_proc,
    wait_line,
)

pytestmark = pytest.mark.e2e

KEYS = [f"case-{i}" for i in range(4)]


async def _inbox_offsets(db_url: str, topic: str) -> dict[int, set[int]]:
    ib = infra.inbox
    rows = await query(
        db_url,
        select(ib.c.partition, ib.c.offset).where(ib.c.consumer == "harness", ib.c.topic == topic),
    )
    out: dict[int, set[int]] = {}
    for partition, offset in rows:
        out.setdefault(int(partition), set()).add(int(offset))
    return out


class TestConsumerKilledMidBatch:
    async def test_offsets_never_run_ahead_of_the_database_and_nothing_is_lost(
        self, broker: Broker, db_url: str, backend: str
    ) -> None:
        per_key_n = scaled(100, env="VK_RELIABILITY_CONSUMER_EVENTS")
        kills_wanted = scaled(3, env="VK_RELIABILITY_CONSUMER_KILLS")
        topic, group = new_topic(), f"g-{uuid.uuid4().hex[:6]}"
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        for seq in range(per_key_n):
            for key in KEYS:
                await h.write(key, seq)
        total = per_key_n * len(KEYS)
        relay = h.relay()
        async with running(relay.run()):
            await eventually(lambda: _unsent_zero(h), within=60, what="all published")
        ends = log_ends(await read_all(broker.bootstrap, topic))

        kinds = ["after_commit", "in_handler", "sigkill"]
        kills: Counter[str] = Counter()
        ahead = 0
        redelivered: list[int] = []
        starts: list[float] = []
        for i in range(kills_wanted):
            kind = kinds[i % len(kinds)]
            before = len(await h.effects())
            if before >= total:
                break  # everything applied already: nothing left to interrupt
            k = random.randint(3, 60)
            t0 = time.monotonic()
            crash = "none" if kind == "sigkill" else f"{kind}:{k}"
            proc = _spawn_consumer(db_url, broker.bootstrap, topic, group, crash)
            if kind == "sigkill":

                async def moved(before: int = before) -> bool:
                    return len(await h.effects()) > before

                await eventually(moved, within=60, what="the consumer applying something")
                starts.append(seconds_since(t0))
                await asyncio.sleep(random.uniform(0, 0.1))
                kill_proc(proc)
            else:
                assert await _wait_exit(proc, within=90) == CRASH_EXIT
                starts.append(seconds_since(t0))
            kills[kind] += 1
            applied = len(await h.effects())
            committed = await committed_total(broker.bootstrap, group, topic)
            have = await _inbox_offsets(db_url, topic)
            ahead += sum(
                1 for p, c in committed.items() for o in range(c) if o not in have.get(p, set())
            )
            redelivered.append(applied - sum(committed.values()))

        t_drain = time.monotonic()
        last = _spawn_consumer(db_url, broker.bootstrap, topic, group, "none")
        try:
            await wait_line(last, "ready")  # its SIGTERM handler is in place
            await eventually(lambda: _has(h, total), within=120, what=f"{total} effects")

            async def all_handled() -> bool:
                done = await committed_total(broker.bootstrap, group, topic)
                return all(done[p] >= n for p, n in ends.items())

            await eventually(all_handled, within=60, what="the offsets at the end")
            drain_s = seconds_since(t_drain)
        finally:
            counts = json.loads(stop_proc(last))
        effects = await h.effects()
        figures = {
            "backend": backend,
            "events_accepted": total,
            "kills": dict(kills),
            "offsets_committed_ahead_of_db": ahead,
            "redeliveries_per_kill": redelivered,
            "redeliveries": sum(redelivered),
            "duplicates_dropped_by_last_consumer": counts["duplicate"],
            "lost": total - len(set(effects)),
            "duplicated_effects": len(effects) - len(set(effects)),
            "order_inversions": inversions(per_key(effects)),
            "start_to_kill_s": starts,
            "drain_s": drain_s,
        }
        report("s3-consumer-killed", figures, variant=backend)
        assert ahead == 0, "an offset was committed before its database transaction"
        assert_in_order_once(effects, dict.fromkeys(KEYS, per_key_n))
        assert counts["duplicate"] == (redelivered[-1] if redelivered else 0)
        assert set(kills) == set(kinds), "the consumer was killed in each of the three ways"


async def _has(h: Harness, n: int) -> bool:
    return len(await h.effects()) >= n


async def _unsent_zero(h: Harness) -> bool:
    return await h.unsent() == 0

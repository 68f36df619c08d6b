"""What tells an idle relay that the outbox has something (shared.data.db.ChangeWatch), on both
backends: on SQLite the ``-wal`` file changes with every commit; on PostgreSQL the outbox's
trigger notifies ``vk_outbox`` at a commit that added rows (the services' migrations and
the test schema install it), the relay's watch LISTENs and wakes the relay, and a lost
listener falls back to polling and listens again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.data.db import ChangeWatch
from shared.data.infra import OUTBOX_CHANNEL
from shared.messaging.broker import Broker
from shared.messaging.outbox import OutboxRelay
from tests.conftest import BACKENDS, PG_ADMIN_DSN, make_settings
from tests.helpers.harness import COUNTED, CountedV1, Harness, eventually
from tests.integration.test_outbox_inbox import new_topic, running


async def harness(broker: Broker, db_url: str) -> Harness:
    return await Harness(
        make_settings(db_url=db_url, bootstrap=broker.bootstrap), new_topic()
    ).setup()


class TestTheWatch:
    async def test_a_commit_with_outbox_rows_is_noticed_and_quiet_is_quiet(
        self, broker: Broker, db_url: str, backend: str
    ) -> None:
        h = await harness(broker, db_url)
        woken = asyncio.Event()
        watch = ChangeWatch(db_url, channel=OUTBOX_CHANNEL)
        await watch.listen(woken.set)
        try:
            assert watch.listening == (backend == "postgres")
            assert watch.changed()  # the first look: anything before it
            assert not watch.changed()
            # A transaction that rolls back notifies nothing; a commit that adds rows does.
            async with h.db.sessionmaker() as session:
                payload = CountedV1(key="rolled-back", seq=0)
                await h.outbox.publish(session, h.topic, COUNTED, payload)
                await session.rollback()
            await h.write("case-a", 1)
            if backend == "postgres":
                await asyncio.wait_for(woken.wait(), 10)
            assert watch.changed()
            assert not watch.changed()
        finally:
            await watch.aclose()
            await h.db.dispose()

    @pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "postgres"])
    async def test_a_lost_listener_falls_back_to_polling_and_listens_again(
        self, broker: Broker, db_url: str
    ) -> None:
        h = await harness(broker, db_url)
        woken = asyncio.Event()
        watch = ChangeWatch(db_url, channel=OUTBOX_CHANNEL)
        await watch.listen(woken.set)
        watch.changed()
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            database = db_url.rsplit("/", 1)[1]
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND query ILIKE 'LISTEN%'",
                database,
            )
            await asyncio.wait_for(woken.wait(), 10)  # the loss wakes the poller too
            assert not watch.listening
            assert watch.changed()
            assert watch.changed()  # not listening: always "maybe"
            watch._retry_at = 0.0  # (the retry waits a second otherwise)
            woken.clear()
            await watch.listen(woken.set)
            assert watch.listening
            watch.changed()
            await h.write("case-a", 1)
            await asyncio.wait_for(woken.wait(), 10)
            assert watch.changed()
        finally:
            await admin.close()
            await watch.aclose()
            await h.db.dispose()


class TestTheRelay:
    @pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "postgres"])
    async def test_an_idle_relay_is_woken_by_another_process_commit(
        self, broker: Broker, db_url: str
    ) -> None:
        h = await harness(broker, db_url)
        # Another engine on the same database, as an API process would be.
        writer = Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), h.topic)
        relay = h.relay()
        # Neither an idle tick nor the safety poll would look again within the test.
        relay.idle_interval = relay.safety_poll_interval = 3600.0
        try:
            async with running(relay.run()):
                await eventually(lambda: _true(relay._watch.listening), what="listening")
                await writer.write("case-a", 1)
                await eventually(lambda: _published(relay, 1), what="published")
                await writer.write("case-a", 2)
                await eventually(lambda: _published(relay, 2), what="published again")
            assert await h.unsent() == 0
        finally:
            await h.db.dispose()
            await writer.db.dispose()


async def _true(value: bool) -> bool:
    return value


async def _published(relay: OutboxRelay, n: int) -> bool:
    return relay.published >= n

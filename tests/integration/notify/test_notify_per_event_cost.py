"""What the notify worker does per event does not grow with the notifications it holds.

Every notification of the benchmark goes to the same unit and subscription, so a statement
that reads the unit's notifications or deliveries (an unread count, a pending scan, a
max(seq), a dedupe lookup) without a fitting index would cost more with each one stored.
The statements the consumer's unit of work and the dispatcher really send for one event are
captured from the engine and explained with their own parameters (PostgreSQL with sequential
scans disabled, as in ``tests/integration/test_housekeeping.py``); and the same event sends
the same statements whether few or many notifications are stored. Nothing here is timed.
"""

from __future__ import annotations

from sqlalchemy import inspect

from services.notify.consume import notify_events
from services.notify.dispatch import Dispatcher, Result
from services.notify.subscriptions import create_subscription
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.identity.auth import Caller
from tests.conftest import ORG_VAXJO
from tests.integration.notify.conftest import INTAKE, received, work_of
from tests.integration.test_housekeeping import captured, query_plan


async def _subscribe(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        await create_subscription(
            work_of(
                session, settings, Caller(sub="t", org=ORG_VAXJO, unit=INTAKE, scopes=frozenset())
            ),
            unit_id=INTAKE,
            url="https://case-system.vaxjo.example/hook",
            event_types=["referral.received"],
            secret=None,
        )


async def _one_event(db: Database, settings: Settings, dispatcher: Dispatcher) -> None:
    """One referral.received as the worker handles it: the consumer's unit of work (its
    deliveries leased to the dispatcher), the webhook's result recorded, then the
    dispatcher's look for anything else due."""
    async with db.transaction() as session:
        fanout = await notify_events(
            work_of(session, settings),
            events=[(new_id(), *received())],
            lease_token=dispatcher.token,
        )
    jobs = dispatcher.jobs_for(fanout)
    assert len(jobs) == 1  # the webhook; the inbox row is delivered in the unit of work
    dispatcher._done = [Result(job, utcnow(), 1, "ok", 204) for job in jobs]
    assert await dispatcher.record_done() == 1
    assert await dispatcher.dispatch_batch() == 0


async def _stored(db: Database, settings: Settings, dispatcher: Dispatcher, n: int) -> None:
    for _ in range(n):
        await _one_event(db, settings, dispatcher)


def _shape(statement: str) -> str:
    # The same statement with another length of IN list or VALUES is the same work.
    return " ".join(statement.split())


class TestPerEventStatementsFindRowsThroughAnIndex:
    async def test_no_statement_of_an_event_reads_a_whole_table(
        self, db: Database, settings: Settings
    ) -> None:
        dispatcher = Dispatcher(settings, db)
        await _subscribe(db, settings)
        await _stored(db, settings, dispatcher, 5)
        with captured(db, None) as statements:
            await _one_event(db, settings, dispatcher)
        reads = [
            (s, p)
            for s, p in statements
            if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
            or " ON CONFLICT " in s.upper()
        ]
        assert reads
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        for statement, parameters in reads:
            steps = await query_plan(db, statement, parameters)
            scans = [s for s in steps if s.startswith("SCAN") and s.split()[1] in tables]
            assert not scans, f"{statement}\n{steps}"
        await dispatcher.close()


class TestPerEventStatementsDoNotGrowWithStoredNotifications:
    async def test_an_event_sends_the_same_statements_after_many_notifications(
        self, db: Database, settings: Settings
    ) -> None:
        dispatcher = Dispatcher(settings, db)
        await _subscribe(db, settings)
        await _stored(db, settings, dispatcher, 1)
        with captured(db, None) as few:
            await _one_event(db, settings, dispatcher)
        await _stored(db, settings, dispatcher, 40)
        with captured(db, None) as many:
            await _one_event(db, settings, dispatcher)
        assert [_shape(s) for s, _ in many] == [_shape(s) for s, _ in few]
        await dispatcher.close()

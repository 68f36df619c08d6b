"""Pruning keeps what can still be needed and removes what cannot (both databases)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, func, inspect, select

from services.notify.models import Base as NotifyBase
from services.notify.models import Delivery, DeliveryAttempt, Notification, Timer
from services.notify.retention import purge_expired
from shared.data.db import Database, utcnow
from shared.data.housekeeping import Pruned, prune
from tests.conftest import make_settings
from tests.helpers.harness import create_schema, infra


async def _count(db: Database, table: object) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_prune_removes_only_rows_past_their_retention(db_url: str) -> None:
    settings = make_settings(db_url=db_url)  # replay window 72 h, inbox 30 days, keys 72 h
    db = Database(db_url)
    await create_schema(db)
    now = utcnow()
    old, recent = now - dt.timedelta(days=40), now - dt.timedelta(hours=1)
    async with db.transaction() as s:
        for i, (created, sent) in enumerate(
            [(old, old), (old, None), (recent, recent), (now - dt.timedelta(hours=80), now)]
        ):
            await s.execute(
                infra.outbox.insert().values(
                    event_id=f"e{i}",
                    topic="t",
                    key=None,
                    event_type="x",
                    headers=[],
                    body=b"{}",
                    created_at=created,
                    sent_at=sent,
                    attempts=0,
                    publish_count=0,
                )
            )
        for i, when in enumerate([old, recent]):
            await s.execute(
                infra.inbox.insert().values(
                    consumer="c",
                    event_id=f"i{i}",
                    event_type="x",
                    topic="t",
                    partition=0,
                    offset=i,
                    outcome="applied",
                    received_at=when,
                )
            )
        for i, when in enumerate([old, recent]):
            await s.execute(
                infra.idempotency.insert().values(
                    caller="o:s",
                    key=f"k{i}",
                    request_hash="h",
                    status_code=201,
                    response_body=b"{}",
                    response_headers={},
                    created_at=when,
                )
            )
    done = await prune(settings, db, infra)
    # outbox: the old sent row and the 80 h old sent row go; unsent rows never go.
    assert (done.outbox, done.inbox, done.idempotency) == (2, 1, 1)
    async with db.sessionmaker() as s:
        left = sorted((await s.execute(select(infra.outbox.c.event_id))).scalars())
    assert left == ["e1", "e2"]
    assert await _count(db, infra.inbox) == 1
    assert await _count(db, infra.idempotency) == 1
    await db.dispose()


# --- every clean-up statement finds its rows through an index ----------------------------
#
# The clean-ups run hourly inside write transactions; a full scan of a large table would hold
# the write lock (on SQLite, the database's only one) for the whole scan. The statements are
# the ones the clean-up really sends, captured from the engine and explained with their own
# parameters. PostgreSQL is asked with sequential scans disabled, so it shows the plan it can
# take with the indexes there are (on a few test rows it would scan, rightly).


@contextlib.contextmanager
def captured(
    db: Database, kinds: tuple[str, ...] | None = ("SELECT", "DELETE")
) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent inside the block that start with one of ``kinds`` (every one
    with None), each with its parameters (an executemany's first row: it explains them)."""
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if isinstance(parameters, list):
            parameters = parameters[0]
        if kinds is None or statement.lstrip().upper().startswith(kinds):
            seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def query_plan(db: Database, statement: str, parameters: Any) -> list[str]:
    """The steps of the plan the database chooses for ``statement`` that read a table or an
    index, in SQLite's words: ``SEARCH ... USING INDEX <name> (<range>)`` reads a range,
    ``SCAN <table>`` (with or without ``USING INDEX``) reads all of it."""
    async with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return [str(row[-1]) for row in rows if str(row[-1]).startswith(("SCAN", "SEARCH"))]
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        raw = (
            await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
        ).scalar_one()
        await conn.rollback()
    steps: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind, table = node["Node Type"], node.get("Relation Name", "")
        if kind == "Seq Scan":
            steps.append(f"SCAN {table}")
        elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            index, cond = node["Index Name"], node.get("Index Cond")
            steps.append(
                f"SEARCH {table} USING INDEX {index} ({cond})"
                if cond
                else f"SCAN {table} USING INDEX {index}"
            )
        for child in node.get("Plans", []):
            walk(child)

    walk((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    return steps


async def assert_indexed(
    db: Database, statements: list[tuple[str, Any]], indexes: set[str]
) -> None:
    """No statement reads a whole table (or index), and each of ``indexes`` serves one."""
    assert statements
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    used: set[str] = set()
    for statement, parameters in statements:
        steps = await query_plan(db, statement, parameters)
        assert steps, statement
        # SQLite also says SCAN of a subquery's rows or a constant row: not a table.
        scans = [s for s in steps if s.startswith("SCAN") and s.split()[1] in tables]
        assert not scans, f"{statement}\n{steps}"
        used |= {name for step in steps for name in indexes if f"INDEX {name} " in step}
    assert used == indexes


def _outbox_row(i: int, created: dt.datetime, sent: dt.datetime | None) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "topic": "t",
        "key": None,
        "event_type": "x",
        "headers": [],
        "body": b"{}",
        "created_at": created,
        "sent_at": sent,
        "attempts": 0,
        "publish_count": 0,
    }


def _inbox_row(i: int, received: dt.datetime) -> dict[str, Any]:
    return {
        "consumer": "c",
        "event_id": f"i{i}",
        "event_type": "x",
        "topic": "t",
        "partition": 0,
        "offset": i,
        "outcome": "applied",
        "received_at": received,
    }


def _idempotency_row(i: int, created: dt.datetime) -> dict[str, Any]:
    return {
        "caller": "o:s",
        "key": f"k{i}",
        "request_hash": "h",
        "status_code": 201,
        "response_body": b"{}",
        "response_headers": {},
        "created_at": created,
    }


class TestPruningFindsOldRowsThroughAnIndex:
    async def test_no_pruning_statement_scans_a_whole_table(self, db_url: str) -> None:
        settings = make_settings(db_url=db_url)
        db = Database(db_url)
        await create_schema(db)
        old = utcnow() - dt.timedelta(days=40)
        async with db.transaction() as s:
            await s.execute(infra.outbox.insert(), [_outbox_row(0, old, old)])
            await s.execute(infra.inbox.insert(), [_inbox_row(0, old)])
            await s.execute(infra.idempotency.insert(), [_idempotency_row(0, old)])
        with captured(db) as statements:
            assert await prune(settings, db, infra) == Pruned(1, 1, 1)
        await assert_indexed(
            db,
            statements,
            {
                "ix_outbox_event_created_at",
                "ix_inbox_event_received_at",
                "ix_idempotency_key_created_at",
            },
        )
        await db.dispose()


class TestPruningDeletesInBoundedBatches:
    async def test_each_transaction_deletes_at_most_one_batch(self, db_url: str) -> None:
        settings = make_settings(db_url=db_url)
        db = Database(db_url)
        await create_schema(db)
        now = utcnow()
        old, recent = now - dt.timedelta(days=40), now - dt.timedelta(hours=1)
        aged = [old + dt.timedelta(seconds=i) for i in range(5)]
        async with db.transaction() as s:
            await s.execute(
                infra.outbox.insert(),
                [_outbox_row(i, aged[i], aged[i]) for i in range(5)]
                + [_outbox_row(5, old, None), _outbox_row(6, recent, recent)],
            )
            await s.execute(
                infra.inbox.insert(),
                [_inbox_row(i, aged[i]) for i in range(4)] + [_inbox_row(4, recent)],
            )
            await s.execute(
                infra.idempotency.insert(),
                [_idempotency_row(i, aged[i]) for i in range(2)] + [_idempotency_row(2, recent)],
            )
        commits = 0

        def count_commit(_conn: Any) -> None:
            nonlocal commits
            commits += 1

        event.listen(db.engine.sync_engine, "commit", count_commit)
        try:
            done = await prune(settings, db, infra, batch=2)
        finally:
            event.remove(db.engine.sync_engine, "commit", count_commit)
        assert done == Pruned(5, 4, 2)
        # outbox 2+2+1, inbox 2+2+0, idempotency 2+0: a transaction each, oldest first.
        assert commits == 8
        async with db.sessionmaker() as s:
            left = sorted((await s.execute(select(infra.outbox.c.event_id))).scalars())
        assert left == ["e5", "e6"]
        assert await _count(db, infra.inbox) == 1
        assert await _count(db, infra.idempotency) == 1
        await db.dispose()


# --- notify's retention clean-up -----------------------------------------------------------


async def _notify_db(db_url: str, *, notifications: int, timers: int) -> Database:
    """A notify database with that many notifications (each with a delivery and an attempt)
    and finished timers past retention, and one of each that is not."""
    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(NotifyBase.metadata.create_all)
    old, now = utcnow() - dt.timedelta(days=401), utcnow()
    async with db.transaction() as s:
        for i, created in enumerate([old] * notifications + [now]):
            s.add(
                Notification(
                    id=f"n{i}",
                    origin_id=f"o{i}",
                    event_type="x",
                    rule_id="r",
                    recipient_kind="unit",
                    recipient="u",
                    kind="k",
                    subject_type="referral",
                    subject_id=f"s{i}",
                    created_at=created,
                )
            )
            s.add(
                Delivery(
                    id=f"d{i}",
                    notification_id=f"n{i}",
                    channel="inbox",
                    target="u",
                    status="delivered",
                )
            )
            s.add(
                DeliveryAttempt(
                    delivery_id=f"d{i}", attempt=1, started_at=created, duration_ms=1, outcome="ok"
                )
            )
        timers_created = [old + dt.timedelta(seconds=i) for i in range(timers)] + [now]
        for i, created in enumerate(timers_created):
            s.add(
                Timer(
                    id=f"t{i}",
                    action="remind",
                    fire_at=created,
                    state="fired",
                    subject_type="referral",
                    subject_id="s",
                    unit_id="u",
                    deadline="answer",
                    due_at=created + dt.timedelta(seconds=i),
                    source_event_id="e",
                    created_at=created,
                )
            )
    return db


class TestNotifyRetentionFindsOldRowsThroughAnIndex:
    async def test_no_retention_statement_scans_a_whole_table(self, db_url: str) -> None:
        settings = make_settings(service="notify", db_url=db_url)
        db = await _notify_db(db_url, notifications=1, timers=1)
        with captured(db) as statements:
            async with db.transaction() as session:
                assert await purge_expired(session=session, settings=settings.notify) == 2
        await assert_indexed(db, statements, {"ix_notification_created_at", "ix_timer_created_at"})
        await db.dispose()


class TestNotifyRetentionDeletesInBoundedBatches:
    async def test_one_call_deletes_at_most_one_batch_of_each(self, db_url: str) -> None:
        settings = make_settings(service="notify", db_url=db_url)
        db = await _notify_db(db_url, notifications=3, timers=3)
        gone = []
        for _ in range(3):
            async with db.transaction() as session:
                gone.append(await purge_expired(session=session, settings=settings.notify, limit=2))
        assert gone == [4, 2, 0]
        async with db.sessionmaker() as s:
            assert set((await s.execute(select(Notification.id))).scalars()) == {"n3"}
            assert set((await s.execute(select(Delivery.id))).scalars()) == {"d3"}
            assert set((await s.execute(select(Timer.id))).scalars()) == {"t3"}
            assert await _count(db, DeliveryAttempt.__table__) == 1
        await db.dispose()

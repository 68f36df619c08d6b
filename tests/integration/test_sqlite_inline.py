"""The inline SQLite driver (shared.data.sqlite_inline): statements on the loop's thread, lock
waits as sleeps that let the rest of the process go on, the same transactions as before."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.data import sqlite_inline
from shared.data.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with database.transaction() as s:
        await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    return database


async def test_the_engine_uses_the_inline_connection(db: Database) -> None:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite_inline.Connection)
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
    assert (mode, timeout) == ("wal", 0)
    await db.dispose()


async def test_commit_rollback_and_errors_behave_as_a_dbapi(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(text("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')"))

    async def insert_then_fail() -> None:
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (3, 'c')"))
            raise RuntimeError("roll back")

    async def insert_duplicate() -> None:
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (1, 'again')"))

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    with pytest.raises(IntegrityError):
        await insert_duplicate()
    async with db.transaction() as s:
        await s.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"), [{"i": 4, "v": "d"}] * 1)
        rows = (await s.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (4, "d")]
    await db.dispose()


async def test_a_writer_waits_for_the_lock_without_blocking_the_loop(
    db: Database, tmp_path: Path
) -> None:
    # Another process's writer, as sqlite3 sees it: holds the write lock until released.
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (id, v) VALUES (10, 'other')")
    ticks = 0
    done = asyncio.Event()
    ticked = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            if ticks == 20:
                ticked.set()
            await asyncio.sleep(0.001)

    async def write() -> None:
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (11, 'ours')"))
        done.set()

    tick_task = asyncio.create_task(ticker())
    writer = asyncio.create_task(write())
    await asyncio.wait_for(ticked.wait(), 10)  # the loop runs while the writer waits
    assert not writer.done()
    other.execute("COMMIT")
    await asyncio.wait_for(writer, 10)
    await tick_task
    other.close()
    async with db.transaction() as s:
        ids = (await s.execute(text("SELECT id FROM t ORDER BY id"))).scalars().all()
    assert ids == [10, 11]
    await db.dispose()


async def test_two_writers_of_one_process_do_not_deadlock(db: Database) -> None:
    # The first holds the write lock across an await; the second must let it commit.
    first_has_lock = asyncio.Event()

    async def first() -> None:
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (20, 'first')"))
            first_has_lock.set()
            await asyncio.sleep(0.05)

    async def second() -> None:
        await first_has_lock.wait()
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (21, 'second')"))

    await asyncio.wait_for(asyncio.gather(first(), second()), 10)
    async with db.transaction() as s:
        ids = (await s.execute(text("SELECT id FROM t ORDER BY id"))).scalars().all()
    assert ids == [20, 21]
    await db.dispose()


async def test_a_commit_in_this_process_wakes_its_waiting_writer(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Naps so long that the waiter could only go on by being woken when the lock is let go.
    monkeypatch.setattr(sqlite_inline, "_FIRST_WAIT_S", 600.0)
    monkeypatch.setattr(sqlite_inline, "_MAX_WAIT_S", 600.0)
    waits = sqlite_inline.LOCK_WAITS._value.get()
    first_has_lock = asyncio.Event()
    order: list[str] = []

    async def first(rollback: bool) -> None:
        async with db.engine.connect() as conn:
            insert = text("INSERT INTO t (id, v) VALUES (:id, 'first')")
            await conn.execute(insert, {"id": 43 if rollback else 40})
            first_has_lock.set()
            await asyncio.sleep(0.05)  # the second is refused and naps meanwhile
            order.append("first lets go")
            await (conn.rollback() if rollback else conn.commit())

    async def second(v: int) -> None:
        await first_has_lock.wait()
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (:id, 'second')"), {"id": v})
        order.append("second wrote")

    await asyncio.wait_for(asyncio.gather(first(False), second(41)), 10)
    first_has_lock.clear()
    await asyncio.wait_for(asyncio.gather(first(True), second(42)), 10)
    async with db.transaction() as s:
        ids = (await s.execute(text("SELECT id FROM t ORDER BY id"))).scalars().all()
    assert ids == [40, 41, 42]
    assert order == ["first lets go", "second wrote"] * 2
    assert sqlite_inline.LOCK_WAITS._value.get() >= waits + 2
    await db.dispose()


async def test_a_lock_held_too_long_fails_as_busy(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_S", 0.05)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="locked"):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (30, 'late')"))
    other.execute("ROLLBACK")
    other.close()
    async with db.transaction() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    await db.dispose()


def test_only_plain_busy_is_waited_for() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorname = "SQLITE_BUSY"
    snapshot = sqlite3.OperationalError("database is locked")
    snapshot.sqlite_errorname = "SQLITE_BUSY_SNAPSHOT"
    other = sqlite3.OperationalError("no such table: x")
    other.sqlite_errorname = "SQLITE_ERROR"
    assert sqlite_inline._busy(busy)
    assert not sqlite_inline._busy(snapshot)
    assert not sqlite_inline._busy(other)

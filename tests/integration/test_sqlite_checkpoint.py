"""WAL checkpoints of a service's SQLite file run on a thread of the process, not in commits
(shared/data/sqlite_checkpoint.py): the log reaches the database file without any commit having
checkpointed, and the thread never creates a file nor outlives its database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import text

from shared.data.db import Database
from shared.data.sqlite_checkpoint import WalCheckpointer
from tests.helpers.harness import eventually

ROWS, BLOB = (
    600,
    3000,
)  # ~600 pages of log (one row a page): below SQLite's own 1,000-page automatic checkpoint


async def _write(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"))
    for first in range(0, ROWS, 60):  # ten commits (each commit adds its frames to the log)
        async with db.transaction() as s:
            await s.execute(
                text("INSERT INTO blobs (id, data) VALUES (:i, :d)"),
                [{"i": i, "d": os.urandom(BLOB)} for i in range(first, first + 60)],
            )


async def test_the_thread_copies_the_log_into_the_file_and_commits_do_not(tmp_path: Path) -> None:
    background, control = tmp_path / "background.db", tmp_path / "control.db"
    with_thread = Database(f"sqlite+aiosqlite:///{background}", background_checkpoints=True)
    without = Database(f"sqlite+aiosqlite:///{control}")
    try:
        assert with_thread.checkpointer is not None
        assert without.checkpointer is None
        await _write(with_thread)
        await _write(without)
        checkpointer, ran = with_thread.checkpointer, with_thread.checkpointer.checkpoints

        async def two_more_rounds() -> bool:
            return checkpointer.checkpoints >= ran + 2

        await eventually(two_more_rounds, within=30, what="two checkpoints")
        # The rows are in the database file itself: a checkpoint copied them there.
        assert background.stat().st_size >= ROWS * BLOB
        # Without the thread nothing copied them: below the automatic threshold, commits
        # leave everything in the log.
        assert control.stat().st_size < ROWS * BLOB / 4
        assert control.with_name(control.name + "-wal").stat().st_size >= ROWS * BLOB
    finally:
        await with_thread.dispose()
        await without.dispose()
    assert with_thread.checkpointer._thread is None


async def test_a_service_database_backstops_the_automatic_checkpoint(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", background_checkpoints=True)
    try:
        async with db.engine.connect() as conn:
            pages = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        assert pages == 10_000
    finally:
        await db.dispose()


async def test_the_thread_never_creates_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet.db"
    checkpointer = WalCheckpointer(missing, interval_s=0.01).start()
    await asyncio.sleep(0.3)
    checkpointer.stop()
    assert not missing.exists()
    assert checkpointer.checkpoints == 0

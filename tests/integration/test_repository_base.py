"""What every repository can do with many ids at once (``shared.data.db.RepositoryBase``): read
which exist, or load their rows so that later look-ups by id send no statement. Used by the
consumers' batch handlers (a run of events reads its rows once, not once per event)."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError

from services.directory.models import Unit
from services.directory.repository import UnitRepository
from shared.data.db import IN_CHUNK, Database
from shared.data.migrations import upgrade
from shared.service import load_spec
from tests.conftest import ORG_VAXJO
from tests.integration.test_housekeeping import captured

N = 2 * IN_CHUNK + 3  # three IN lists


async def _units(db_url: str) -> tuple[Database, list[str]]:
    await upgrade(load_spec("directory").migrations_dir, db_url)
    db = Database(db_url)
    ids = [f"unit-{i:05d}" for i in range(N)]
    async with db.transaction() as session:
        await session.execute(
            insert(Unit),
            [
                {
                    "id": unit_id,
                    "owner_orgnr": ORG_VAXJO,
                    "name": f"Enhet {unit_id}",
                    "kind": "boendestod",
                    "kommunkoder": ["0780"],
                    "status": "active",
                }
                for unit_id in ids
            ],
        )
    return db, ids


async def test_existing_ids_are_found_across_several_in_lists(db_url: str) -> None:
    db, ids = await _units(db_url)
    try:
        async with db.sessionmaker() as session:
            repo = UnitRepository(session)
            asked = [*ids, "unit-unknown-1", "unit-unknown-2", ids[0], ids[-1]]
            with captured(db, ("SELECT",)) as reads:
                found = await repo.existing_ids(iter(asked))  # any iterable, read once
            assert found == set(ids)
            assert len(reads) == 3  # 2 × IN_CHUNK + 3 ids: three statements
            with captured(db, ("SELECT",)) as none:
                assert await repo.existing_ids([]) == set()
            assert none == []
    finally:
        await db.dispose()


async def test_loaded_rows_answer_later_gets_without_a_statement(db_url: str) -> None:
    db, ids = await _units(db_url)
    wanted = ids[: IN_CHUNK + 1]
    try:
        async with db.sessionmaker() as session:
            repo = UnitRepository(session)
            loaded = await repo.load_many([*wanted, "unit-unknown"])
            assert sorted(u.id for u in loaded) == wanted
            del loaded
            gc.collect()  # nothing but the session holds the rows now
            with captured(db, None) as statements:
                for unit_id in wanted:
                    unit = await repo.get(unit_id)
                    assert unit is not None
                    assert unit.name == f"Enhet {unit_id}"
            assert statements == []
            with captured(db, ("SELECT",)) as reads:
                assert await repo.get(ids[-1]) is not None  # not loaded: read
            assert len(reads) == 1
    finally:
        await db.dispose()


async def test_lock_reads_the_row_again_and_holds_it_until_the_transaction_ends(
    db_url: str,
) -> None:
    """``lock`` is what two transactions that each read the other's write take first (a plan
    recorded while an acceptance arrives): it reads the committed row, not the session's
    stale copy, and on PostgreSQL nobody else may lock the row until the holder ends."""
    db, ids = await _units(db_url)
    unit_id = ids[0]
    try:
        async with db.transaction() as holder:
            repo = UnitRepository(holder)
            stale = await repo.get(unit_id)
            assert stale is not None
            assert stale.name == f"Enhet {unit_id}"
            async with db.transaction() as other:
                renamed = await UnitRepository(other).get(unit_id)
                assert renamed is not None
                renamed.name = "Nytt namn"
            with captured(db, ("SELECT",)) as reads:
                locked = await repo.lock(unit_id)
            assert locked is stale
            assert locked.name == "Nytt namn"  # read again
            assert len(reads) == 1
            if db.engine.dialect.name == "postgresql":
                assert "FOR UPDATE" in reads[0][0]
                async with db.sessionmaker() as third:
                    with pytest.raises(DBAPIError, match="could not obtain lock"):
                        await third.execute(
                            select(Unit).where(Unit.id == unit_id).with_for_update(nowait=True)
                        )
            else:  # SQLite serialises writers; the statement carries no lock clause
                assert "FOR UPDATE" not in reads[0][0]
        async with db.sessionmaker() as after:  # released at the end of the transaction
            free = await after.execute(select(Unit.id).where(Unit.id == unit_id).with_for_update())
            assert free.scalar_one() == unit_id
    finally:
        await db.dispose()

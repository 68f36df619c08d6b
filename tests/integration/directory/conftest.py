"""Fixtures of the directory API tests: one migrated database per backend and module,
emptied before each test (creating and migrating a PostgreSQL database per test would
dominate the run time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from shared.data import migrations
from shared.data.db import Database
from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tests.helpers.directory import SPEC, build


@pytest.fixture(scope="module", params=BACKENDS)
async def migrated_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """One database per backend for this module, migrated once (creating and migrating a
    PostgreSQL database per test would dominate the run time)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('directory') / 'directory.db'}"
    else:
        url = await create_pg_database()
    await migrations.upgrade(SPEC.migrations_dir, url)
    yield url
    if request.param == "postgres":
        await drop_pg_database(url)


@pytest.fixture
async def db_url(migrated_url: str) -> str:
    """The module's database, emptied before each test (the append-only audit log excepted:
    the directory writes none)."""
    database = Database(migrated_url)
    try:
        async with database.transaction() as session:
            for table in reversed(SPEC.metadata.sorted_tables):
                if table is not SPEC.infra.audit:
                    await session.execute(table.delete())
    finally:
        await database.dispose()
    return migrated_url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def app(db_url: str, db: Database) -> AsyncIterator[FastAPI]:
    application = build(db_url)
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the test's ``app`` in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c

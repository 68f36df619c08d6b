"""Every service's Alembic history, on SQLite and PostgreSQL.

Head matches the models exactly, the audit log is append-only in the database itself,
upgrading twice changes nothing and downgrading to base removes everything it created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from shared.data import migrations
from shared.data.db import Database, utcnow
from shared.service import ServiceSpec, load_spec
from tests.conftest import DatabaseFactory

SERVICES = ["directory", "consent", "referral", "notify"]
INFRA_TABLES = {
    "outbox_event",
    "inbox_event",
    "inbox_attempt",
    "dead_letter",
    "audit_record",
    "idempotency_key",
}


@pytest.fixture(params=SERVICES)
def spec(request: pytest.FixtureRequest) -> ServiceSpec:
    return load_spec(request.param)


@pytest.fixture
async def migrated(spec: ServiceSpec, databases: DatabaseFactory) -> AsyncIterator[Database]:
    """A fresh database of this backend migrated to head for ``spec``."""
    url = await databases.new(spec.name)
    await migrations.upgrade(spec.migrations_dir, url)
    db = Database(url)
    yield db
    await db.dispose()


def head_of(spec: ServiceSpec, url: str) -> str:
    script = ScriptDirectory.from_config(migrations.alembic_config(spec.migrations_dir, url))
    head = script.get_current_head()
    assert head is not None
    return head


async def table_names(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names)


async def current_revisions(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return [r[0] for r in rows]


async def schema_diff(db: Database, spec: ServiceSpec) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, spec.metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


def audit_values(action: str = "read") -> dict[str, Any]:
    return {
        "occurred_at": utcnow(),
        "service": "test",
        "actor_sub": "u-1",
        "actor_org": "212000-0647",
        "action": action,
        "outcome": "allowed",
    }


class TestUpgrade:
    async def test_head_matches_models_and_second_upgrade_is_a_no_op(
        self, spec: ServiceSpec, migrated: Database
    ) -> None:
        assert await schema_diff(migrated, spec) == []
        tables = await table_names(migrated)
        assert tables == {*spec.metadata.tables, "alembic_version"}
        assert tables >= INFRA_TABLES
        assert await current_revisions(migrated) == [head_of(spec, migrated.url)]

        audit = spec.infra.audit
        async with migrated.transaction() as session:
            await session.execute(audit.insert().values(**audit_values("before")))

        await migrations.upgrade(spec.migrations_dir, migrated.url)

        assert await table_names(migrated) == tables
        assert await current_revisions(migrated) == [head_of(spec, migrated.url)]
        assert await schema_diff(migrated, spec) == []
        async with migrated.transaction() as session:
            actions = (await session.execute(select(audit.c.action))).scalars().all()
        assert actions == ["before"]


class TestAuditAppendOnly:
    async def test_insert_allowed_update_and_delete_refused(
        self, spec: ServiceSpec, migrated: Database
    ) -> None:
        audit = spec.infra.audit
        async with migrated.transaction() as session:
            await session.execute(audit.insert().values(**audit_values("first")))
            await session.execute(audit.insert().values(**audit_values("second")))

        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated.transaction() as session:
                await session.execute(audit.update().values(action="rewritten"))
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated.transaction() as session:
                await session.execute(
                    audit.update().where(audit.c.action == "first").values(person_id=None)
                )
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated.transaction() as session:
                await session.execute(audit.delete())
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated.transaction() as session:
                await session.execute(audit.delete().where(audit.c.action == "second"))

        async with migrated.transaction() as session:
            rows = (await session.execute(select(audit.c.action).order_by(audit.c.id))).all()
        assert [r.action for r in rows] == ["first", "second"]

        # Only the audit log is append-only: the idempotency table changes freely.
        idem = spec.infra.idempotency
        values = {
            "caller": "212000-0647:u-1",
            "key": "k-00000001",
            "request_hash": "0" * 64,
            "status_code": 201,
            "response_body": b"{}",
            "response_headers": {},
            "created_at": utcnow(),
        }
        async with migrated.transaction() as session:
            await session.execute(idem.insert().values(**values))
            await session.execute(idem.update().values(status_code=200))
            await session.execute(idem.delete())
            count = (await session.execute(select(func.count()).select_from(idem))).scalar_one()
        assert count == 0


class TestDowngrade:
    async def test_base_leaves_only_alembic_version(
        self, spec: ServiceSpec, migrated: Database, backend: str
    ) -> None:
        cfg = migrations.alembic_config(spec.migrations_dir, migrated.url)
        await asyncio.to_thread(command.downgrade, cfg, "base")

        assert await table_names(migrated) == {"alembic_version"}
        assert await current_revisions(migrated) == []
        async with migrated.engine.connect() as conn:
            if backend == "postgres":
                functions = await conn.execute(
                    text("SELECT proname FROM pg_proc WHERE proname LIKE '%append_only%'")
                )
                assert functions.all() == []
            else:
                leftovers = await conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type IN ('trigger', 'index') "
                        "AND tbl_name != 'alembic_version'"
                    )
                )
                assert leftovers.all() == []

        # The history can be replayed from base: downgrade left nothing behind in the way.
        await migrations.upgrade(spec.migrations_dir, migrated.url)
        assert await schema_diff(migrated, spec) == []
        async with migrated.transaction() as session:
            await session.execute(spec.infra.audit.insert().values(**audit_values()))
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated.transaction() as session:
                await session.execute(spec.infra.audit.delete())

"""Alembic, one history per service, run programmatically.

Each service's ``migrations/env.py`` calls :func:`run_env` with its metadata. Migrations run
at start in development (``VK_AUTO_MIGRATE``) and with ``vardkedja migrate``; concurrent
starters are serialised by a lock (a file lock for SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import async_engine_from_config

from shared.data.db import NAMING_CONVENTION, is_sqlite


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["configure_logger"] = False
    return cfg


@contextlib.contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock = Path(database).with_suffix(".migrate.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade_sync(migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; runs its own event loop)."""
    cfg = alembic_config(migrations_dir, url)
    if is_sqlite(url):
        with _sqlite_lock(url):
            command.upgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


async def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Apply migrations from async code (alembic runs its own loop in a thread)."""
    await asyncio.to_thread(upgrade_sync, migrations_dir, url, revision)


def _lock_key(url: str) -> int:
    digest = hashlib.sha256(make_url(url).render_as_string(hide_password=True).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``env.py`` (online mode only: migrations need a database)."""
    from alembic import context

    config = context.config
    url = config.get_main_option("sqlalchemy.url") or ""

    def do_run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(url)})
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        # With the advisory lock taken, alembic joined the open transaction: commit it here.
        if connection.in_transaction():
            connection.commit()

    async def run_async() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


__all__ = ["NAMING_CONVENTION", "alembic_config", "run_env", "upgrade", "upgrade_sync"]

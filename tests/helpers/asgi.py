"""One service's app, migrated, behind an in-process HTTP client (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from shared.data import migrations


@asynccontextmanager
async def app_client(
    migrations_dir: Path, db_url: str, build: Callable[[str], FastAPI]
) -> AsyncIterator[httpx.AsyncClient]:
    """Migrate ``db_url``, build the app on it and yield a client of it; the app's
    database is disposed afterwards."""
    await migrations.upgrade(migrations_dir, db_url)
    app = build(db_url)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await app.state.ctx.db.dispose()

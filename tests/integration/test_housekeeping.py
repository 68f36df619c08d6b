"""Pruning keeps what can still be needed and removes what cannot (both databases)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from shared.db import Database, utcnow
from shared.housekeeping import prune
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

"""Pruning of the shared tables, run by each worker every hour.

- sent outbox rows older than the replay window (they may be re-published after a broker
  loss until then);
- inbox rows older than ``inbox_retention_days`` (an event must be remembered for as long as
  it can be delivered again);
- idempotency keys older than ``idempotency_retention_hours``.

Each table goes in batches of at most ``PRUNE_BATCH`` rows a transaction, found through an
index on its age column, so a clean-up never holds the write lock for long.

Dead letters and audit records are never pruned here (the audit log is append-only).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Column, ColumnElement

from shared.config import Settings
from shared.data.db import Database, oldest_before, utcnow
from shared.data.infra import InfraTables
from shared.messaging.periodic import PeriodicJob

log = logging.getLogger("vardkedja.housekeeping")


# Rows deleted per transaction: each batch holds the write lock (on SQLite, the database's
# one write lock) only briefly, so writers get in between batches.
PRUNE_BATCH = 5000


@dataclass
class Pruned:
    outbox: int
    inbox: int
    idempotency: int


async def _delete_in_batches(
    db: Database,
    age: Column[dt.datetime],
    before: dt.datetime,
    *where: ColumnElement[bool],
    batch: int,
) -> int:
    """Delete the rows of ``age``'s table with ``age`` before ``before`` (and ``where``), the
    oldest ``batch`` a transaction; returns how many went."""
    stmt = age.table.delete().where(oldest_before(age, before, *where, limit=batch))
    total = 0
    while True:
        async with db.transaction() as session:
            result = await session.execute(stmt)
        n = int(getattr(result, "rowcount", 0) or 0)
        total += n
        if n < batch:
            return total


async def prune(
    settings: Settings, db: Database, infra: InfraTables, *, batch: int = PRUNE_BATCH
) -> Pruned:
    """Delete what no longer serves; returns how many rows of each table went."""
    k = settings.kafka
    now = utcnow()
    ob, ib, ik = infra.outbox, infra.inbox, infra.idempotency
    sent_before = now - dt.timedelta(hours=k.replay_window_hours + 1)
    outbox = await _delete_in_batches(
        db, ob.c.created_at, sent_before, ob.c.sent_at.is_not(None), batch=batch
    )
    received_before = now - dt.timedelta(days=k.inbox_retention_days)
    inbox = await _delete_in_batches(db, ib.c.received_at, received_before, batch=batch)
    keys_before = now - dt.timedelta(hours=k.idempotency_retention_hours)
    idem = await _delete_in_batches(db, ik.c.created_at, keys_before, batch=batch)
    return Pruned(outbox, inbox, idem)


def housekeeping_job(settings: Settings, db: Database, infra: InfraTables) -> PeriodicJob:
    """The hourly pruning as a worker's periodic job."""

    async def run() -> None:
        done = await prune(settings, db, infra)
        log.info("pruned", extra={"count": done.outbox + done.inbox + done.idempotency})

    return PeriodicJob("housekeeping", 3600, run)

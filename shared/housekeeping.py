"""Pruning of the shared tables, run by each worker every hour.

- sent outbox rows older than the replay window (they may be re-published after a broker
  loss until then);
- inbox rows older than ``inbox_retention_days`` (an event must be remembered for as long as
  it can be delivered again);
- idempotency keys older than ``idempotency_retention_hours``.

Dead letters and audit records are never pruned here (the audit log is append-only).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from shared.config import Settings
from shared.db import Database, utcnow
from shared.infra import InfraTables
from shared.periodic import PeriodicJob

log = logging.getLogger("vardkedja.housekeeping")


@dataclass
class Pruned:
    outbox: int
    inbox: int
    idempotency: int


async def prune(settings: Settings, db: Database, infra: InfraTables) -> Pruned:
    """Delete what no longer serves; returns how many rows of each table went."""
    k = settings.kafka
    now = utcnow()
    ob, ib, ik = infra.outbox, infra.inbox, infra.idempotency
    async with db.transaction() as session:
        outbox = await session.execute(
            ob.delete().where(
                ob.c.sent_at.is_not(None),
                ob.c.created_at < now - dt.timedelta(hours=k.replay_window_hours + 1),
            )
        )
        inbox = await session.execute(
            ib.delete().where(ib.c.received_at < now - dt.timedelta(days=k.inbox_retention_days))
        )
        idem = await session.execute(
            ik.delete().where(
                ik.c.created_at < now - dt.timedelta(hours=k.idempotency_retention_hours)
            )
        )
    return Pruned(
        int(getattr(outbox, "rowcount", 0) or 0),
        int(getattr(inbox, "rowcount", 0) or 0),
        int(getattr(idem, "rowcount", 0) or 0),
    )


def housekeeping_job(settings: Settings, db: Database, infra: InfraTables) -> PeriodicJob:
    """The hourly pruning as a worker's periodic job."""

    async def run() -> None:
        done = await prune(settings, db, infra)
        log.info("pruned", extra={"count": done.outbox + done.inbox + done.idempotency})

    return PeriodicJob("housekeeping", 3600, run)

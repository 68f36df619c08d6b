"""Retention: notifications (with their delivery log), FHIR subscriptions' handshakes and
heartbeats, and finished timers go once they are older than ``VK_NOTIFY__RETENTION_DAYS``,
a bounded batch a transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.fhir_backport import SIGNALS
from services.notify.repository import DeliveryRepository, NotificationRepository, TimerRepository
from shared.config import NotifySettings
from shared.data.db import utcnow

# Rows of each kind deleted per transaction: each batch holds the write lock (on SQLite, the
# database's one write lock) only briefly, so writers get in between batches.
PURGE_BATCH = 1000


async def purge_expired(
    *, session: AsyncSession, settings: NotifySettings, limit: int = PURGE_BATCH
) -> int:
    """Deletes up to ``limit`` notifications (with their delivery log) and up to ``limit``
    finished timers past retention; returns how many of both went (below ``limit``: done)."""
    cutoff = utcnow() - dt.timedelta(days=settings.retention_days)
    notifications = await NotificationRepository(session).delete_older_than(cutoff, limit=limit)
    timers = await TimerRepository(session).delete_finished_before(cutoff, limit=limit)
    signals = await DeliveryRepository(session).delete_signals_before(
        cutoff, types=SIGNALS, limit=limit
    )
    return notifications + timers + signals

"""A consumer's failed attempts at its events (``inbox_attempt``).

A handler that raises is retried with backoff; its attempts are persisted here so a crash
loop cannot retry forever (the inbox dead-letters the event after ``dead_letter_after``
attempts, with the last error). The table holds failures only.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from shared.data.db import Database, utcnow
from shared.data.infra import InfraTables

log = logging.getLogger("vardkedja.inbox")


class FailedAttempts:
    """The failed attempts of one consumer (``consumer``: its name), per event id."""

    def __init__(self, db: Database, infra: InfraTables, consumer: str) -> None:
        self.db = db
        self.infra = infra
        self.consumer = consumer
        self._cache: dict[str, int] | None = None

    async def count(self, event_id: str) -> int:
        """Failed attempts so far. The table holds failures only: it is read once at start
        and kept in memory, so a healthy event costs no extra query."""
        if self._cache is None:
            ia = self.infra.inbox_attempt
            async with self.db.sessionmaker() as session:
                rows = await session.execute(
                    select(ia.c.event_id, ia.c.attempts).where(ia.c.consumer == self.consumer)
                )
                self._cache = {eid: int(n) for eid, n in rows}
        return self._cache.get(event_id, 0)

    async def last_error(self, event_id: str) -> str:
        ia = self.infra.inbox_attempt
        async with self.db.sessionmaker() as session:
            value = await session.scalar(
                select(ia.c.last_error).where(
                    ia.c.consumer == self.consumer, ia.c.event_id == event_id
                )
            )
        return str(value or "failed")

    async def record(self, event_id: str, attempts: int, error: str) -> None:
        """``attempts`` failed so far, the last with ``error`` (best effort: never raises)."""
        if self._cache is not None:
            self._cache[event_id] = attempts
        ia = self.infra.inbox_attempt
        try:
            async with self.db.transaction() as session:
                updated = await session.execute(
                    ia.update()
                    .where(ia.c.consumer == self.consumer, ia.c.event_id == event_id)
                    .values(attempts=attempts, last_error=error, updated_at=utcnow())
                )
                if not getattr(updated, "rowcount", 0):
                    await session.execute(
                        ia.insert().values(
                            consumer=self.consumer,
                            event_id=event_id,
                            attempts=attempts,
                            last_error=error,
                            updated_at=utcnow(),
                        )
                    )
        except Exception as exc:  # the attempt counter is best effort; the loop goes on
            log.warning("could not record attempt", extra={"error_type": type(exc).__name__})


__all__ = ["FailedAttempts"]

"""SQLite's WAL checkpoints off the commit path: a thread per process checkpoints PASSIVE.

In WAL mode SQLite copies the log back into the database file ("checkpoints") in the commit
that pushes the log past ``wal_autocheckpoint`` pages (1,000 by default, about 4 MB). That
commit then writes and syncs the database file before it returns: 0.2–1 s on this machine's
disk, every 15–30 s at 200 events/s, and whoever awaited that commit (a request, or the
consumer with the batch it just applied) waited with it — it showed as the p99 of the notify
fan-out (ADR 0015).

A service process instead runs :class:`WalCheckpointer`: a daemon thread with a connection
of its own that asks for a ``PASSIVE`` checkpoint every ``interval_s``. A passive checkpoint
takes no lock that writers or readers wait for; it copies what no reader still needs, and
when it has copied everything the next writer starts the log from the beginning again.
Connections keep the automatic checkpoint only as a backstop, at :data:`BACKSTOP_PAGES`
(about 40 MB of log), for when the thread is late or absent (a one-off script's process).
The ``sqlite3`` module releases the GIL while SQLite works, so the thread does not hold up
the event loop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 10_000
"""``wal_autocheckpoint`` of the service's connections: a commit checkpoints only past this."""


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite file ``path`` every ``interval_s`` on a thread."""

    def __init__(self, path: str | Path, *, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.checkpoints = 0  # passive checkpoints that ran (whatever they could copy)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"wal-checkpoint:{self.path.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, pages in the log, pages copied)."""
        busy, in_log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(busy), int(in_log), int(copied)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval_s):
                if conn is None:
                    if not self.path.exists():
                        continue  # not created yet (migrations create it): never create it
                    # mode=rw: never create the file; no busy wait: passive takes no lock
                    # that anyone holds for long, and a refused round simply comes again.
                    conn = sqlite3.connect(
                        f"{self.path.resolve().as_uri()}?mode=rw", uri=True, timeout=0
                    )
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:
                    # Busy, or the file went away (a test's directory): try again next round.
                    log.debug("wal checkpoint skipped", extra={"error_type": type(exc).__name__})
        finally:
            if conn is not None:
                conn.close()

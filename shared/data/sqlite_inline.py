"""SQLite on the event loop's own thread, for SQLAlchemy's asyncio engine.

SQLAlchemy's ``sqlite+aiosqlite`` dialect speaks to ``aiosqlite``, which runs every call of
a connection on a thread of its own: each statement, fetch, commit and cursor is a hand-off
to that thread and a wake-up of the event loop (a queue put, ``call_soon_threadsafe``, a
self-pipe write, two GIL switches). For SQLite, whose statements on a local file take
microseconds, the hand-offs cost far more than the work: measured on the referral send path
they were most of the CPU. This module gives the same dialect an ``aiosqlite``-shaped
connection (through ``create_async_engine(async_creator=...)``) that calls :mod:`sqlite3`
directly on the loop's thread.

What a thread bought, and how it is kept:

- **Waiting for a lock** must not block the loop (another coroutine of this process may hold
  the write lock and need the loop to commit it). ``busy_timeout`` is 0, and a statement
  refused with ``SQLITE_BUSY`` is retried after a nap with backoff (0.5 ms doubling up to
  5 ms) until :data:`BUSY_TIMEOUT_S` has passed; then it fails as SQLite's own busy handler
  would. A commit, rollback or close by another connection of this process ends the naps at
  once (the lock it held is free), so requests of one process waiting on each other do not
  wait out a backoff; a lock held by another process is noticed at the next try (the
  referral benchmark measured 34 ms lost per wait with a 50 ms cap, most of it after the
  lock was free). Lock waits are counted (``vk_sqlite_lock_waits_total``,
  ``vk_sqlite_lock_wait_seconds_total``). A
  ``SQLITE_BUSY_SNAPSHOT`` (a read snapshot too old to write from) is not retried: the
  transaction has to start again, as with the busy handler.
- **Disk writes.** With WAL and ``synchronous=NORMAL`` a commit appends to the WAL without
  syncing, except when it runs SQLite's automatic checkpoint, which writes and syncs the
  database file. Commits (and closes) therefore run on a worker thread: one hand-off per
  transaction instead of one per call.
- **Long statements** block the loop while they run. The services run short, indexed
  statements; bulk work (migrations, benchmarks' seeding) is not on the request path.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from prometheus_client import Counter

BUSY_TIMEOUT_S = 30.0
"""How long a statement waits for another connection's lock (as ``busy_timeout`` did)."""

_FIRST_WAIT_S = 0.0005
_MAX_WAIT_S = 0.005

# Per event loop: the naps of statements waiting for a lock, ended when this process lets
# one go (commit, rollback, close).
_napping: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


def _released() -> None:
    """A connection of this process let its lock go: wake this loop's waiting statements."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    naps = _napping.pop(loop, None)
    for nap in naps or ():
        _wake(nap)


async def _nap(seconds: float) -> None:
    """Sleep ``seconds``, or less if this process lets a lock go meanwhile."""
    loop = asyncio.get_running_loop()
    nap: asyncio.Future[None] = loop.create_future()
    _napping.setdefault(loop, set()).add(nap)
    timer = loop.call_later(seconds, _wake, nap)
    try:
        await nap
    finally:
        timer.cancel()
        naps = _napping.get(loop)
        if naps is not None:
            naps.discard(nap)
            if not naps:
                del _napping[loop]


T = TypeVar("T")

LOCK_WAITS = Counter(
    "vk_sqlite_lock_waits_total", "SQLite statements that found the database locked and waited"
)
LOCK_WAIT_SECONDS = Counter(
    "vk_sqlite_lock_wait_seconds_total", "Time SQLite statements waited for another's lock"
)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """A plain SQLITE_BUSY / SQLITE_LOCKED (worth waiting for), not BUSY_SNAPSHOT."""
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name in ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_RECOVERY")
    return "locked" in str(exc) or "busy" in str(exc)


async def _patiently(call: Callable[[], T], *, off_loop: bool = False) -> T:
    """``call()``, retried while the database is busy, sleeping (not blocking) between.
    ``off_loop`` runs each try on a worker thread (for calls that may touch the disk)."""

    async def attempt() -> T:
        return await asyncio.to_thread(call) if off_loop else call()

    try:
        return await attempt()
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + BUSY_TIMEOUT_S
    wait = _FIRST_WAIT_S
    LOCK_WAITS.inc()
    try:
        while True:
            await _nap(wait)
            try:
                return await attempt()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or loop.time() >= deadline:
                    raise
            wait = min(wait * 2, _MAX_WAIT_S)
    finally:
        LOCK_WAIT_SECONDS.inc(loop.time() - started)


class Cursor:
    """An ``aiosqlite.Cursor``-shaped wrapper of a :class:`sqlite3.Cursor`."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        if parameters is None:
            await _patiently(lambda: self._cursor.execute(sql))
        else:
            await _patiently(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        rows = list(parameters)  # a retry must see every row again
        await _patiently(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return await _patiently(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self._cursor.arraysize if size is None else size
        return await _patiently(lambda: self._cursor.fetchmany(n))

    async def fetchall(self) -> list[Any]:
        return await _patiently(self._cursor.fetchall)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Cursors:
    """What ``Connection.cursor()`` returns: entered with ``async with`` (or awaited)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def __aenter__(self) -> Cursor:
        return Cursor(self._connection.cursor())

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __await__(self) -> Any:
        return self.__aenter__().__await__()


class _Immediate:
    """Stands in for aiosqlite's request queue (``_tx``): SQLAlchemy sets the isolation
    level through it; here the function runs at once and the future gets its result."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the waiter, as aiosqlite does
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class Connection:
    """An ``aiosqlite.Connection``-shaped wrapper of a :class:`sqlite3.Connection`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._conn = connection
        self._tx = _Immediate()

    def cursor(self) -> _Cursors:
        return _Cursors(self._conn)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        cursor = Cursor(self._conn.cursor())
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        # Off the loop: a commit may run SQLite's automatic WAL checkpoint, which writes
        # and syncs the database file (measured up to 233 ms on a busy machine).
        try:
            await _patiently(self._conn.commit, off_loop=True)
        finally:
            _released()

    async def rollback(self) -> None:
        try:
            self._conn.rollback()
        finally:
            _released()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            try:
                await asyncio.to_thread(self._conn.close)  # the last close checkpoints
            finally:
                _released()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate outside a greenlet)."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value


def creator(database: str, **connect_args: Any) -> Callable[[], Any]:
    """The ``async_creator`` for ``create_async_engine``: opens ``database`` with
    :func:`sqlite3.connect` (``busy_timeout`` 0: waits are :func:`_patiently`'s)."""
    args = {**connect_args, "timeout": 0, "check_same_thread": False}

    async def connect() -> Connection:
        return Connection(sqlite3.connect(database, **args))

    return connect

"""Async SQLAlchemy 2: engines for SQLite (aiosqlite) and PostgreSQL (asyncpg), chosen by URL.

One owner of the commit: the HTTP request (:func:`shared.web.app.DbSession`, which commits
*before* the response is sent) or the handler of one consumed message
(:mod:`shared.messaging.inbox`). Services and repositories only ``flush()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    MetaData,
    String,
    TypeDecorator,
    and_,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, QueryableAttribute, mapped_column
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    """A MetaData with the project's naming convention (one per service)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """A new random identifier (UUID4, as text so SQLite and PostgreSQL agree)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite drops the offset; PostgreSQL keeps ``timestamptz``. Naive values are refused
    on the way in, so a local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class TimestampMixin:
    """``created_at`` / ``updated_at`` in UTC, maintained by the ORM."""

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class IdMixin:
    """A text UUID primary key."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


# SQLSTATE classes of a database that cannot serve now, whatever the statement: connection
# exceptions (08), insufficient resources (53), object not in prerequisite state (55: a
# database not accepting connections, a lock not available), operator intervention (57:
# shutting down, terminated by an administrator, cannot connect now).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "55", "57")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, or SQLAlchemy's wrapper of one) says the database is
    unavailable rather than that the statement was wrong: a PostgreSQL that refuses
    connections raises a plain DBAPIError whose SQLSTATE tells it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def is_infrastructure_error(exc: BaseException) -> bool:
    """Database unreachable, refusing connections or locked, or a sibling service not
    answering (an exception with ``transient = True``): a consumer waits and retries without
    counting an attempt; a request answers 503, not 500."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or database_unavailable(exc)):
        return True
    return isinstance(exc, ConnectionError | OSError | TimeoutError)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, wal_autocheckpoint: int | None = None
) -> AsyncEngine:
    """An async engine for ``url``: SQLite in WAL mode with a busy timeout, or PostgreSQL.

    ``wal_autocheckpoint`` (SQLite): pages of log after which a commit checkpoints; None
    keeps SQLite's 1,000 (see :mod:`shared.data.sqlite_checkpoint` for why services raise it)."""
    if is_sqlite(url):
        _ensure_sqlite_dir(url)
        # SQLite serialises writers and WAL lets readers go on; busy_timeout makes a writer
        # wait instead of failing. Pooled: an aiosqlite connection is a thread, costly to open.
        memory = ":memory:" in url
        inline = not memory and os.environ.get("VK_SQLITE_DRIVER", "inline") == "inline"
        pooling = {"poolclass": NullPool} if memory else {"pool_size": 5, "max_overflow": 10}
        if inline:
            from sqlalchemy.engine import make_url

            from shared.data.sqlite_inline import creator

            engine = create_async_engine(
                url,
                echo=echo,
                async_creator=creator(str(make_url(url).database)),
                **pooling,
            )
        else:
            engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **pooling)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # The inline driver waits for locks itself, without blocking the event loop.
            cur.execute(f"PRAGMA busy_timeout={0 if inline else 30000}")
            if wal_autocheckpoint is not None:
                cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
            cur.close()

        return engine
    # No pre-ping (a round trip per checkout): a dropped connection raises, is invalidated
    # by the pool, and the request fails once / the consumer retries it as an outage.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
    )


def _sqlite_file(url: str) -> str | None:
    """The file of a SQLite ``url`` (None for PostgreSQL and in-memory databases)."""
    from sqlalchemy.engine import make_url

    if not is_sqlite(url):
        return None
    database = make_url(url).database
    return database if database and database != ":memory:" else None


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class ChangeWatch:
    """Tells cheaply whether the database may have new commits since the last look.

    For a SQLite file in WAL mode every commit (from any process) grows or touches the
    ``-wal`` file, so an ``os.stat`` replaces a query while idle. On PostgreSQL, a watch
    given a ``channel`` LISTENs on it once :meth:`listen` has run (a connection of its own)
    and answers "changed" only after a notification: the outbox's trigger notifies
    ``vk_outbox`` at each commit that added rows (``shared.data.infra.outbox_notify_ddl``). Until
    it listens, and whenever its connection is lost, it answers "maybe" (pollers then query;
    they also query every so often anyway, so a lost notification costs a delay, never an
    event). Without a channel, PostgreSQL always answers "maybe".
    """

    def __init__(self, url: str, *, channel: str | None = None) -> None:
        from pathlib import Path

        from sqlalchemy.engine import make_url

        database = make_url(url).database if is_sqlite(url) else None
        self._wal = Path(f"{database}-wal") if database and database != ":memory:" else None
        self._last: tuple[int, int] | None = None
        self._url = url
        self._channel = None if is_sqlite(url) else channel
        self._listener: AsyncConnection | None = None
        self._listener_engine: AsyncEngine | None = None
        self._listening = False
        self._dirty = True
        self._retry_at = 0.0
        self._on_change: Callable[[], None] | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    async def listen(self, on_change: Callable[[], None] | None = None) -> None:
        """PostgreSQL with a channel: LISTEN (``on_change`` is called at each notification).
        Cheap to call again: a no-op while listening, retried at most every few seconds
        after a failure."""
        if self._channel is None or self._listening or time.monotonic() < self._retry_at:
            return
        self._on_change = on_change
        await self._close_listener()
        engine = create_async_engine(self._url, poolclass=NullPool)
        try:
            conn = await engine.connect()
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.add_listener(self._channel, self._notified)
            raw.add_termination_listener(self._lost)
        except Exception as exc:  # the database is away: poll, and try again later
            self._retry_at = time.monotonic() + 5.0
            await engine.dispose()
            logging.getLogger("vardkedja.db").warning(
                "cannot listen for changes; polling", extra={"error_type": type(exc).__name__}
            )
            return
        self._listener_engine, self._listener = engine, conn
        self._listening = True
        self._dirty = True  # whatever was committed before the LISTEN

    def _notified(self, *_: object) -> None:
        self._dirty = True
        if self._on_change is not None:
            self._on_change()

    def _lost(self, *_: object) -> None:
        self._listening = False
        self._dirty = True
        self._retry_at = time.monotonic() + 1.0
        if self._on_change is not None:
            self._on_change()

    async def _close_listener(self) -> None:
        conn, engine = self._listener, self._listener_engine
        self._listener = self._listener_engine = None
        self._listening = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()

    async def aclose(self) -> None:
        """Stop listening (and close the listener's connection)."""
        await self._close_listener()

    def changed(self) -> bool:
        if self._wal is None:
            if not self._listening:
                return True
            dirty, self._dirty = self._dirty, False
            return dirty
        try:
            st = os.stat(self._wal)
            now = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            now = (0, 0)
        if now != self._last:
            self._last = now
            return True
        return False

    def forget(self) -> None:
        """Answer "maybe changed" next time (after a look that failed)."""
        self._last = None
        self._dirty = True


class Database:
    """An engine and its session factory for one service's database.

    ``background_checkpoints`` (a service's API or worker on a SQLite file): the WAL is
    checkpointed by a thread of this process instead of inside commits
    (:mod:`shared.data.sqlite_checkpoint`); :meth:`dispose` stops it."""

    def __init__(
        self, url: str, *, echo: bool = False, background_checkpoints: bool = False
    ) -> None:
        from shared.data.sqlite_checkpoint import BACKSTOP_PAGES, WalCheckpointer

        self.url = url
        self.checkpointer: WalCheckpointer | None = None
        path = _sqlite_file(url)
        if background_checkpoints and path is not None:
            self.checkpointer = WalCheckpointer(path).start()
        self.engine = create_engine(
            url, echo=echo, wal_autocheckpoint=BACKSTOP_PAGES if self.checkpointer else None
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.checkpointer is not None:
            import asyncio

            await asyncio.to_thread(self.checkpointer.stop)


ModelT = TypeVar("ModelT", bound=DeclarativeBase)


IN_CHUNK = 500
"""Values in one IN list at most (SQLite bounds a statement's parameters)."""


def _chunks(ids: Iterable[Any]) -> list[list[Any]]:
    """``ids`` without repeats, in order, cut into IN lists of at most ``IN_CHUNK``."""
    wanted = sorted(set(ids))
    return [wanted[i : i + IN_CHUNK] for i in range(0, len(wanted), IN_CHUNK)]


class RepositoryBase(Generic[ModelT]):
    """All SQL of one aggregate lives in its repository; services call these methods only.

    Repositories never commit: the request or message handler owns the transaction.
    """

    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: Any) -> ModelT | None:
        return await self.session.get(self.model, id_)

    async def lock(self, id_: Any) -> ModelT | None:
        """The row, read again and locked until the transaction ends (``SELECT ... FOR
        UPDATE`` on PostgreSQL). Two transactions that each read what the other writes take
        the same row's lock first, so that neither decides on a snapshot without the
        other's write (write skew). SQLite serialises its writers and needs no lock."""
        pk = inspect(self.model).primary_key[0]
        stmt = select(self.model).where(pk == id_).with_for_update()
        # populate_existing: a copy the session holds is replaced by the row as committed
        # (session.get(with_for_update=...) would raise on a versioned row changed since).
        rows = await self.session.scalars(stmt.execution_options(populate_existing=True))
        return rows.one_or_none()

    async def load_many(self, ids: Iterable[Any]) -> list[ModelT]:
        """The rows of ``ids`` in one query, kept in the session: a later :meth:`get` of any
        of them is answered from the session's identity map, without a statement."""
        pk = inspect(self.model).primary_key[0]
        rows: list[ModelT] = []
        for chunk in _chunks(ids):
            rows.extend(await self.session.scalars(select(self.model).where(pk.in_(chunk))))
        # The identity map holds unchanged objects weakly: held here until the session ends.
        self.session.info.setdefault("loaded", []).extend(rows)
        return rows

    async def existing_ids(self, ids: Iterable[Any]) -> set[Any]:
        """Which of ``ids`` have a row (one query; only the keys are read)."""
        pk = inspect(self.model).primary_key[0]
        found: set[Any] = set()
        for chunk in _chunks(ids):
            found.update(await self.session.scalars(select(pk).where(pk.in_(chunk))))
        return found

    async def add(self, obj: ModelT) -> ModelT:
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def list_all(self, *, limit: int = 100) -> list[ModelT]:
        result = await self.session.execute(select(self.model).limit(limit))
        return list(result.scalars())


def oldest_before(
    age: ColumnElement[dt.datetime] | QueryableAttribute[dt.datetime],
    before: dt.datetime,
    *where: ColumnElement[bool],
    limit: int,
) -> ColumnElement[bool]:
    """The ``limit`` oldest rows with ``age`` before ``before`` (and ``where``), and any
    sharing the last one's age: one batch of a clean-up that deletes by age.

    A single range on an index over ``age``, up to the batch's newest age: neither a scan nor
    a join (``DELETE ... WHERE key IN (SELECT ... LIMIT n)`` may hash-join the whole table).
    """
    batch = select(age.label("age")).where(age < before, *where).order_by(age).limit(limit)
    newest = select(func.max(batch.subquery().c.age)).scalar_subquery()
    return and_(age <= newest, *where)

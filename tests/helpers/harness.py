"""A minimal service for testing the outbox relay and the inbox consumer against real parts.

Its database has the shared infrastructure tables plus ``applied``, one row per *effect*
(no unique constraint, so a duplicated effect would show as a second row).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.data.db import Database, make_metadata
from shared.data.infra import define_infra_tables, outbox_notify_ddl
from shared.messaging.events import Catalogue, EventPayload
from shared.messaging.inbox import BatchHandler, ConsumerSpec, Delivery, EventConsumer, Handler
from shared.messaging.outbox import Outbox, OutboxRelay

COUNTED = "se.vardkedja.test.counted.v1"
CATALOGUE = Catalogue()


@CATALOGUE.register(COUNTED, topics=("test",), personal_data=False)
class CountedV1(EventPayload):
    """A test event: number ``seq`` of key ``key``."""

    key: str
    seq: int


# Known to the catalogue but not handled by the harness consumer: it must be skipped.
@CATALOGUE.register("se.vardkedja.test.other.v1", topics=("test",), personal_data=False)
class OtherV1(EventPayload):
    """A test event no harness handler handles."""

    note: str = ""


metadata: MetaData = make_metadata()
infra = define_infra_tables(metadata)
applied = Table(
    "applied",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(50), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
)


async def create_schema(db: Database) -> None:
    """The tables, and (as the services' migrations do) the outbox's commit notification."""
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for ddl in outbox_notify_ddl(conn.dialect.name):
            await conn.execute(text(ddl))


async def record_effect(session: AsyncSession, delivery: Delivery) -> None:
    payload = delivery.payload
    assert isinstance(payload, CountedV1)
    if payload.key == "poison":
        raise RuntimeError("poison event: the handler always fails")
    await session.execute(
        applied.insert().values(key=payload.key, seq=payload.seq, event_id=delivery.event.id)
    )


class BatchCalls:
    """A batch handler with the effect of :func:`record_effect`, counting its calls."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def __call__(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        self.sizes.append(len(deliveries))
        rows = []
        for delivery in deliveries:
            payload = delivery.payload
            assert isinstance(payload, CountedV1)
            if payload.key == "poison":
                raise RuntimeError("poison event: the handler always fails")
            rows.append({"key": payload.key, "seq": payload.seq, "event_id": delivery.event.id})
        await session.execute(applied.insert(), rows)


class Harness:
    """One member's test service: its database, outbox, relay and consumer."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.db = Database(settings.db_url)
        self.outbox = Outbox(settings, infra)

    async def setup(self) -> Harness:
        await create_schema(self.db)
        return self

    async def write(self, key: str, seq: int) -> str:
        """One state change with its event, in one transaction (as a request would)."""
        async with self.db.transaction() as session:
            ev = await self.outbox.publish(
                session, self.topic, COUNTED, CountedV1(key=key, seq=seq), subject=key, key=key
            )
        return ev.id

    def relay(self, **kwargs: object) -> OutboxRelay:
        return OutboxRelay(self.settings, self.db, infra, **kwargs)  # type: ignore[arg-type]

    def consumer(
        self,
        group: str,
        handler: Handler = record_effect,
        on_applied: Callable[[Delivery], None] | None = None,
        batch_handler: BatchHandler | None = None,
    ) -> EventConsumer:
        spec = ConsumerSpec(
            name="harness",
            topics=[self.topic],
            handlers={COUNTED: handler},
            batch_handlers={COUNTED: batch_handler} if batch_handler else {},
            catalogue=CATALOGUE,
        )
        return EventConsumer(
            self.settings,
            self.db,
            infra,
            spec,
            group_id=group,
            retry_base=0.05,
            on_applied=on_applied,
        )

    async def effects(self) -> list[tuple[str, int]]:
        async with self.db.sessionmaker() as session:
            rows = await session.execute(
                select(applied.c.key, applied.c.seq).order_by(applied.c.id)
            )
            return [(k, s) for k, s in rows]

    async def count(self, table: Table) -> int:
        async with self.db.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)

    async def unsent(self) -> int:
        ob = infra.outbox
        async with self.db.sessionmaker() as session:
            q = select(func.count()).select_from(ob).where(ob.c.sent_at.is_(None))
            return int(await session.scalar(q) or 0)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 60.0, what: str = "condition"
) -> float:
    """Wait until ``check()`` holds (a deadline for progress, not a speed assertion);
    returns the seconds it took."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.05)

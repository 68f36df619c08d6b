"""All SQL of the notify service."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Result,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import Row as SqlRow
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import (
    Delivery,
    DeliveryAttempt,
    Notification,
    Timer,
    UnitChannel,
    WebhookSubscription,
)
from shared.data.db import RepositoryBase, oldest_before

Row = Mapping[str, Any]


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# The statements of the consumer's hot path are built once and run on the session's
# connection: building a statement and the ORM's execution steps cost more than running it.


async def _core(session: AsyncSession, stmt: Executable, params: Any = None) -> Result[Any]:
    """Run a Core statement in the session's transaction, past the ORM layer."""
    conn = await session.connection()
    return await conn.execute(stmt, params)


@functools.cache
def _insert(table: Table) -> Executable:
    return table.insert()


async def _insert_rows(session: AsyncSession, model: type[Any], rows: Sequence[Row]) -> None:
    """Append-only rows in one executemany (rows of one shape: the same keys)."""
    if rows:
        await _core(session, _insert(_table(model)), list(rows))


@functools.cache
def _insert_new_stmt(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _insert_new(session: AsyncSession, model: type[Any]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that skips rows a unique constraint already holds (SQLite and PostgreSQL
    say it the same way): one statement instead of a look first, no savepoint."""
    return _insert_new_stmt(session.get_bind().dialect.name, _table(model))


_SUBSCRIPTION = _table(WebhookSubscription)
_ENABLED = _SUBSCRIPTION.c.enabled.is_(True)
_MEMBER_WIDE = select(_SUBSCRIPTION).where(_ENABLED, _SUBSCRIPTION.c.unit_id.is_(None))
_OF_UNIT = select(_SUBSCRIPTION).where(
    _ENABLED,
    or_(_SUBSCRIPTION.c.unit_id.is_(None), _SUBSCRIPTION.c.unit_id == bindparam("unit_id")),
)
_UNIT_CHANNEL = _table(UnitChannel)
_UNIT_CHANNELS = select(_UNIT_CHANNEL).where(
    _UNIT_CHANNEL.c.unit_id.in_(bindparam("ids", expanding=True))
)


def _in_inbox(recipient_kind: str, recipient: str) -> ColumnElement[bool]:
    """The notifications of one inbox (a unit's or a role's)."""
    return and_(Notification.recipient_kind == recipient_kind, Notification.recipient == recipient)


class NotificationRepository(RepositoryBase[Notification]):
    model = Notification

    async def by_id(self, notification_id: str) -> Notification | None:
        stmt = select(Notification).where(Notification.id == notification_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def insert_new(self, rows: Sequence[Row]) -> set[str]:
        """Insert the notifications not stored yet (by id, or origin, rule and recipient,
        from which the id derives); the ids of those inserted."""
        if not rows:
            return set()
        stmt = _insert_new(self.session, Notification).returning(_table(Notification).c.id)
        return set((await _core(self.session, stmt, list(rows))).scalars())

    async def by_ids(self, ids: list[str]) -> list[Notification]:
        if not ids:
            return []
        stmt = select(Notification).where(Notification.id.in_(ids))
        return list((await self.session.execute(stmt)).scalars())

    async def rows_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """The notifications ``ids`` as plain rows (no ORM objects)."""
        if not ids:
            return []
        stmt = select(_table(Notification)).where(Notification.id.in_(ids))
        return [dict(r) for r in (await self.session.execute(stmt)).mappings()]

    async def inbox_page(
        self,
        *,
        recipient_kind: str,
        recipient: str,
        unread_only: bool,
        before_seq: int | None,
        limit: int,
    ) -> list[Notification]:
        """Newest first."""
        stmt = (
            select(Notification)
            .where(_in_inbox(recipient_kind, recipient))
            .order_by(Notification.seq.desc())
            .limit(limit)
        )
        if unread_only:
            stmt = stmt.where(Notification.read_at.is_(None))
        if before_seq is not None:
            stmt = stmt.where(Notification.seq < before_seq)
        return list((await self.session.execute(stmt)).scalars())

    async def after(
        self, *, recipient_kind: str, recipient: str, after_seq: int, limit: int
    ) -> list[Notification]:
        """Oldest first, those after ``after_seq`` (the live stream)."""
        stmt = (
            select(Notification)
            .where(_in_inbox(recipient_kind, recipient), Notification.seq > after_seq)
            .order_by(Notification.seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def latest_seq(self, *, recipient_kind: str, recipient: str) -> int:
        stmt = (
            select(Notification.seq)
            .where(_in_inbox(recipient_kind, recipient))
            .order_by(Notification.seq.desc())
            .limit(1)
        )
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    async def delete_older_than(self, cutoff: dt.datetime, *, limit: int) -> int:
        """Delete up to ``limit`` notifications created before ``cutoff`` with their
        deliveries and attempts; returns how many notifications went."""
        ids = list(
            (
                await self.session.execute(
                    select(Notification.id).where(Notification.created_at < cutoff).limit(limit)
                )
            ).scalars()
        )
        if not ids:
            return 0
        deliveries = select(Delivery.id).where(Delivery.notification_id.in_(ids))
        await self.session.execute(
            delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries))
        )
        await self.session.execute(delete(Delivery).where(Delivery.notification_id.in_(ids)))
        await self.session.execute(delete(Notification).where(Notification.id.in_(ids)))
        return len(ids)

    async def count_unread(self, *, recipient_kind: str, recipient: str) -> int:
        stmt = select(func.count()).where(
            _in_inbox(recipient_kind, recipient), Notification.read_at.is_(None)
        )
        return int(await self.session.scalar(stmt) or 0)


class DeliveryRepository(RepositoryBase[Delivery]):
    model = Delivery

    async def insert_rows(self, rows: Sequence[Row]) -> None:
        """Insert new deliveries (column name -> value, every row the same columns)."""
        await _insert_rows(self.session, Delivery, rows)

    async def set_outcomes(self, rows: Sequence[Row]) -> None:
        """Update deliveries by ``id``: each row's other keys are the columns to set; one
        executemany per set of columns."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            values = {("b_id" if k == "id" else k): v for k, v in row.items()}
            shapes.setdefault(tuple(sorted(values)), []).append(values)
        table = _table(Delivery)
        stmt = table.update().where(table.c.id == bindparam("b_id"))
        for group in shapes.values():
            await self.session.execute(stmt, group)

    async def delete_signals_before(
        self, cutoff: dt.datetime, *, types: Sequence[str], limit: int
    ) -> int:
        """Delete up to ``limit`` deliveries of no notification (a FHIR subscription's
        handshakes and heartbeats, ``types``) created before ``cutoff``, with their attempts."""
        ids = list(
            (
                await self.session.execute(
                    select(Delivery.id)
                    .where(Delivery.fhir_type.in_(list(types)), Delivery.created_at < cutoff)
                    .limit(limit)
                )
            ).scalars()
        )
        if ids:
            await self.session.execute(
                delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids))
            )
            await self.session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        return len(ids)

    async def add_attempt_rows(self, rows: Sequence[Row]) -> None:
        """Append to the delivery log (column name -> value, every row the same columns)."""
        await _insert_rows(self.session, DeliveryAttempt, rows)

    async def of_notification(self, notification_id: str) -> list[Delivery]:
        stmt = (
            select(Delivery)
            .where(Delivery.notification_id == notification_id)
            .order_by(Delivery.channel, Delivery.target)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def attempts_of(self, delivery_ids: list[str]) -> list[DeliveryAttempt]:
        if not delivery_ids:
            return []
        stmt = (
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(DeliveryAttempt.seq)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def due_ids(self, *, now: dt.datetime, limit: int) -> list[str]:
        """Pending deliveries whose time has come and that nobody holds a lease on."""
        stmt = (
            select(Delivery.id)
            .where(
                Delivery.status == "pending",
                Delivery.next_attempt_at <= now,
                or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def claim(
        self, ids: list[str], *, token: str, lease_until: dt.datetime, now: dt.datetime
    ) -> list[dict[str, Any]]:
        """Lease ``ids`` to ``token`` (those still free) and return what was leased (rows)."""
        if not ids:
            return []
        await self.session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                Delivery.status == "pending",
                or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            )
            .values(lease_token=token, lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        stmt = select(_table(Delivery)).where(Delivery.lease_token == token)
        return [dict(r) for r in (await self.session.execute(stmt)).mappings()]

    async def page_by_status(
        self, *, status: str, channel: str | None, after_id: str | None, limit: int
    ) -> list[Delivery]:
        stmt = select(Delivery).where(Delivery.status == status).order_by(Delivery.id).limit(limit)
        if channel is not None:
            stmt = stmt.where(Delivery.channel == channel)
        if after_id is not None:
            stmt = stmt.where(Delivery.id > after_id)
        return list((await self.session.execute(stmt)).scalars())


class SubscriptionRepository(RepositoryBase[WebhookSubscription]):
    model = WebhookSubscription

    async def rows_by_ids(self, ids: list[str]) -> list[SqlRow[Any]]:
        """Subscriptions as plain rows (attributes named as the model's)."""
        if not ids:
            return []
        stmt = select(_SUBSCRIPTION).where(_SUBSCRIPTION.c.id.in_(ids))
        return list((await _core(self.session, stmt)).all())

    async def matching(self, *, unit_id: str | None) -> list[SqlRow[Any]]:
        """Enabled subscriptions of ``unit_id`` and the member-wide ones, as plain rows."""
        if unit_id is None:
            rows = (await _core(self.session, _MEMBER_WIDE)).all()
        else:
            rows = (await _core(self.session, _OF_UNIT, {"unit_id": unit_id})).all()
        return sorted(rows, key=lambda r: str(r.id))

    async def page(
        self, *, unit_id: str | None, all_units: bool, after_id: str | None, limit: int
    ) -> list[WebhookSubscription]:
        stmt = select(WebhookSubscription).order_by(WebhookSubscription.id).limit(limit)
        if not all_units:
            stmt = stmt.where(WebhookSubscription.unit_id == unit_id)
        if after_id is not None:
            stmt = stmt.where(WebhookSubscription.id > after_id)
        return list((await self.session.execute(stmt)).scalars())

    async def delete(self, subscription: WebhookSubscription) -> None:
        await self.session.delete(subscription)
        await self.session.flush()

    async def with_heartbeat(self, format_: str) -> list[WebhookSubscription]:
        """Enabled, active subscriptions of ``format_`` that asked for heartbeats."""
        stmt = select(WebhookSubscription).where(
            WebhookSubscription.format == format_,
            WebhookSubscription.enabled.is_(True),
            WebhookSubscription.fhir_status == "active",
            WebhookSubscription.heartbeat_period_s.is_not(None),
        )
        return list((await self.session.execute(stmt)).scalars())

    async def count_events(self, subscription_id: str, *, n: int, now: dt.datetime) -> int:
        """Adds ``n`` to the subscription's event count (one statement: concurrent fan-outs
        never share a number); the count after."""
        stmt = (
            update(_SUBSCRIPTION)
            .where(_SUBSCRIPTION.c.id == subscription_id)
            .values(events_since_start=_SUBSCRIPTION.c.events_since_start + n, last_sent_at=now)
            .returning(_SUBSCRIPTION.c.events_since_start)
        )
        return int((await _core(self.session, stmt)).scalar_one())

    async def set_fhir_status(self, ids: Sequence[str], status: str) -> None:
        """Sets the FHIR status of subscriptions (a handshake's outcome)."""
        if ids:
            await _core(
                self.session,
                update(_SUBSCRIPTION)
                .where(_SUBSCRIPTION.c.id.in_(list(ids)), _SUBSCRIPTION.c.fhir_status.is_not(None))
                .values(fhir_status=status),
            )


class UnitChannelRepository(RepositoryBase[UnitChannel]):
    model = UnitChannel

    async def by_ids(self, unit_ids: list[str]) -> dict[str, UnitChannel]:
        if not unit_ids:
            return {}
        stmt = select(UnitChannel).where(UnitChannel.unit_id.in_(unit_ids))
        return {u.unit_id: u for u in (await self.session.execute(stmt)).scalars()}

    async def unit_id_by_hsa_id(self, hsa_id: str) -> str | None:
        stmt = select(UnitChannel.unit_id).where(UnitChannel.hsa_id == hsa_id).limit(1)
        return await self.session.scalar(stmt)

    async def rows_by_ids(self, unit_ids: list[str]) -> dict[str, SqlRow[Any]]:
        """The units as plain rows (attributes named as the model's), by id."""
        if not unit_ids:
            return {}
        rows = await _core(self.session, _UNIT_CHANNELS, {"ids": unit_ids})
        return {str(u.unit_id): u for u in rows}

    async def ids_of_kind(self, kind: str) -> list[str]:
        stmt = (
            select(UnitChannel.unit_id)
            .where(
                UnitChannel.kind == kind,
                or_(UnitChannel.status.is_(None), UnitChannel.status != "inactive"),
            )
            .order_by(UnitChannel.unit_id)
        )
        return list((await self.session.execute(stmt)).scalars())


class TimerRepository(RepositoryBase[Timer]):
    model = Timer

    async def insert_new(self, rows: Sequence[Row]) -> None:
        """Insert the timers not scheduled yet (a timer's id derives from its subject,
        deadline, action and due time: a repeat is skipped)."""
        if rows:
            await _core(self.session, _insert_new(self.session, Timer), list(rows))

    async def cancel_pending(self, *, subject_id: str, deadline: str | None) -> int:
        """Cancel the pending timers of a subject (of one deadline, or all); returns how many."""
        cond: ColumnElement[bool] = and_(Timer.subject_id == subject_id, Timer.state == "pending")
        if deadline is not None:
            cond = and_(cond, Timer.deadline == deadline)
        result = await self.session.execute(
            update(Timer)
            .where(cond)
            .values(state="cancelled")
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def due(self, *, now: dt.datetime, limit: int) -> list[Timer]:
        stmt = (
            select(Timer)
            .where(Timer.state == "pending", Timer.fire_at <= now)
            .order_by(Timer.fire_at)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def mark_fired(self, timer_id: str, *, now: dt.datetime) -> bool:
        """Fire ``timer_id`` if still pending (False when another worker or a cancel won)."""
        result = await self.session.execute(
            update(Timer)
            .where(Timer.id == timer_id, Timer.state == "pending")
            .values(state="fired", fired_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def delete_finished_before(self, cutoff: dt.datetime, *, limit: int) -> int:
        """Delete the oldest ``limit`` fired and cancelled timers created before ``cutoff``
        (and any created at the same instant as the last of them)."""
        result = await self.session.execute(
            delete(Timer)
            .where(oldest_before(Timer.created_at, cutoff, Timer.state != "pending", limit=limit))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def of_subject(self, subject_id: str) -> list[Timer]:
        stmt = select(Timer).where(Timer.subject_id == subject_id).order_by(Timer.fire_at)
        return list((await self.session.execute(stmt)).scalars())

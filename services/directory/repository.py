"""All SQL of the directory service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import MemberRecord, ReplicaUnit, Unit
from shared.data.db import RepositoryBase

_IN_LIST = 500  # ids per IN list


async def _column_by_id(
    session: AsyncSession, key: Any, value: Any, ids: list[str]
) -> dict[str, Any]:
    """``value`` of each row whose ``key`` is one of ``ids`` (the rows that exist)."""
    out: dict[str, Any] = {}
    for i in range(0, len(ids), _IN_LIST):  # bound the IN list
        stmt = select(key, value).where(key.in_(ids[i : i + _IN_LIST]))
        out.update((k, v) for k, v in await session.execute(stmt))
    return out


class UnitRepository(RepositoryBase[Unit]):
    model = Unit

    async def get_owned(self, unit_id: str, owner_orgnr: str) -> Unit | None:
        """The unit if this member owns it."""
        unit = await self.get(unit_id)
        return unit if unit is not None and unit.owner_orgnr == owner_orgnr else None

    async def all_owned(self, owner_orgnr: str) -> list[Unit]:
        result = await self.session.execute(
            select(Unit).where(Unit.owner_orgnr == owner_orgnr).order_by(Unit.id)
        )
        return list(result.scalars())

    async def owners(self, unit_ids: list[str]) -> dict[str, str]:
        """The owner of each of ``unit_ids`` that is one of this member's own units."""
        owners = await _column_by_id(self.session, Unit.id, Unit.owner_orgnr, unit_ids)
        return {u: str(o) for u, o in owners.items()}

    async def mark_review_due_sent(self, unit_id: str, due: dt.date) -> None:
        await self.session.execute(
            update(Unit).where(Unit.id == unit_id).values(review_due_sent_for=due)
        )

    async def page_owned(
        self, owner_orgnr: str, *, after: str | None, limit: int, hsa_id: str | None = None
    ) -> list[Unit]:
        stmt = select(Unit).where(Unit.owner_orgnr == owner_orgnr).order_by(Unit.id).limit(limit)
        if after:
            stmt = stmt.where(Unit.id > after)
        if hsa_id:
            stmt = stmt.where(Unit.hsa_id == hsa_id)
        return list((await self.session.execute(stmt)).scalars())

    async def by_hsa_id(self, hsa_id: str) -> Unit | None:
        """The unit of this directory with ``hsa_id`` (unique), if any."""
        return await self.session.scalar(select(Unit).where(Unit.hsa_id == hsa_id))


class ReplicaRepository(RepositoryBase[ReplicaUnit]):
    model = ReplicaUnit

    async def page(
        self,
        *,
        member: str | None,
        kommunkod: str | None,
        after: str | None,
        limit: int,
        hsa_id: str | None = None,
    ) -> list[ReplicaUnit]:
        stmt = select(ReplicaUnit).order_by(ReplicaUnit.unit_id)
        if member:
            stmt = stmt.where(ReplicaUnit.owner_orgnr == member)
        if hsa_id:
            stmt = stmt.where(ReplicaUnit.hsa_id == hsa_id)
        if after:
            stmt = stmt.where(ReplicaUnit.unit_id > after)
        if kommunkod:
            # JSON containment differs per database; the list is short, filter in Python.
            rows = (await self.session.execute(stmt)).scalars()
            return [r for r in rows if kommunkod in r.kommunkoder][:limit]
        return list((await self.session.execute(stmt.limit(limit))).scalars())

    async def versions(self, unit_ids: list[str]) -> dict[str, int]:
        """The stored version of each of ``unit_ids`` that the replica holds."""
        versions = await _column_by_id(
            self.session, ReplicaUnit.unit_id, ReplicaUnit.version, unit_ids
        )
        return {u: int(v) for u, v in versions.items()}

    async def owners(self, unit_ids: list[str]) -> dict[str, str]:
        """The owner (organisationsnummer) of each of ``unit_ids`` the replica holds."""
        owners = await _column_by_id(
            self.session, ReplicaUnit.unit_id, ReplicaUnit.owner_orgnr, unit_ids
        )
        return {u: str(o) for u, o in owners.items()}

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(ReplicaUnit), rows)

    async def update_many(self, rows: list[dict[str, Any]]) -> None:
        """Updates by primary key (``unit_id`` in each row)."""
        if rows:
            await self.session.execute(update(ReplicaUnit), rows)

    async def max_change_seq(self) -> int:
        return int(await self.session.scalar(select(func.max(ReplicaUnit.change_seq))) or 0)

    async def changed_since(self, seq: int, *, limit: int | None = None) -> list[ReplicaUnit]:
        """The units changed after ``seq``, in the order of their changes."""
        stmt = (
            select(ReplicaUnit)
            .where(ReplicaUnit.change_seq > seq)
            .order_by(ReplicaUnit.change_seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())


class MemberRepository(RepositoryBase[MemberRecord]):
    model = MemberRecord

    async def all(self) -> list[MemberRecord]:
        return list(await self.session.scalars(select(MemberRecord).order_by(MemberRecord.name)))

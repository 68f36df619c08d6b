"""All SQL of the consent service.

A decision reads a person's consents, copies, refusals, blocks and lifts: each is one
query on an indexed ``person_key`` (plus one on ``block_lift.block_id``), so its cost does
not grow with the number of people.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, Select, Table, select

from services.consent.models import (
    AuditCopy,
    Block,
    BlockLift,
    ChangeLogEntry,
    Consent,
    ConsentCopy,
    LegalBasisUse,
    Refusal,
)
from shared.db import RepositoryBase

OwnedT = TypeVar("OwnedT", Consent, Refusal, Block)


class _OwnedRepository(RepositoryBase[OwnedT]):
    """Records this member made about people, found by id or by person key."""

    async def get_owned(self, id_: str, owner_orgnr: str) -> OwnedT | None:
        """The record if this member made it."""
        row = await self.get(id_)
        return row if row is not None and row.owner_orgnr == owner_orgnr else None

    async def for_person(self, person_key: str, owner_orgnr: str) -> list[OwnedT]:
        model: Any = self.model
        stmt = (
            select(model)
            .where(model.person_key == person_key, model.owner_orgnr == owner_orgnr)
            .order_by(model.created_at, model.id)
        )
        return list((await self.session.execute(stmt)).scalars())


class ConsentRepository(_OwnedRepository[Consent]):
    model = Consent

    async def due_to_expire(self, owner_orgnr: str, today: dt.date, limit: int) -> list[Consent]:
        """Active consents whose last valid day has passed (the expiry job's batch)."""
        stmt = (
            select(Consent)
            .where(
                Consent.valid_to < today,
                Consent.status == "active",
                Consent.owner_orgnr == owner_orgnr,
            )
            .order_by(Consent.valid_to, Consent.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())


class RefusalRepository(_OwnedRepository[Refusal]):
    model = Refusal


class BlockRepository(_OwnedRepository[Block]):
    model = Block

    async def lifts_for(self, block_ids: Sequence[str]) -> list[BlockLift]:
        if not block_ids:
            return []
        stmt = (
            select(BlockLift)
            .where(BlockLift.block_id.in_(block_ids))
            .order_by(BlockLift.starts_at, BlockLift.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def add_lift(self, lift: BlockLift) -> BlockLift:
        self.session.add(lift)
        await self.session.flush()
        return lift


class CopyRepository(RepositoryBase[ConsentCopy]):
    model = ConsentCopy

    async def for_person(self, person_key: str) -> list[ConsentCopy]:
        stmt = (
            select(ConsentCopy)
            .where(ConsentCopy.person_key == person_key)
            .order_by(ConsentCopy.recorded_at, ConsentCopy.consent_id)
        )
        return list((await self.session.execute(stmt)).scalars())


class LegalBasisUseRepository(RepositoryBase[LegalBasisUse]):
    model = LegalBasisUse

    async def for_person(self, person_key: str, owner_orgnr: str) -> list[LegalBasisUse]:
        stmt = (
            select(LegalBasisUse)
            .where(LegalBasisUse.person_key == person_key, LegalBasisUse.owner_orgnr == owner_orgnr)
            .order_by(LegalBasisUse.decided_at, LegalBasisUse.id)
        )
        return list((await self.session.execute(stmt)).scalars())


class ChangeLogRepository(RepositoryBase[ChangeLogEntry]):
    model = ChangeLogEntry

    async def for_person(self, person_key: str) -> list[ChangeLogEntry]:
        stmt = (
            select(ChangeLogEntry)
            .where(ChangeLogEntry.person_key == person_key)
            .order_by(ChangeLogEntry.occurred_at, ChangeLogEntry.id)
        )
        return list((await self.session.execute(stmt)).scalars())


def _period(
    stmt: Select[Any], column: Any, since: dt.datetime | None, until: dt.datetime | None
) -> Select[Any]:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt


class AuditCopyRepository(RepositoryBase[AuditCopy]):
    model = AuditCopy

    async def seen(self, source_event_id: str) -> bool:
        stmt = select(AuditCopy.id).where(AuditCopy.source_event_id == source_event_id)
        return (await self.session.execute(stmt)).first() is not None

    async def for_person(
        self, person_key: str, *, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[AuditCopy]:
        stmt = select(AuditCopy).where(AuditCopy.person_key == person_key)
        stmt = _period(stmt, AuditCopy.occurred_at, since, until)
        return list((await self.session.execute(stmt.order_by(AuditCopy.occurred_at))).scalars())


class AuditLogRepository:
    """This service's own audit log (the shared ``audit_record`` table), read per person;
    the other services' records come as copies (:class:`AuditCopyRepository`)."""

    def __init__(self, session: Any, table: Table) -> None:
        self.session = session
        self.table = table

    async def for_person(
        self,
        personnummer: str,
        *,
        copy_ids: Sequence[str],
        since: dt.datetime | None,
        until: dt.datetime | None,
    ) -> list[Row[Any]]:
        """Records naming the person, and reads of their copies (by copy id); two indexed
        lookups rather than one OR that would scan."""
        t = self.table
        by_person: Select[Any] = select(t).where(
            t.c.person_id == personnummer, t.c.service == "consent"
        )
        rows = list(
            (await self.session.execute(_period(by_person, t.c.occurred_at, since, until))).all()
        )
        if copy_ids:
            by_copy: Select[Any] = select(t).where(
                t.c.resource_id.in_(copy_ids), t.c.resource_type == "consent_copy"
            )
            stmt = _period(by_copy, t.c.occurred_at, since, until)
            rows += list((await self.session.execute(stmt)).all())
        return sorted({r.id: r for r in rows}.values(), key=lambda r: (r.occurred_at, r.id))

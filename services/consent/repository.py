"""All SQL of the consent service.

A decision reads a person's consents, copies, refusals, active blocks and their lifts in
one statement (:class:`DecisionTermsRepository`, a UNION ALL of indexed lookups on
``person_key``, for several people at once), so its cost does not grow with the number of
people.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Integer,
    Row,
    Select,
    String,
    Table,
    bindparam,
    cast,
    delete,
    insert,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import DeclarativeBase

from services.consent.models import (
    AuditCopy,
    Block,
    BlockLift,
    ChangeLogEntry,
    Consent,
    ConsentCopy,
    ConsentTombstone,
    KnownMember,
    KnownUnit,
    LegalBasisUse,
    Refusal,
)
from shared.data.db import RepositoryBase, UTCDateTime
from shared.messaging.ownership import newer

RowT = TypeVar("RowT", bound=DeclarativeBase)
OwnedT = TypeVar("OwnedT", Consent, Refusal, Block)


class _Repository(RepositoryBase[RowT]):
    """A repository whose domain changes rows it read: it writes them, or deletes one."""

    async def save(self, row: RowT) -> RowT:
        """Writes ``row`` (new or already in the session) now: its version moves on."""
        self.session.add(row)
        await self.session.flush()
        return row

    async def remove(self, row: RowT) -> None:
        await self.session.delete(row)
        await self.session.flush()


class _OwnedRepository(_Repository[OwnedT]):
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


class CopyRepository(_Repository[ConsentCopy]):
    model = ConsentCopy

    async def for_person(self, person_key: str) -> list[ConsentCopy]:
        stmt = (
            select(ConsentCopy)
            .where(ConsentCopy.person_key == person_key)
            .order_by(ConsentCopy.recorded_at, ConsentCopy.consent_id)
        )
        return list((await self.session.execute(stmt)).scalars())


class TombstoneRepository(_Repository[ConsentTombstone]):
    model = ConsentTombstone

    async def prune(self, received_before: dt.datetime) -> int:
        """Deletes tombstones whose copy never came (received before the cut-off)."""
        result = await self.session.execute(
            delete(ConsentTombstone).where(ConsentTombstone.received_at < received_before)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class LegalBasisUseRepository(RepositoryBase[LegalBasisUse]):
    model = LegalBasisUse

    @staticmethod
    async def insert_many(connection: Any, uses: Sequence[dict[str, Any]]) -> None:
        """Writes uses given as column values (on a session or a Core connection)."""
        if uses:
            await connection.execute(insert(LegalBasisUse), list(uses))

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

    async def seen_among(self, source_event_ids: Sequence[str]) -> set[str]:
        """Which of these source events are kept already."""
        if not source_event_ids:
            return set()
        stmt = select(AuditCopy.source_event_id).where(
            AuditCopy.source_event_id.in_(source_event_ids)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def add_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Appends audit copies (one statement for all)."""
        if rows:
            await self.session.execute(insert(AuditCopy), list(rows))

    async def for_person(
        self, person_key: str, *, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[AuditCopy]:
        stmt = select(AuditCopy).where(AuditCopy.person_key == person_key)
        stmt = _period(stmt, AuditCopy.occurred_at, since, until)
        return list((await self.session.execute(stmt.order_by(AuditCopy.occurred_at))).scalars())


KnownT = TypeVar("KnownT", KnownUnit, KnownMember)


class _KnownRepository(RepositoryBase[KnownT]):
    async def keep(self, held: KnownT | None, row: KnownT) -> bool:
        """Keeps ``row`` in place of ``held`` (the row with its key, None if there is none)
        unless ``held`` has its version or a later one; True if kept."""
        if held is not None and not newer(held.version, row.version):
            return False
        await self.session.merge(row)
        await self.session.flush()
        return True


class KnownUnitRepository(_KnownRepository[KnownUnit]):
    model = KnownUnit

    async def own_unit_id_by_hsa_id(self, owner_orgnr: str, hsa_id: str) -> str | None:
        """The id of ``owner_orgnr``'s unit with ``hsa_id``, if one is known."""
        stmt = select(KnownUnit.unit_id).where(
            KnownUnit.owner_orgnr == owner_orgnr, KnownUnit.hsa_id == hsa_id
        )
        found: str | None = await self.session.scalar(stmt.limit(1))
        return found


class KnownMemberRepository(_KnownRepository[KnownMember]):
    model = KnownMember


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


# The kinds of row of a decision's terms, in the order a decision lists them.
TERMS_CONSENT, TERMS_COPY, TERMS_REFUSAL, TERMS_BLOCK = 0, 1, 2, 3


def _none(type_: Any) -> Any:
    """A typed NULL (PostgreSQL must know a union's column types from every branch)."""
    return cast(null(), type_)


def _kind(kind: int) -> Any:
    return literal_column(str(kind), Integer).label("kind")


class DecisionTermsRepository:
    """What decisions read about several people, in one statement: each person's consents
    recorded by this member and copies held of other members' consents, this member's
    refusals, and its active blocks with their lifts."""

    def __init__(self, session: Any) -> None:
        self.session = session

    @staticmethod
    @functools.cache
    def statement() -> Any:
        """One row per consent, copy, refusal and (active block, lift or none), ordered by
        person, kind and as each kind is listed (oldest first); parameters ``person_keys``
        (a list) and ``owner_orgnr``. Built once."""
        person_keys: Any = bindparam("person_keys", expanding=True)
        owner_orgnr: Any = bindparam("owner_orgnr", type_=String)
        consents = select(
            Consent.person_key,
            _kind(TERMS_CONSENT),
            Consent.id,
            Consent.status,
            Consent.parties,
            Consent.purposes,
            Consent.withdrawn_purposes,
            Consent.categories,
            Consent.valid_from,
            Consent.valid_to,
            Consent.protected_identity,
            _none(String).label("blocked_orgnr"),
            _none(String).label("blocked_unit_id"),
            _none(UTCDateTime()).label("lift_starts_at"),
            _none(UTCDateTime()).label("lift_ends_at"),
            Consent.created_at.label("listed_at"),
            _none(String).label("lift_id"),
        ).where(Consent.person_key.in_(person_keys), Consent.owner_orgnr == owner_orgnr)
        copies = select(
            ConsentCopy.person_key,
            _kind(TERMS_COPY),
            ConsentCopy.consent_id,
            ConsentCopy.status,
            ConsentCopy.parties,
            ConsentCopy.purposes,
            ConsentCopy.withdrawn_purposes,
            ConsentCopy.categories,
            ConsentCopy.valid_from,
            ConsentCopy.valid_to,
            ConsentCopy.protected_identity,
            _none(String),
            _none(String),
            _none(UTCDateTime()),
            _none(UTCDateTime()),
            ConsentCopy.recorded_at,
            _none(String),
        ).where(ConsentCopy.person_key.in_(person_keys))
        refusals = select(
            Refusal.person_key,
            _kind(TERMS_REFUSAL),
            Refusal.id,
            Refusal.status,
            Refusal.parties,
            Refusal.purposes,
            _none(JSON),
            _none(JSON),
            _none(Date),
            _none(Date),
            _none(Boolean),
            _none(String),
            _none(String),
            _none(UTCDateTime()),
            _none(UTCDateTime()),
            Refusal.created_at,
            _none(String),
        ).where(Refusal.person_key.in_(person_keys), Refusal.owner_orgnr == owner_orgnr)
        blocks = (
            select(
                Block.person_key,
                _kind(TERMS_BLOCK),
                Block.id,
                Block.status,
                _none(JSON),
                _none(JSON),
                _none(JSON),
                _none(JSON),
                _none(Date),
                _none(Date),
                _none(Boolean),
                Block.blocked_orgnr,
                Block.blocked_unit_id,
                BlockLift.starts_at,
                BlockLift.ends_at,
                Block.created_at,
                BlockLift.id,
            )
            .select_from(Block)
            .outerjoin(BlockLift, BlockLift.block_id == Block.id)
            .where(
                Block.person_key.in_(person_keys),
                Block.owner_orgnr == owner_orgnr,
                Block.status == literal_column("'active'"),
            )
        )
        return union_all(consents, copies, refusals, blocks).order_by(
            "person_key", "kind", "listed_at", "id", "lift_starts_at", "lift_id"
        )

    async def for_people(
        self, person_keys: Sequence[str], owner_orgnr: str
    ) -> dict[str, list[Row[Any]]]:
        """The rows of :meth:`statement` by person key (a person with none is left out)."""
        rows: dict[str, list[Row[Any]]] = {}
        if not person_keys:
            return rows
        result = await self.session.execute(
            self.statement(), {"person_keys": list(person_keys), "owner_orgnr": owner_orgnr}
        )
        for row in result:
            rows.setdefault(row.person_key, []).append(row)
        return rows

"""Member records: this member describes itself (name, kind, county, kommuner served) and
keeps the records other members broadcast on ``vardkedja.directory``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import MemberRecord
from services.directory.repository import MemberRepository
from services.directory.schemas import MemberIn
from shared.data.db import utcnow
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import MEMBER_CHANGED_V1, MemberChangedV1
from shared.messaging.ownership import newer
from shared.web.errors import NotFound, PreconditionFailed

MemberNotFound = NotFound.kind(
    "member-not-found", "No record of this member has reached the directory"
)
MemberVersionMismatch = PreconditionFailed.kind(
    "member-version-mismatch",
    "The member record has changed since you read it (If-Match does not match)",
)


def member_key(orgnr: str) -> str:
    """The record's key on ``vardkedja.directory`` (apart from the units' ids)."""
    return f"member:{orgnr}"


async def set_own_member(
    work: Work, data: MemberIn, *, expected_version: int | None = None
) -> MemberRecord:
    """Sets this member's own record and announces it to the federation (no event when
    nothing changed)."""
    orgnr = work.member
    repo = MemberRepository(work.session)
    record = await repo.get(orgnr)
    if expected_version is not None and (record is None or record.version != expected_version):
        raise MemberVersionMismatch(f"the record is at version {record.version if record else 0}")
    values = {
        "name": data.name,
        "kind": str(data.kind),
        "county_code": data.county_code,
        "kommunkoder": list(data.kommunkoder),
    }
    if record is not None and all(getattr(record, k) == v for k, v in values.items()):
        return record
    if record is None:
        record = MemberRecord(orgnr=orgnr, version=0)
        work.session.add(record)
    for name, value in values.items():
        setattr(record, name, value)
    record.version += 1
    record.changed_at = record.received_at = work.now
    await work.session.flush()
    await work.publish(
        topics.DIRECTORY,
        MEMBER_CHANGED_V1,
        MemberChangedV1(
            orgnr=orgnr, version=record.version, changed_at=record.changed_at, **values
        ),
        subject=orgnr,
        key=member_key(orgnr),
        aggversion=record.version,
    )
    return record


async def apply_member_changed(*, session: AsyncSession, payload: MemberChangedV1) -> bool:
    """Keeps another member's record (or a rebuilt own one) unless it is stale."""
    repo = MemberRepository(session)
    record = await repo.get(payload.orgnr)
    if not newer(record.version if record else None, payload.version):
        return False
    if record is None:
        record = MemberRecord(orgnr=payload.orgnr)
        session.add(record)
    for name in ("name", "kind", "county_code", "version", "changed_at"):
        setattr(record, name, getattr(payload, name))
    record.kommunkoder = list(payload.kommunkoder)
    record.received_at = utcnow()
    await session.flush()
    return True


async def member_names(*, session: AsyncSession) -> dict[str, str]:
    """Every known member's name by organisationsnummer."""
    return {m.orgnr: m.name for m in await MemberRepository(session).all()}

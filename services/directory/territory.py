"""Territory: which kommuner a member serves, and the rules that hold its units to them.

A member's record (``PUT /v1/member``, ``MemberChangedV1``) says what it is: a kommun
serves its own kommunkod (exactly one), a region the kommuner of its county (län) that it
names, all of them when it names none. A unit may cover only kommuner its member serves:
the owner's API refuses one that covers others (422, ``outside_territory``), every
replica refuses such a unit event (``Reject("outside_territory")``), and routing never
sends a referral to a unit for a kommun its member does not serve (ADR 0013).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import MemberRecord
from services.directory.repository import MemberRepository
from shared.config import MemberKind
from shared.identity.identifiers.kommun import all_kommuner
from shared.web.errors import InvalidInput

__all__ = [
    "OUTSIDE_TERRITORY",
    "check_own_units",
    "members_serving",
    "outside",
    "outside_message",
    "own_territory",
    "record_problem",
    "served",
    "served_kommuner",
]

OUTSIDE_TERRITORY = "outside_territory"


@lru_cache(maxsize=32)
def _county(county_code: str) -> frozenset[str]:
    return frozenset(k.code for k in all_kommuner() if k.county_code == county_code)


def record_problem(*, kind: str, county_code: str, kommunkoder: Iterable[str]) -> str | None:
    """Why a member record cannot say what it serves (a message without personal data),
    or None when it can."""
    named = set(kommunkoder)
    county = _county(county_code)
    if not county:
        return "the record names no Swedish county"
    if named - county:
        return "the record names kommuner outside its county"
    if kind == MemberKind.KOMMUN and len(named) != 1:
        return "a kommun serves exactly one kommunkod, its own"
    if kind not in (MemberKind.KOMMUN, MemberKind.REGION):
        return "the record's kind is neither kommun nor region"
    return None


def served_kommuner(*, kind: str, county_code: str, kommunkoder: Iterable[str]) -> frozenset[str]:
    """The kommuner a member with this record serves (none for a record that breaks the
    rules of :func:`record_problem`)."""
    named = frozenset(kommunkoder)
    if record_problem(kind=kind, county_code=county_code, kommunkoder=named) is not None:
        return frozenset()
    if kind == MemberKind.REGION and not named:
        return _county(county_code)
    return named


def served(record: MemberRecord) -> frozenset[str]:
    """The kommuner the member of ``record`` serves."""
    return served_kommuner(
        kind=record.kind, county_code=record.county_code, kommunkoder=record.kommunkoder
    )


def outside(kommunkoder: Iterable[str], territory: frozenset[str]) -> list[str]:
    """The kommunkoder of ``kommunkoder`` that lie outside ``territory``, in order."""
    return sorted(set(kommunkoder) - territory)


async def own_territory(*, session: AsyncSession, orgnr: str) -> frozenset[str] | None:
    """The kommuner ``orgnr`` serves by its record; None while it has no record yet."""
    record = await MemberRepository(session).get(orgnr)
    return None if record is None else served(record)


def outside_message(kommunkoder: list[str]) -> str:
    """The problem's message: the kommunkoder (organisational codes, no personal data)."""
    return f"your member's record (PUT /v1/member) does not serve kommun {', '.join(kommunkoder)}"


async def check_own_units(
    *, session: AsyncSession, owner_orgnr: str, kommunkoder: Iterable[str]
) -> None:
    """Refuses (422 on ``kommunkoder``, rule ``outside_territory``) a unit of ``owner_orgnr``
    that covers a kommun its record does not serve. Until the member has a record nothing
    is refused here: routing sends nothing to its units before the record says it serves
    their kommuner."""
    territory = await own_territory(session=session, orgnr=owner_orgnr)
    if territory is None:
        return
    beyond = outside(kommunkoder, territory)
    if beyond:
        raise InvalidInput.field("kommunkoder", OUTSIDE_TERRITORY, outside_message(beyond))


async def members_serving(*, session: AsyncSession, kommunkod: str) -> list[str]:
    """The members whose record says they serve ``kommunkod`` (by the rules above)."""
    return [m.orgnr for m in await MemberRepository(session).all() if kommunkod in served(m)]

"""The names of units and members (huvudmän) the person's audit extract shows, kept from
``vardkedja.directory`` (ADR 0011, second amendment).

The consent worker reads the directory topic every member's directory publishes to and
keeps, for each unit of any member, only its name and owner, and for each member its name.
The extract then names the unit an access came from, and its huvudman, instead of an id;
a unit the topic has not (yet) named is shown by its id. Organisational data only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.consent.models import KnownMember, KnownUnit
from services.consent.repository import KnownMemberRepository, KnownUnitRepository
from shared.data.work import Work
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import MemberChangedV1, UnitChangedV1
from shared.messaging.ownership import require_owner, require_sender


async def apply_unit_changed(work: Work, event: CloudEvent, payload: UnitChangedV1) -> bool:
    """Keeps a unit's name unless the event is stale; a member publishes only its own units
    (``sender_not_owner``), and a unit id stays with the member that published it first
    (``not_owner``). True if kept."""
    require_sender(event, payload.owner_orgnr, "a member may only publish its own units")
    repo = KnownUnitRepository(work.session)
    unit = await repo.get(payload.unit_id)
    require_owner(
        None if unit is None else unit.owner_orgnr,
        payload.owner_orgnr,
        "the unit id belongs to another member",
    )
    return await repo.keep(
        unit,
        KnownUnit(
            unit_id=payload.unit_id,
            owner_orgnr=payload.owner_orgnr,
            name=payload.name,
            version=payload.version,
            hsa_id=payload.hsa_id,
        ),
    )


async def unit_by_hsa_id(session: AsyncSession, member: str, hsa_id: str) -> str | None:
    """The id of ``member``'s unit with ``hsa_id`` as the directory announced it (a token's
    unit claim, ADR 0028); another member's unit with it does not count."""
    return await KnownUnitRepository(session).own_unit_id_by_hsa_id(member, hsa_id)


async def apply_member_changed(work: Work, event: CloudEvent, payload: MemberChangedV1) -> bool:
    """Keeps a member's name unless the event is stale; a member describes only itself
    (``sender_not_owner``). True if kept."""
    require_sender(event, payload.orgnr, "a member may only describe itself")
    repo = KnownMemberRepository(work.session)
    row = KnownMember(orgnr=payload.orgnr, name=payload.name, version=payload.version)
    return await repo.keep(await repo.get(payload.orgnr), row)


@dataclass(frozen=True)
class Names:
    """The names of the units and members an extract mentions (those known)."""

    units: dict[str, str]
    members: dict[str, str]

    def unit(self, unit_id: str | None) -> str | None:
        """The unit's name, or None (no unit, or one the directory has not named)."""
        return None if unit_id is None else self.units.get(unit_id)

    def member(self, orgnr: str) -> str | None:
        """The member's name, or None when it has not described itself."""
        return self.members.get(orgnr)


async def names_of(work: Work, unit_ids: Iterable[str], orgnrs: Iterable[str]) -> Names:
    """The known names of these units and members (one read each); this member's own name
    from its settings when it has not described itself on the topic yet."""
    units = await KnownUnitRepository(work.session).load_many(set(unit_ids))
    members = await KnownMemberRepository(work.session).load_many(set(orgnrs))
    own = work.settings.member
    return Names(
        units={u.unit_id: u.name for u in units},
        members={own.orgnr: own.name} | {m.orgnr: m.name for m in members},
    )

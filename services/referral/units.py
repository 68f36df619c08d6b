"""The directory's units as this referral service knows them: a light replica of every
member's units, fed by ``vardkedja.directory``, that says which units exist, whether they
are active, which kinds of referral they receive and how they are reached — and every
member's name.

Each member publishes only its own units; the first member to publish a unit id owns it
(ADR 0020), and the replica moves only forward by version.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.details import UnitRef
from services.referral.models import KnownMember, KnownUnit
from services.referral.repository import KnownMemberRepository, KnownUnitRepository
from shared.domain.kinds import KINDS, ReferralKind
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import MemberChangedV1, UnitChangedV1
from shared.messaging.ownership import newer, require_owner, require_sender


async def check_unit_owner(
    session: AsyncSession, event: CloudEvent, payload: UnitChangedV1
) -> None:
    """Refuses a unit event of a member other than its sender (``sender_not_owner``), and
    one about a unit id another member published first (``not_owner``): another member's
    event about it (a forged version included) changes nothing, so the owner's next update
    still applies."""
    require_sender(event, payload.owner_orgnr, "a member may only publish its own units")
    known = await KnownUnitRepository(session).get(payload.unit_id)
    require_owner(
        None if known is None else known.owner_orgnr,
        payload.owner_orgnr,
        "the unit id belongs to another member",
    )


async def apply_unit_changed(*, session: AsyncSession, payload: UnitChangedV1) -> bool:
    """Keeps the light copy of a unit from ``vardkedja.directory`` unless it is stale."""
    unit = await KnownUnitRepository(session).get(payload.unit_id)
    if unit is not None and not newer(unit.version, payload.version):
        return False
    if unit is None:
        unit = KnownUnit(unit_id=payload.unit_id)
        session.add(unit)
    unit.owner_orgnr = payload.owner_orgnr
    unit.name = payload.name
    unit.kind = payload.kind
    unit.status = payload.status
    unit.referral_kinds = list(payload.referral_kinds)
    unit.interventions = list(payload.interventions)
    unit.contact_paths = [dict(p) for p in payload.contact_paths]
    unit.opening_hours = payload.opening_hours
    unit.hsa_id = payload.hsa_id
    unit.version = payload.version
    await session.flush()
    return True


async def unit_by_hsa_id(session: AsyncSession, member: str, hsa_id: str) -> str | None:
    """The id of ``member``'s unit with ``hsa_id`` as the directory announced it (a token's
    unit claim); another member's unit with it does not count."""
    return await KnownUnitRepository(session).own_unit_id_by_hsa_id(member, hsa_id)


async def apply_member_changed(
    session: AsyncSession, event: CloudEvent, payload: MemberChangedV1
) -> bool:
    """Keeps a member's name from ``vardkedja.directory`` unless it is stale; a member
    describes only itself (``sender_not_owner``)."""
    require_sender(event, payload.orgnr, "a member may only describe itself")
    repo = KnownMemberRepository(session)
    member = await repo.get(payload.orgnr)
    if member is not None and not newer(member.version, payload.version):
        return False
    if member is None:
        member = KnownMember(orgnr=payload.orgnr)
        session.add(member)
    member.name, member.kind, member.version = payload.name, payload.kind, payload.version
    await session.flush()
    return True


def unit_problem(
    unit: KnownUnit | None, ref: UnitRef, kind: ReferralKind, *, invitation: bool = False
) -> str | None:
    """Why ``ref`` cannot receive ``kind`` (a rule name), or None. Any active unit may be
    invited to a meeting."""
    if unit is None or unit.owner_orgnr != ref.orgnr:
        return "unknown_unit"
    if unit.status != "active":
        return "inactive_unit"
    if not invitation and kind.value not in unit.referral_kinds:
        return "kind_not_received"
    only = KINDS[kind].receiver_unit_kinds
    if not invitation and only and unit.kind not in only:
        return "unit_kind_not_allowed"  # e.g. an orosanmälan to an adult function
    return None

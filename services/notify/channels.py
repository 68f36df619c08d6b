"""Unit channels: the kind and functional mailbox of this member's own units, kept from its
directory (``unit.changed``, ADR 0012), and the admin's override of the mailbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import UnitChannel
from services.notify.repository import UnitChannelRepository
from shared.data.work import Work
from shared.messaging.events.payloads import UnitChangedV1
from shared.messaging.ownership import newer
from shared.web.errors import NotFound

UnitNotOwn = NotFound.kind("unit-not-own", "No unit of your member with this id")


def _functional_email(contact_paths: list[dict[str, Any]]) -> str | None:
    for path in contact_paths:
        if path.get("channel") == "functional_email" and path.get("email"):
            return str(path["email"])
    return None


def _unseen(unit_id: str) -> UnitChannel:
    """A unit notify has not heard of from the directory: empty defaults."""
    return UnitChannel(unit_id=unit_id, directory_version=0, email_enabled=True)


async def apply_units_changed(work: Work, changes: Sequence[UnitChangedV1]) -> int:
    """Keeps the kind and functional mailbox of this member's own units from the directory
    (each unit's copy moves only forward); returns how many changes were applied."""
    own = [c for c in changes if c.owner_orgnr == work.member]
    if not own:
        return 0
    known = await UnitChannelRepository(work.session).by_ids(sorted({c.unit_id for c in own}))
    applied = 0
    for change in own:
        unit = known.get(change.unit_id)
        if unit is None:
            unit = known[change.unit_id] = _unseen(change.unit_id)
            work.session.add(unit)
        elif not newer(unit.directory_version, change.version):
            continue
        unit.name = change.name
        unit.kind = change.kind
        unit.status = change.status
        unit.directory_email = _functional_email(change.contact_paths)
        unit.hsa_id = change.hsa_id
        unit.directory_version = change.version
        unit.updated_at = work.now
        applied += 1
    await work.session.flush()
    return applied


async def unit_by_hsa_id(session: AsyncSession, member: str, hsa_id: str) -> str | None:
    """The id of the member's unit with ``hsa_id`` (a token's unit claim), if the member's
    directory announced one: notify keeps only its own member's units (``member`` is the
    instance's own)."""
    return await UnitChannelRepository(session).unit_id_by_hsa_id(hsa_id)


async def get_unit_channel(work: Work, unit_id: str) -> UnitChannel:
    """The unit's channel settings (empty defaults for a unit notify has not seen yet)."""
    unit = await UnitChannelRepository(work.session).get(unit_id)
    return _unseen(unit_id) if unit is None else unit


async def set_unit_channel(
    work: Work, unit_id: str, *, email: str | None, email_enabled: bool
) -> UnitChannel:
    """Sets the unit's functional mailbox override and whether it gets e-mail.

    Only for a unit of this member: one the member's directory announced (``unit.changed``
    of an own unit, :func:`apply_units_changed`). Another member's unit, or an id nobody
    announced, is refused (404 ``unit-not-own``)."""
    unit = await UnitChannelRepository(work.session).get(unit_id)
    if unit is None or unit.directory_version < 1:
        raise UnitNotOwn(
            "notify knows no unit of your member with this id: it learns the member's own "
            "units from its directory (a new unit, once its announcement has arrived)"
        )
    unit.email = email
    unit.email_enabled = email_enabled
    unit.updated_at = work.now
    await work.session.flush()
    return unit

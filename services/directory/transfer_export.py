"""Exporting the member's own units in the import formats (importing an export changes
nothing)."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.models import Unit
from services.directory.repository import UnitRepository
from services.directory.schemas import UnitCreate
from services.directory.transfer import ImportFormat
from services.directory.transfer_cells import contact_paths_cell, opening_hours_cell
from services.directory.transfer_read import CSV_COLUMNS
from shared.domain.swedish import swedish_sort_key
from shared.web.csvout import write_csv

__all__ = ["export_units"]


def _export_model(unit: Unit) -> UnitCreate:
    return UnitCreate.model_validate({f: getattr(unit, f) for f in UnitCreate.model_fields})


def _csv_row(unit: Unit) -> list[str]:
    data = _export_model(unit)
    return [
        data.name,
        str(data.kind),
        data.mission,
        ";".join(data.kommunkoder),
        ";".join(str(i) for i in data.interventions),
        ";".join(str(k) for k in data.referral_kinds),
        contact_paths_cell(data.contact_paths),
        opening_hours_cell(data.opening_hours),
        data.valid_from.isoformat() if data.valid_from else "",
        data.valid_to.isoformat() if data.valid_to else "",
        "",
        data.hsa_id or "",
    ]


def _unit_order(unit: Unit) -> tuple[Any, ...]:
    return (swedish_sort_key(unit.name), unit.kind, unit.id)


async def export_units(session: AsyncSession, owner_orgnr: str, fmt: ImportFormat) -> str:
    """The member's own units as CSV (with a byte order mark) or YAML, ready to re-import."""
    units = sorted(await UnitRepository(session).all_owned(owner_orgnr), key=_unit_order)
    if fmt is ImportFormat.YAML:
        dumped = [_export_model(u).model_dump(mode="json", exclude_none=True) for u in units]
        return yaml.safe_dump(dumped, allow_unicode=True, sort_keys=False, width=100)
    # Formula-like cells get a leading ' (shared.web.csvout); the import takes it off again.
    return write_csv(CSV_COLUMNS, (_csv_row(u) for u in units), bom=True)

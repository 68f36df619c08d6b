r"""Bulk import and export of the member's own units, as CSV or YAML.

Import is all or nothing: every row is validated with the same rules as
``POST /v1/units`` (:class:`~services.directory.schemas.UnitCreate`) before anything is
stored, and one bad row refuses the whole file with a problem that lists every bad field
as ``line <n>: <field>``. Good files create or update units through
:func:`services.directory.service.create_unit` / :func:`~services.directory.service.update_unit`,
so every change is announced on the outbox, all in the request's one transaction.

**Which unit a row updates.** The unit table has no column for the caller's own key, so a
row is matched to an existing unit of the member by exact ``name`` and ``kind`` (same
characters, same case). A match is updated, no match creates a unit, and a row that would
change nothing leaves the unit alone (its version does not grow), which makes re-importing
a file, or importing an export, a no-op. Two rows of one file with the same name and kind
are refused; so is a row that matches two existing units. Renaming a unit therefore needs
``PUT /v1/units/{id}``: an import with the new name creates another unit. ``external_id``
is accepted (at most 100 characters, unique within the file) and echoed in the report so
the caller can map its keys to unit ids; it is not stored. An import never changes a
unit's status (close, reopen and deactivate are separate operations).

**CSV.** UTF-8 (a byte order mark is ignored), comma-separated (a semicolon-separated file,
as saved by a Swedish Excel, is recognised by its header), one unit per row. The header
names the columns, in any order, case-insensitively: ``name``, ``kind`` and
``kommunkoder`` are required; ``mission``, ``interventions``, ``referral_kinds``,
``contact_paths``, ``opening_hours``, ``valid_from``, ``valid_to``, ``external_id`` and
``hsa_id`` are optional. ``line <n>`` is the row as a spreadsheet numbers it: the header
is line 1. Cells are taken as written except that list, code and date cells ignore surrounding
whitespace. An empty optional cell means "none" (it clears the field on update); an
optional column left out of the header keeps the unit's current value on update.

* ``kommunkoder``, ``interventions``, ``referral_kinds``: codes separated by ``;``
  (``0780;0764``).
* ``valid_from``, ``valid_to``: ``YYYY-MM-DD``.
* ``contact_paths``: entries separated by ``;;``; each entry is
  ``reason|channel|value`` with an optional fourth field ``|note``::

      Ansökan om boendestöd|inbox|;;Rådgivning|phone|0470-41 00 00|vardagar 8-10

  ``channel`` is ``phone``, ``functional_email`` (or ``email``), ``secure_mail``,
  ``postal_address`` (or ``postal``) or ``inbox``. The value is the phone number (any
  notation the API accepts), the e-mail or secure-mail address, the postal address as
  ``street, postcode city`` (optionally ``c/o name, `` first: ``Box 1222, 351 12 Växjö``),
  or empty for ``inbox`` (``reason|inbox|`` or ``reason|inbox``). Reason, value and note
  are trimmed. Inside them ``\`` escapes the next character: write ``\|`` for ``|``,
  ``\;`` for ``;`` and ``\\`` for ``\``.
* ``opening_hours``: entries separated by ``;``, each one of

  - ``DAYS TIMES``: weekly hours, e.g. ``mon-fri 08:00-16:30`` or
    ``mon,wed-thu 08:00-12:00,13:00-16:30``. Days are ``mon tue wed thu fri sat sun``
    (or ``mån tis ons tor fre lör sön``), single or as a range; ``24:00`` closes at
    midnight.
  - ``always_open``: open every hour of every day (takes no weekly hours).
  - ``closed_on_public_holidays=false`` / ``closed_on_eves=false``: open on public
    holidays / midsommar-, jul- and nyårsafton by the weekly hours (both default to true).
  - ``YYYY-MM-DD closed`` or ``YYYY-MM-DD 10:00-14:00``, optionally followed by
    `` note=text``: a special day that overrides everything else.
  - ``note=text``: a note for the whole schedule. In notes ``\;`` stands for ``;``.

  An empty cell means no opening hours are given.
* Target groups, the parent unit and capacity have no CSV column: a row that updates a
  unit keeps the unit's values, a row that creates one leaves them empty. Use YAML to set
  them.

**YAML.** A list of units shaped as the body of ``POST /v1/units`` (each may also carry
``external_id``); ``line <n>`` is the item's position in the list, the first item being
line 1. Each item is the unit's whole description, as with ``PUT``. Anchors and aliases
are refused, and plain scalars follow YAML 1.2 (``16:30`` and ``0764`` stay text).

Export writes the member's own units in the same formats (the CSV with a byte order mark
for Excel); importing an export changes nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.directory import service, territory
from services.directory.models import Unit
from services.directory.repository import UnitRepository
from services.directory.schemas import UnitCreate
from services.directory.transfer_read import Item, at, read_csv, read_yaml
from shared.data.work import Work
from shared.web.errors import FieldProblem, InvalidInput

__all__ = [
    "MAX_EXTERNAL_ID",
    "ImportAction",
    "ImportFormat",
    "ImportInvalid",
    "ImportReport",
    "ImportedUnit",
    "import_units",
]

MAX_ERRORS: Final = 500
MAX_EXTERNAL_ID: Final = 100


class ImportFormat(enum.StrEnum):
    """The formats of import and export."""

    CSV = "csv"
    YAML = "yaml"


class ImportAction(enum.StrEnum):
    """What the import did (or, in a dry run, would do) with a row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


ImportInvalid = InvalidInput.kind("import-invalid", "The file has invalid rows; nothing was stored")


class ImportedUnit(BaseModel):
    """One row of the file and what became of it."""

    line: int = Field(description="CSV: the row (header = 1); YAML: the item (first = 1)")
    action: ImportAction
    unit_id: str | None = Field(description="the unit; null for a unit a dry run would create")
    name: str
    external_id: str | None = None


class ImportReport(BaseModel):
    """The outcome of an import (or, with ``dry_run``, what it would do)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "format": "csv",
                    "dry_run": False,
                    "rows": 2,
                    "created": 1,
                    "updated": 1,
                    "unchanged": 0,
                    "unit_ids": [
                        "0b9c3f7e-5d0a-4a8e-9a57-1b2c3d4e5f60",
                        "5f1e2d3c-4b5a-4968-8776-655443322110",
                    ],
                    "items": [
                        {
                            "line": 2,
                            "action": "created",
                            "unit_id": "0b9c3f7e-5d0a-4a8e-9a57-1b2c3d4e5f60",
                            "name": "Socialtjänstens mottagning vuxna",
                            "external_id": "VX-17",
                        },
                        {
                            "line": 3,
                            "action": "updated",
                            "unit_id": "5f1e2d3c-4b5a-4968-8776-655443322110",
                            "name": "Boendestödet",
                            "external_id": None,
                        },
                    ],
                }
            ]
        }
    )

    format: ImportFormat
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    unit_ids: list[str] = Field(description="every stored unit the file names, in file order")
    items: list[ImportedUnit]


# --- importing -------------------------------------------------------------------------------


@dataclass
class _Planned:
    item: Item
    data: UnitCreate
    target: Unit | None


def _validation_problems(line: int, exc: ValidationError) -> list[FieldProblem]:
    return [
        at(line, ".".join(str(p) for p in err["loc"]) or "item", err["type"], err["msg"])
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _description(unit: Unit) -> dict[str, Any] | None:
    """The unit's stored description in the normalised form an import produces."""
    try:
        stored = UnitCreate.model_validate({f: getattr(unit, f) for f in UnitCreate.model_fields})
    except ValidationError:
        return None  # stored under older rules: any import rewrites it
    return stored.model_dump(mode="json")


def _check_external_id(item: Item, seen: dict[str, int]) -> list[FieldProblem]:
    value = item.external_id
    if value is None:
        return []
    if not isinstance(value, str):
        return [at(item.line, "external_id", "string_type", "external_id is text")]
    if len(value) > MAX_EXTERNAL_ID:
        return [
            at(
                item.line,
                "external_id",
                "string_too_long",
                f"at most {MAX_EXTERNAL_ID} characters",
            )
        ]
    if value in seen:
        return [
            at(
                item.line,
                "external_id",
                "duplicate_in_file",
                f"line {seen[value]} has the same external_id",
            )
        ]
    seen[value] = item.line
    return []


def _plan(
    items: Iterable[Item], existing: Sequence[Unit]
) -> tuple[list[_Planned], list[FieldProblem]]:
    """Matches each row to an existing unit and validates it; every problem is collected."""
    by_key: dict[tuple[str, str], list[Unit]] = {}
    for unit in existing:
        by_key.setdefault((unit.name, unit.kind), []).append(unit)
    owned = {unit.id for unit in existing}
    planned: list[_Planned] = []
    problems: list[FieldProblem] = []
    seen_keys: dict[tuple[str, str], int] = {}
    seen_ids: dict[str, int] = {}
    seen_hsa: dict[str, int] = {}
    for item in items:
        problems += _check_external_id(item, seen_ids)
        name, kind = item.raw.get("name"), item.raw.get("kind")
        target: Unit | None = None
        if isinstance(name, str) and isinstance(kind, str):
            if (name, kind) in seen_keys:
                problems.append(
                    at(
                        item.line,
                        "name",
                        "duplicate_in_file",
                        f"line {seen_keys[(name, kind)]} has the same name and kind",
                    )
                )
                continue
            seen_keys[(name, kind)] = item.line
            matches = by_key.get((name, kind), [])
            if len(matches) > 1:
                problems.append(
                    at(
                        item.line,
                        "name",
                        "ambiguous_match",
                        "several of your units have this name and kind; update them one by one",
                    )
                )
                continue
            target = matches[0] if matches else None
        raw = dict(item.raw)
        if target is not None:
            for field in item.kept:
                raw[field] = getattr(target, field)
        try:
            data = UnitCreate.model_validate(raw)
        except ValidationError as exc:
            problems += _validation_problems(item.line, exc)
            continue
        if data.hsa_id is not None:
            if data.hsa_id in seen_hsa:
                problems.append(
                    at(
                        item.line,
                        "hsa_id",
                        "duplicate_in_file",
                        f"line {seen_hsa[data.hsa_id]} has the same hsa_id",
                    )
                )
                continue
            seen_hsa[data.hsa_id] = item.line
        if data.parent_unit_id is not None and data.parent_unit_id not in owned:
            problems.append(
                at(
                    item.line,
                    "parent_unit_id",
                    "unknown_parent",
                    "no unit of your member has this id",
                )
            )
            continue
        planned.append(_Planned(item=item, data=data, target=target))
    return planned, problems


async def _territory_problems(work: Work, planned: Sequence[_Planned]) -> list[FieldProblem]:
    """Rows covering a kommun the member's record does not serve (ADR 0013)."""
    served = await territory.own_territory(session=work.session, orgnr=service.owner(work))
    if served is None:  # no record yet: as for a single unit, nothing is refused
        return []
    problems = []
    for step in planned:
        beyond = territory.outside(step.data.kommunkoder, served)
        if beyond:
            message = territory.outside_message(beyond)
            problems.append(at(step.item.line, "kommunkoder", territory.OUTSIDE_TERRITORY, message))
    return problems


def _refuse(problems: list[FieldProblem], fmt: ImportFormat) -> InvalidInput:
    lines = (
        "line = the CSV row, the header being line 1"
        if fmt is ImportFormat.CSV
        else "line = the item's position in the YAML list, the first being line 1"
    )
    shown = problems[:MAX_ERRORS]
    more = f", the first {MAX_ERRORS} listed" if len(problems) > MAX_ERRORS else ""
    n = len(problems)
    return ImportInvalid(
        f"{n} problem{'s' if n != 1 else ''} in the file{more}; nothing was stored ({lines})",
        errors=shown,
    )


async def import_units(
    work: Work, text: str, fmt: ImportFormat, *, dry_run: bool = False
) -> ImportReport:
    """Creates or updates the caller's units from a file, all or nothing (module doc)."""
    items, problems = read_csv(text) if fmt is ImportFormat.CSV else read_yaml(text)
    existing = await UnitRepository(work.session).all_owned(service.owner(work))
    planned, plan_problems = _plan(items, existing)
    problems += plan_problems
    problems += await _territory_problems(work, planned)
    if problems:
        raise _refuse(sorted(problems, key=_problem_order), fmt)
    report: list[ImportedUnit] = []
    unit_id: str | None
    for step in planned:
        target, data, line = step.target, step.data, step.item.line
        if target is not None and _description(target) == data.model_dump(mode="json"):
            action, unit_id = ImportAction.UNCHANGED, target.id
        elif dry_run:
            action = ImportAction.UPDATED if target else ImportAction.CREATED
            unit_id = target.id if target else None
        else:
            try:
                if target is None:
                    unit = await service.create_unit(work, data)
                    action = ImportAction.CREATED
                else:
                    unit = await service.update_unit(work, target, data, target.version)
                    action = ImportAction.UPDATED
            except InvalidInput as exc:  # e.g. a parent chain that would loop
                found = [at(line, e.field, e.rule, e.message) for e in exc.errors or []]
                raise _refuse(found, fmt) from exc
            unit_id = unit.id
        report.append(
            ImportedUnit(
                line=line,
                action=action,
                unit_id=unit_id,
                name=data.name,
                external_id=step.item.external_id,
            )
        )
    return ImportReport(
        format=fmt,
        dry_run=dry_run,
        rows=len(report),
        created=sum(1 for r in report if r.action is ImportAction.CREATED),
        updated=sum(1 for r in report if r.action is ImportAction.UPDATED),
        unchanged=sum(1 for r in report if r.action is ImportAction.UNCHANGED),
        unit_ids=[r.unit_id for r in report if r.unit_id is not None],
        items=report,
    )


_LINE: Final = re.compile(r"line ([0-9]+): ")


def _problem_order(problem: FieldProblem) -> tuple[int, str]:
    match = _LINE.match(problem.field)
    return (int(match[1]) if match else 0, problem.field)

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
``contact_paths``, ``opening_hours``, ``valid_from``, ``valid_to`` and ``external_id`` are
optional. ``line <n>`` is the row as a spreadsheet numbers it: the header is line 1.
Cells are taken as written except that list, code and date cells ignore surrounding
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

import csv
import datetime as dt
import enum
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import service, territory
from services.directory.hours import Day, OpeningHours
from services.directory.models import Unit
from services.directory.overview import swedish_sort_key
from services.directory.repository import UnitRepository
from services.directory.schemas import ContactPath, UnitCreate
from shared.messaging.outbox import Outbox
from shared.web.csvout import unguard, write_csv
from shared.web.errors import FieldProblem, InvalidInput
from shared.web.nul import NUL_MESSAGE, NUL_RULE, nul_paths

__all__ = [
    "CSV_COLUMNS",
    "MAX_EXTERNAL_ID",
    "MAX_ROWS",
    "ImportAction",
    "ImportFormat",
    "ImportInvalid",
    "ImportReport",
    "ImportedUnit",
    "YamlLoader",
    "export_units",
    "import_units",
    "parse_contact_paths",
    "parse_opening_hours",
]

CSV_COLUMNS: Final = (
    "name",
    "kind",
    "mission",
    "kommunkoder",
    "interventions",
    "referral_kinds",
    "contact_paths",
    "opening_hours",
    "valid_from",
    "valid_to",
    "external_id",
)
_REQUIRED_COLUMNS: Final = ("name", "kind", "kommunkoder")
_LIST_COLUMNS: Final = ("kommunkoder", "interventions", "referral_kinds")
# Fields without a CSV column: an update from CSV keeps the unit's values.
_NOT_IN_CSV: Final = ("target_groups", "parent_unit_id", "capacity")
# Optional columns that are unit fields: left out of the header, an update keeps them.
_OPTIONAL_FIELDS: Final = (
    "mission",
    "interventions",
    "referral_kinds",
    "contact_paths",
    "opening_hours",
    "valid_from",
    "valid_to",
)
MAX_ROWS: Final = 10_000
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


class ImportInvalid(InvalidInput):
    slug = "import-invalid"
    title = "The file has invalid rows; nothing was stored"


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


# --- escaping in the compact cells -----------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on every ``sep`` not escaped by ``\\`` (escapes are kept)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
        elif text.startswith(sep, i):
            parts.append("".join(current))
            current = []
            i += len(sep)
        else:
            current.append(text[i])
            i += 1
    parts.append("".join(current))
    return parts


_ESCAPED: Final = re.compile(r"\\(.)", re.DOTALL)


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace(";", "\\;")


# --- contact paths ---------------------------------------------------------------------------

_CHANNEL_ALIASES: Final = {"email": "functional_email", "postal": "postal_address"}
_VALUE_FIELD: Final = {"phone": "phone", "functional_email": "email", "secure_mail": "secure_mail"}
_POSTCODE_CITY: Final = re.compile(r"((?:SE-?\s?)?[0-9]{3}\s?[0-9]{2})\s+(\S.*)", re.IGNORECASE)
_CARE_OF: Final = re.compile(r"c/o\s+", re.IGNORECASE)

# (field relative to the row, rule, message); messages never contain the cell's text.
_Problem = tuple[str, str, str]


def _postal(value: str) -> dict[str, str] | None:
    parts = [p.strip() for p in value.split(",")]
    match = _POSTCODE_CITY.fullmatch(parts[-1]) if len(parts) >= 2 else None
    if match is None:
        return None
    body = parts[:-1]
    out = {"postcode": match[1], "city": match[2]}
    care_of = _CARE_OF.match(body[0])
    if care_of:
        out["care_of"] = body[0][care_of.end() :].strip()
        body = body[1:]
    out["street"] = ", ".join(body)
    return out


def parse_contact_paths(cell: str) -> tuple[list[dict[str, Any]], list[_Problem]]:
    """The ``contact_paths`` cell as ``ContactPath``-shaped dicts (see the module docstring)."""
    paths: list[dict[str, Any]] = []
    problems: list[_Problem] = []
    entries = [e for e in _split(cell, ";;") if e.strip()]
    for index, entry in enumerate(entries):
        where = f"contact_paths.{index}"
        fields = _split(entry, "|")
        if not 2 <= len(fields) <= 4:
            problems.append(
                (where, "contact_path_syntax", "write a contact path as reason|channel|value")
            )
            continue
        reason, channel, value, note = (_unescape(f).strip() for f in [*fields, "", ""][:4])
        channel = _CHANNEL_ALIASES.get(channel.lower(), channel.lower())
        path: dict[str, Any] = {"reason": reason, "channel": channel}
        if note:
            path["note"] = note
        if channel in _VALUE_FIELD and value:
            path[_VALUE_FIELD[channel]] = value
        elif channel == "postal_address" and value:
            postal = _postal(value)
            if postal is None:
                problems.append(
                    (
                        where + ".postal",
                        "postal_syntax",
                        "write a postal address as 'street, postcode city' "
                        "(optionally 'c/o name, ' first)",
                    )
                )
                continue
            path["postal"] = postal
        elif channel == "inbox" and value:
            problems.append((where, "channel_value", "the inbox channel takes no value"))
            continue
        paths.append(path)
    return paths, problems


def _postal_text(postal: dict[str, Any]) -> str:
    parts = [f"c/o {postal['care_of']}"] if postal.get("care_of") else []
    return ", ".join([*parts, postal["street"], f"{postal['postcode']} {postal['city']}"])


def _contact_paths_cell(paths: Sequence[ContactPath]) -> str:
    entries = []
    for path in paths:
        dumped = path.model_dump(mode="json")
        channel = dumped["channel"]
        if channel == "postal_address":
            value = _postal_text(dumped["postal"])
        elif channel == "inbox":
            value = ""
        else:
            value = dumped[_VALUE_FIELD[channel]]
        fields = [_escape(path.reason), channel, _escape(value)]
        if path.note:
            fields.append(_escape(path.note))
        entries.append("|".join(fields))
    return ";;".join(entries)


# --- opening hours ---------------------------------------------------------------------------

_DAY_NAMES: Final = {d.value: d for d in Day} | {
    "mån": Day.MON,
    "tis": Day.TUE,
    "ons": Day.WED,
    "tor": Day.THU,
    "fre": Day.FRI,
    "lör": Day.SAT,
    "sön": Day.SUN,
}
_DAY_ORDER: Final = tuple(Day)
_TIME_RANGE: Final = re.compile(r"([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FLAG: Final = re.compile(r"(closed_on_public_holidays|closed_on_eves)\s*=\s*(true|false)", re.I)
_SPECIAL: Final = re.compile(r"(?P<when>.*?)(?:\s+note=(?P<note>.*))?", re.DOTALL)
_WEEKLY_SYNTAX: Final = "write weekly hours as e.g. 'mon-fri 08:00-16:30'"


def _days(text: str) -> list[Day] | None:
    days: list[Day] = []
    for part in text.lower().split(","):
        first, dash, last = (p.strip() for p in part.partition("-"))
        start, end = _DAY_NAMES.get(first), _DAY_NAMES.get(last if dash else first)
        if start is None or end is None:
            return None
        a, b = _DAY_ORDER.index(start), _DAY_ORDER.index(end)
        if b < a:
            return None
        days.extend(_DAY_ORDER[a : b + 1])
    return days


def _ranges(text: str) -> list[dict[str, str]] | None:
    ranges = []
    for part in text.split(","):
        match = _TIME_RANGE.fullmatch(part.strip())
        if match is None:
            return None
        h1, m1, h2, m2 = match.groups()
        ranges.append({"opens": f"{int(h1):02d}:{m1}", "closes": f"{int(h2):02d}:{m2}"})
    return ranges


def parse_opening_hours(cell: str) -> tuple[dict[str, Any] | None, list[_Problem]]:
    """The ``opening_hours`` cell as an ``OpeningHours``-shaped dict (module docstring)."""
    if not cell.strip():
        return None, []
    hours: dict[str, Any] = {"weekly": [], "special_days": []}
    problems: list[_Problem] = []

    def bad(number: int, message: str) -> None:
        problems.append(("opening_hours", "opening_hours_syntax", f"entry {number}: {message}"))

    entries = [e.strip() for e in _split(cell, ";") if e.strip()]
    for number, entry in enumerate(entries, start=1):
        flag = _FLAG.fullmatch(entry)
        if entry.lower() == "always_open":
            hours["always_open"] = True
        elif entry.startswith("note="):
            hours["note"] = _unescape(entry[len("note=") :]).strip()
        elif flag:
            hours[flag[1].lower()] = flag[2].lower() == "true"
        elif len(parts := entry.split(None, 1)) != 2:
            bad(number, _WEEKLY_SYNTAX)
        elif _DATE.fullmatch(parts[0]):
            special = _SPECIAL.fullmatch(parts[1])
            when = special["when"].strip() if special else ""
            day: dict[str, Any] = {"date": parts[0]}
            if when.lower() == "closed":
                day["closed"] = True
            elif (intervals := _ranges(when)) is not None:
                day["intervals"] = intervals
            else:
                bad(
                    number, "write a special day as 'YYYY-MM-DD closed' or 'YYYY-MM-DD 10:00-14:00'"
                )
                continue
            if special and special["note"] is not None:
                day["note"] = _unescape(special["note"]).strip()
            hours["special_days"].append(day)
        else:
            days, ranges = _days(parts[0]), _ranges(parts[1])
            if days is None or ranges is None:
                bad(number, _WEEKLY_SYNTAX)
                continue
            hours["weekly"].extend({"day": str(d), **r} for d in days for r in ranges)
    return hours, problems


def _hhmm(value: dt.time, *, closing: bool = False) -> str:
    if closing and value == dt.time(0, 0):
        return "24:00"
    return value.strftime("%H:%M")


def _opening_hours_cell(hours: OpeningHours | None) -> str:
    if hours is None:
        return ""
    entries = ["always_open"] if hours.always_open else []
    weekly = {
        day: ",".join(
            f"{_hhmm(i.opens)}-{_hhmm(i.closes, closing=True)}"
            for i in hours.weekly
            if i.day is day
        )
        for day in Day
    }
    runs: list[list[Day]] = []
    for day in Day:
        if not weekly[day]:
            continue
        prev = runs[-1][-1] if runs else None
        if (
            prev
            and _DAY_ORDER.index(prev) + 1 == _DAY_ORDER.index(day)
            and weekly[prev] == weekly[day]
        ):
            runs[-1].append(day)
        else:
            runs.append([day])
    for run in runs:
        days = run[0].value if len(run) == 1 else f"{run[0].value}-{run[-1].value}"
        entries.append(f"{days} {weekly[run[0]]}")
    if not hours.always_open:
        entries += [
            f"{flag}=false"
            for flag in ("closed_on_public_holidays", "closed_on_eves")
            if not getattr(hours, flag)
        ]
    for special in hours.special_days:
        when = (
            "closed"
            if special.closed
            else ",".join(
                f"{_hhmm(i.opens)}-{_hhmm(i.closes, closing=True)}" for i in special.intervals
            )
        )
        note = f" note={_escape(special.note)}" if special.note is not None else ""
        entries.append(f"{special.date.isoformat()} {when}{note}")
    if hours.note is not None:
        entries.append(f"note={_escape(hours.note)}")
    # Opening hours with nothing but the defaults still differ from none at all.
    return "; ".join(entries) or "closed_on_public_holidays=true"


# --- reading a file --------------------------------------------------------------------------


@dataclass
class _Item:
    """One unit of the file before validation."""

    line: int
    raw: dict[str, Any]
    external_id: Any = None
    kept: tuple[str, ...] = ()
    """Fields the file does not give: an update keeps the unit's values."""


def _at(line: int, field: str, rule: str, message: str) -> FieldProblem:
    return FieldProblem(field=f"line {line}: {field}", rule=rule, message=message)


def _read_csv(text: str) -> tuple[list[_Item], list[FieldProblem]]:
    text = text.removeprefix("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    items: list[_Item] = []
    problems: list[FieldProblem] = []
    columns: list[str] = []
    line = 0
    try:
        for line, record in enumerate(reader, start=1):
            if line == 1:
                columns = [c.strip().lower() for c in record]
                problems += _check_header(columns)
                if problems:
                    return [], problems
                continue
            # An export's formula guard (shared.web.csvout) is not part of the value.
            record = [unguard(cell) for cell in record]
            if not any(cell.strip() for cell in record):
                continue  # a blank row
            if any(cell.strip() for cell in record[len(columns) :]):
                problems.append(
                    _at(line, "row", "too_many_cells", "the row has more cells than the header")
                )
                continue
            if len(items) >= MAX_ROWS:
                problems.append(
                    _at(line, "row", "too_many_rows", f"at most {MAX_ROWS} units per file")
                )
                break
            padded = [*record, *[""] * (len(columns) - len(record))]
            cells = dict(zip(columns, padded, strict=False))
            item, row_problems = _csv_item(line, cells)
            items.append(item)
            problems += [_at(line, f, r, m) for f, r, m in row_problems]
    except csv.Error:
        problems.append(_at(line + 1, "row", "csv_syntax", "the CSV is not well-formed here"))
    if line == 0:
        problems += [
            _at(1, c, "missing_column", "the header lacks this required column")
            for c in _REQUIRED_COLUMNS
        ]
    return items, problems


def _check_header(columns: list[str]) -> list[FieldProblem]:
    problems = []
    for position, column in enumerate(columns, start=1):
        if column not in CSV_COLUMNS:
            problems.append(
                _at(
                    1,
                    f"column {position}",
                    "unknown_column",
                    "unknown column; the columns are " + ", ".join(CSV_COLUMNS),
                )
            )
        elif columns.index(column) != position - 1:
            problems.append(
                _at(1, f"column {position}", "duplicate_column", "the column appears twice")
            )
    problems += [
        _at(1, c, "missing_column", "the header lacks this required column")
        for c in _REQUIRED_COLUMNS
        if c not in columns
    ]
    return problems


def _csv_item(line: int, cells: dict[str, str]) -> tuple[_Item, list[_Problem]]:
    raw: dict[str, Any] = {"name": cells.get("name", ""), "kind": cells.get("kind", "").strip()}
    problems: list[_Problem] = []
    if "mission" in cells:
        raw["mission"] = cells["mission"]
    for column in _LIST_COLUMNS:
        raw[column] = [v.strip() for v in cells.get(column, "").split(";") if v.strip()]
    paths, path_problems = parse_contact_paths(cells.get("contact_paths", ""))
    raw["contact_paths"] = [] if path_problems else paths
    hours, hour_problems = parse_opening_hours(cells.get("opening_hours", ""))
    raw["opening_hours"] = None if hour_problems else hours
    problems += path_problems + hour_problems
    for column in ("valid_from", "valid_to"):
        raw[column] = cells.get(column, "").strip() or None
    external_id = cells.get("external_id", "").strip() or None
    kept = _NOT_IN_CSV + tuple(c for c in _OPTIONAL_FIELDS if c not in cells)
    return _Item(line=line, raw=raw, external_id=external_id, kept=kept), problems


_NO_ALIASES: Final = "aliases are not accepted"


class YamlLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 numbers (``16:30``, ``0764`` stay text) and no aliases."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            raise yaml.composer.ComposerError(None, None, _NO_ALIASES, event.start_mark)
        return super().compose_node(parent, index)


_YAML_NUMBERS: Final = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML_NUMBERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _read_yaml(text: str) -> tuple[list[_Item], list[FieldProblem]]:
    try:
        document = yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        if isinstance(exc, yaml.composer.ComposerError) and exc.problem == _NO_ALIASES:
            message = "anchors and aliases (& and *) are not accepted; write each unit out"
            return [], [FieldProblem(field="body", rule="yaml_alias", message=message)]
        mark = getattr(exc, "problem_mark", None)
        where = f" (near line {mark.line + 1} of the text)" if mark is not None else ""
        # The parser's own message quotes the text: never pass it on.
        message = f"the YAML is not well-formed{where}"
        return [], [FieldProblem(field="body", rule="yaml_syntax", message=message)]
    if not isinstance(document, list):
        # An empty file is no list either: "no units" is written [].
        return [], [
            FieldProblem(field="body", rule="yaml_list", message="the YAML must be a list of units")
        ]
    if len(document) > MAX_ROWS:
        return [], [
            FieldProblem(
                field="body", rule="too_many_rows", message=f"at most {MAX_ROWS} units per file"
            )
        ]
    items = []
    problems = []
    for line, entry in enumerate(document, start=1):
        if not isinstance(entry, dict):
            problems.append(
                _at(line, "item", "model_type", "each item is a unit: a mapping of its fields")
            )
            continue
        raw = dict(entry)
        # YAML's "\0" escape writes a NUL, which PostgreSQL cannot store (shared.web.nul).
        if nuls := [_at(line, path, NUL_RULE, NUL_MESSAGE) for path in nul_paths(raw)]:
            problems += nuls
            continue
        items.append(_Item(line=line, raw=raw, external_id=raw.pop("external_id", None)))
    return items, problems


# --- importing -------------------------------------------------------------------------------


@dataclass
class _Planned:
    item: _Item
    data: UnitCreate
    target: Unit | None


def _validation_problems(line: int, exc: ValidationError) -> list[FieldProblem]:
    return [
        _at(line, ".".join(str(p) for p in err["loc"]) or "item", err["type"], err["msg"])
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _description(unit: Unit) -> dict[str, Any] | None:
    """The unit's stored description in the normalised form an import produces."""
    try:
        stored = UnitCreate.model_validate({f: getattr(unit, f) for f in UnitCreate.model_fields})
    except ValidationError:
        return None  # stored under older rules: any import rewrites it
    return stored.model_dump(mode="json")


def _check_external_id(item: _Item, seen: dict[str, int]) -> list[FieldProblem]:
    value = item.external_id
    if value is None:
        return []
    if not isinstance(value, str):
        return [_at(item.line, "external_id", "string_type", "external_id is text")]
    if len(value) > MAX_EXTERNAL_ID:
        return [
            _at(
                item.line,
                "external_id",
                "string_too_long",
                f"at most {MAX_EXTERNAL_ID} characters",
            )
        ]
    if value in seen:
        return [
            _at(
                item.line,
                "external_id",
                "duplicate_in_file",
                f"line {seen[value]} has the same external_id",
            )
        ]
    seen[value] = item.line
    return []


def _plan(
    items: Iterable[_Item], existing: Sequence[Unit]
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
    for item in items:
        problems += _check_external_id(item, seen_ids)
        name, kind = item.raw.get("name"), item.raw.get("kind")
        target: Unit | None = None
        if isinstance(name, str) and isinstance(kind, str):
            if (name, kind) in seen_keys:
                problems.append(
                    _at(
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
                    _at(
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
        if data.parent_unit_id is not None and data.parent_unit_id not in owned:
            problems.append(
                _at(
                    item.line,
                    "parent_unit_id",
                    "unknown_parent",
                    "no unit of your member has this id",
                )
            )
            continue
        planned.append(_Planned(item=item, data=data, target=target))
    return planned, problems


async def _territory_problems(
    session: AsyncSession, owner_orgnr: str, planned: Sequence[_Planned]
) -> list[FieldProblem]:
    """Rows covering a kommun the member's record does not serve (ADR 0013)."""
    served = await territory.own_territory(session=session, orgnr=owner_orgnr)
    if served is None:  # no record yet: as for a single unit, nothing is refused
        return []
    problems = []
    for step in planned:
        beyond = territory.outside(step.data.kommunkoder, served)
        if beyond:
            message = territory.outside_message(beyond)
            problems.append(
                _at(step.item.line, "kommunkoder", territory.OUTSIDE_TERRITORY, message)
            )
    return problems


def _refuse(problems: list[FieldProblem], fmt: ImportFormat) -> ImportInvalid:
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
    *,
    session: AsyncSession,
    outbox: Outbox,
    owner_orgnr: str,
    text: str,
    fmt: ImportFormat,
    dry_run: bool = False,
) -> ImportReport:
    """Creates or updates ``owner_orgnr``'s units from a file, all or nothing (module doc)."""
    items, problems = _read_csv(text) if fmt is ImportFormat.CSV else _read_yaml(text)
    existing = await UnitRepository(session).all_owned(owner_orgnr)
    planned, plan_problems = _plan(items, existing)
    problems += plan_problems
    problems += await _territory_problems(session, owner_orgnr, planned)
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
                    unit = await service.create_unit(
                        session=session, outbox=outbox, owner_orgnr=owner_orgnr, data=data
                    )
                    action = ImportAction.CREATED
                else:
                    unit = await service.update_unit(
                        session=session,
                        outbox=outbox,
                        unit=target,
                        data=data,
                        expected_version=target.version,
                    )
                    action = ImportAction.UPDATED
            except InvalidInput as exc:  # e.g. a parent chain that would loop
                found = [_at(line, e.field, e.rule, e.message) for e in exc.errors or []]
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


# --- exporting -------------------------------------------------------------------------------


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
        _contact_paths_cell(data.contact_paths),
        _opening_hours_cell(data.opening_hours),
        data.valid_from.isoformat() if data.valid_from else "",
        data.valid_to.isoformat() if data.valid_to else "",
        "",
    ]


def _unit_order(unit: Unit) -> tuple[Any, ...]:
    return (swedish_sort_key(unit.name), unit.kind, unit.id)


async def export_units(*, session: AsyncSession, owner_orgnr: str, fmt: ImportFormat) -> str:
    """The member's own units as CSV (with a byte order mark) or YAML, ready to re-import."""
    units = sorted(await UnitRepository(session).all_owned(owner_orgnr), key=_unit_order)
    if fmt is ImportFormat.YAML:
        dumped = [_export_model(u).model_dump(mode="json", exclude_none=True) for u in units]
        return yaml.safe_dump(dumped, allow_unicode=True, sort_keys=False, width=100)
    # Formula-like cells get a leading ' (shared.web.csvout); the import takes it off again.
    return write_csv(CSV_COLUMNS, (_csv_row(u) for u in units), bom=True)

"""Reading an import file: the CSV rows or YAML items, one :class:`Item` each, not yet
validated (:mod:`services.directory.transfer` plans and applies them)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any, Final

import yaml

from services.directory.transfer_cells import Problem, parse_contact_paths, parse_opening_hours
from shared.web.csvout import unguard
from shared.web.errors import FieldProblem
from shared.web.nul import NUL_MESSAGE, NUL_RULE, nul_paths

__all__ = ["CSV_COLUMNS", "MAX_ROWS", "Item", "YamlLoader", "at", "read_csv", "read_yaml"]

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
    "hsa_id",
)
_REQUIRED_COLUMNS: Final = ("name", "kind", "kommunkoder")
_LIST_COLUMNS: Final = ("kommunkoder", "interventions", "referral_kinds")
# Fields without a CSV column: an update from CSV keeps the unit's values.
_NOT_IN_CSV: Final = ("target_groups", "parent_unit_id", "capacity")
# Optional columns that are unit fields: left out of the header, an update keeps them.
_OPTIONAL_FIELDS: Final = tuple(
    c for c in CSV_COLUMNS if c not in _REQUIRED_COLUMNS and c != "external_id"
)
MAX_ROWS: Final = 10_000


# --- reading a file --------------------------------------------------------------------------


@dataclass
class Item:
    """One unit of the file before validation."""

    line: int
    raw: dict[str, Any]
    external_id: Any = None
    kept: tuple[str, ...] = ()
    """Fields the file does not give: an update keeps the unit's values."""


def at(line: int, field: str, rule: str, message: str) -> FieldProblem:
    """A problem of the file's ``line`` (``line <n>: <field>``)."""
    return FieldProblem(field=f"line {line}: {field}", rule=rule, message=message)


def read_csv(text: str) -> tuple[list[Item], list[FieldProblem]]:
    """The rows of a CSV file (syntax: :mod:`services.directory.transfer`) and its problems."""
    text = text.removeprefix("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    items: list[Item] = []
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
                    at(line, "row", "too_many_cells", "the row has more cells than the header")
                )
                continue
            if len(items) >= MAX_ROWS:
                problems.append(
                    at(line, "row", "too_many_rows", f"at most {MAX_ROWS} units per file")
                )
                break
            padded = [*record, *[""] * (len(columns) - len(record))]
            cells = dict(zip(columns, padded, strict=False))
            item, row_problems = _csv_item(line, cells)
            items.append(item)
            problems += [at(line, f, r, m) for f, r, m in row_problems]
    except csv.Error:
        problems.append(at(line + 1, "row", "csv_syntax", "the CSV is not well-formed here"))
    if line == 0:
        problems += [
            at(1, c, "missing_column", "the header lacks this required column")
            for c in _REQUIRED_COLUMNS
        ]
    return items, problems


def _check_header(columns: list[str]) -> list[FieldProblem]:
    problems = []
    for position, column in enumerate(columns, start=1):
        if column not in CSV_COLUMNS:
            problems.append(
                at(
                    1,
                    f"column {position}",
                    "unknown_column",
                    "unknown column; the columns are " + ", ".join(CSV_COLUMNS),
                )
            )
        elif columns.index(column) != position - 1:
            problems.append(
                at(1, f"column {position}", "duplicate_column", "the column appears twice")
            )
    problems += [
        at(1, c, "missing_column", "the header lacks this required column")
        for c in _REQUIRED_COLUMNS
        if c not in columns
    ]
    return problems


def _csv_item(line: int, cells: dict[str, str]) -> tuple[Item, list[Problem]]:
    raw: dict[str, Any] = {"name": cells.get("name", ""), "kind": cells.get("kind", "").strip()}
    problems: list[Problem] = []
    if "mission" in cells:
        raw["mission"] = cells["mission"]
    for column in _LIST_COLUMNS:
        raw[column] = [v.strip() for v in cells.get(column, "").split(";") if v.strip()]
    paths, path_problems = parse_contact_paths(cells.get("contact_paths", ""))
    raw["contact_paths"] = [] if path_problems else paths
    hours, hour_problems = parse_opening_hours(cells.get("opening_hours", ""))
    raw["opening_hours"] = None if hour_problems else hours
    problems += path_problems + hour_problems
    for column in ("valid_from", "valid_to", "hsa_id"):
        raw[column] = cells.get(column, "").strip() or None
    external_id = cells.get("external_id", "").strip() or None
    kept = _NOT_IN_CSV + tuple(c for c in _OPTIONAL_FIELDS if c not in cells)
    return Item(line=line, raw=raw, external_id=external_id, kept=kept), problems


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


def read_yaml(text: str) -> tuple[list[Item], list[FieldProblem]]:
    """The items of a YAML list of units and the file's problems."""
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
                at(line, "item", "model_type", "each item is a unit: a mapping of its fields")
            )
            continue
        raw = dict(entry)
        # YAML's "\0" escape writes a NUL, which PostgreSQL cannot store (shared.web.nul).
        if nuls := [at(line, path, NUL_RULE, NUL_MESSAGE) for path in nul_paths(raw)]:
            problems += nuls
            continue
        items.append(Item(line=line, raw=raw, external_id=raw.pop("external_id", None)))
    return items, problems

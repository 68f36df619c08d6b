"""The one CSV writer of every export: cells a spreadsheet would run as a formula are text.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula: a unit named ``=HYPERLINK(...)`` in an export would run on
the reader's machine. As OWASP recommends, such a cell gets a leading ``'`` (shown as text).
A cell that is a plain number (``-12``, ``+46``, ``0.25``) is no formula and stays as it is,
and so do numbers given as numbers. A cell that already starts with ``'`` gets one more, so
:func:`unguard` (used by the directory's import) gives back exactly what was written.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Final

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
GUARD: Final = "'"
_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

Cell = str | int | float | None


def guard(value: Cell) -> str:
    """The cell's text, with a leading ``'`` where a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if value.startswith(GUARD) or (
        value.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return GUARD + value
    return value


def unguard(cell: str) -> str:
    """What :func:`guard` was given: the cell without the ``'`` it added."""
    rest = cell[1:]
    if cell.startswith(GUARD) and (rest.startswith(GUARD) or rest.startswith(FORMULA_START)):
        return rest
    return cell


def write_csv(
    header: Iterable[str],
    rows: Iterable[Iterable[Cell]],
    *,
    bom: bool = False,
    lineterminator: str = "\r\n",
) -> str:
    """``header`` and ``rows`` as CSV text, every cell through :func:`guard`; ``bom`` puts a
    UTF-8 byte order mark first (Excel then reads the file as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow([guard(c) for c in header])
    writer.writerows([guard(c) for c in row] for row in rows)
    return ("\ufeff" if bom else "") + buffer.getvalue()

"""Swedish municipalities (kommuner) and counties (län) by SCB code.

A kommunkod is SCB's four-digit code: the county's two digits followed by two for the
municipality (0780 is Växjö in Kronobergs län, 07). The lists are read once from the CSV
files in ``data/`` (see ``data/README.md`` for their source and licence).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from shared.identity.identifiers.personnummer import IdentifierError

__all__ = [
    "County",
    "Kommun",
    "all_kommuner",
    "counties",
    "kommun",
    "normalise_kommunkod",
]

_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_DIGITS = re.compile(r"[0-9]*")


@dataclass(frozen=True)
class County:
    """A county (län): SCB's two-digit code, e.g. ``07`` for Kronobergs län."""

    code: str
    name: str
    short_name: str


@dataclass(frozen=True)
class Kommun:
    """A municipality with its county; ``short_name`` (e.g. "Växjö") is for display."""

    code: str
    name: str
    short_name: str
    county_code: str
    county_name: str


def _read_csv(name: str) -> list[dict[str, str]]:
    data = resources.files(__name__.rpartition(".")[0]) / "data" / name
    text = data.read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=1)
def counties() -> tuple[County, ...]:
    """The 21 counties, ordered by code."""
    rows = _read_csv("counties.csv")
    return tuple(
        sorted(
            (County(r["county_code"], r["county_name"], r["county_name_short"]) for r in rows),
            key=lambda c: c.code,
        )
    )


@lru_cache(maxsize=1)
def all_kommuner() -> tuple[Kommun, ...]:
    """The 290 municipalities, ordered by code."""
    county_names = {c.code: c.name for c in counties()}
    kommuner = []
    for r in _read_csv("municipalities.csv"):
        county_code = r["county_code"]
        # A KeyError here means the two data files are out of step: fail loudly at first use.
        kommuner.append(
            Kommun(
                code=r["municipality_code"],
                name=r["municipality_name"],
                short_name=r["municipality_name_short"],
                county_code=county_code,
                county_name=county_names[county_code],
            )
        )
    return tuple(sorted(kommuner, key=lambda k: k.code))


@lru_cache(maxsize=1)
def _by_code() -> dict[str, Kommun]:
    return {k.code: k for k in all_kommuner()}


def normalise_kommunkod(value: str) -> str:
    """Validate a kommunkod: exactly four digits (surrounding whitespace is ignored) in SCB's list.

    Raises :class:`IdentifierError` with rule ``format``, ``length`` or ``unknown_kommunkod``.
    """
    text = value.strip()
    if not _FOUR_DIGITS.fullmatch(text):
        if _DIGITS.fullmatch(text):
            # A lost leading zero is a common spreadsheet casualty: say what is wrong.
            raise IdentifierError(
                "length", "A kommunkod has exactly 4 digits, including any leading zero."
            )
        raise IdentifierError("format", "A kommunkod contains only digits.")
    if text not in _by_code():
        raise IdentifierError("unknown_kommunkod", "No Swedish municipality has this kommunkod.")
    return text


def kommun(code: str) -> Kommun:
    """The municipality with this kommunkod.

    Raises :class:`IdentifierError`: ``unknown_kommunkod`` for a well-formed code that is
    not in SCB's list, ``format`` or ``length`` for one that is not four digits.
    """
    return _by_code()[normalise_kommunkod(code)]

"""Swedish personnummer and samordningsnummer, and the error every identifier check raises.

The rules implemented here (Skatteverket, SKV 704 and SKV 707):

* A personnummer is the birth date ``YYMMDD``, a three-digit birth number and a Luhn check
  digit computed over those ten digits (the century is not part of the check).
* Written with ten digits, a ``-`` separates date and birth number; it becomes ``+`` the
  year the holder turns 100, so ``+`` moves the inferred century back by 100 years. With
  twelve digits the century is explicit and the separator is optional; ``+`` is rejected
  there because it would contradict the explicit century.
* A samordningsnummer (coordination number, for people who are or were not registered in
  Sweden) has the same layout with 60 added to the day of month (61–91). Its date, the
  day minus 60, must be a real date like a personnummer's.
* The birth date must be a real calendar date and not in the future.

``python-stdnum``'s ``stdnum.se.personnummer`` rejects samordningsnummer, and the
``personnummer`` package puts the submitted value in its exception messages, infers the
century from the year alone and accepts future dates, so the rules live here on top of
``stdnum.luhn``.
"""

from __future__ import annotations

import datetime as dt
import re

from stdnum import luhn

__all__ = [
    "IdentifierError",
    "is_samordningsnummer",
    "mask_personnummer",
    "normalise_personnummer",
]

# Explicit ASCII classes: ``\d`` would also match e.g. Arabic-Indic digits.
_ALLOWED = re.compile(r"[0-9+-]*")
_SHAPE = re.compile(r"(?P<date>[0-9]{6}|[0-9]{8})(?P<sep>[-+]?)(?P<serial>[0-9]{4})")

# Samordningsnummer add this to the day of month.
_SAMORDNING_OFFSET = 60
# Nobody alive when personnummer were introduced (1947) was born before this; a 12-digit
# number with an earlier year is a typo, not a person.
_MIN_YEAR = 1800


class IdentifierError(ValueError):
    """An identifier broke one of its rules.

    ``rule`` is machine readable (``format``, ``length``, ``separator``, ``date``,
    ``luhn``, ``legal_entity``, ``unknown_kommunkod``); ``message`` is English for people.
    Neither ever contains the submitted value: identifiers are personal data and errors end
    up in logs and API responses.
    """

    rule: str
    message: str

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def __reduce__(self) -> tuple[type[IdentifierError], tuple[str, str]]:
        # The default pickling passes only ``args`` (the message) back to ``__init__``.
        return (type(self), (self.rule, self.message))


def normalise_personnummer(value: str, *, today: dt.date | None = None) -> str:
    """Validate a personnummer or samordningsnummer and return it as ``YYYYMMDDNNNN``.

    Accepts ``YYMMDD-NNNN``, ``YYMMDD+NNNN``, ``YYMMDDNNNN``, ``YYYYMMDD-NNNN`` and
    ``YYYYMMDDNNNN``, with surrounding whitespace. For the ten-digit forms the century is
    the most recent one that does not put the birth date after ``today`` (default: the
    local date), minus 100 years with ``+``.

    Raises :class:`IdentifierError` with rule ``format``, ``length``, ``separator``,
    ``date`` or ``luhn``.
    """
    text = value.strip()
    if not _ALLOWED.fullmatch(text):
        raise IdentifierError(
            "format", "A personnummer contains only digits and an optional '-' or '+'."
        )
    digits = text.replace("-", "").replace("+", "")
    if len(digits) not in (10, 12):
        raise IdentifierError("length", "A personnummer has 10 or 12 digits.")
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "separator", "Only one '-' or '+' is allowed, directly before the last four digits."
        )
    date_part, sep, serial = match["date"], match["sep"], match["serial"]
    if len(date_part) == 8 and sep == "+":
        raise IdentifierError(
            "separator", "'+' is only used with 10 digits; with 12 digits use '-' or nothing."
        )

    today = today or dt.date.today()
    month, day = int(date_part[-4:-2]), int(date_part[-2:])
    birth_day = day - _SAMORDNING_OFFSET if day > _SAMORDNING_OFFSET else day
    if len(date_part) == 8:
        year = int(date_part[:4])
    else:
        year = _infer_year(int(date_part[:2]), month, birth_day, today, centenarian=sep == "+")

    try:
        birth = dt.date(year, month, birth_day)
    except ValueError:
        raise IdentifierError("date", "The birth date is not a valid date.") from None
    if birth > today:
        raise IdentifierError("date", "The birth date is in the future.")
    if year < _MIN_YEAR:
        raise IdentifierError("date", "The birth date is implausibly early.")

    ten = date_part[-6:] + serial
    if not luhn.is_valid(ten):
        raise IdentifierError("luhn", "The check digit of the personnummer is wrong.")
    return f"{year:04d}{date_part[-4:]}{serial}"


def _infer_year(yy: int, month: int, day: int, today: dt.date, *, centenarian: bool) -> int:
    """The full year of a two-digit year: the latest one not after ``today``.

    Compared as tuples rather than dates because month and day are not validated yet (and
    29 February exists in some centuries only).
    """
    year = today.year - (today.year - yy) % 100
    if (year, month, day) > (today.year, today.month, today.day):
        year -= 100
    if centenarian:
        year -= 100
    return year


def is_samordningsnummer(value: str) -> bool:
    """Whether a valid number is a samordningsnummer (day of month 61–91).

    Raises :class:`IdentifierError` if ``value`` is not a valid personnummer or
    samordningsnummer, so an invalid value is never mistaken for either kind.
    """
    return int(normalise_personnummer(value)[6:8]) > _SAMORDNING_OFFSET


def mask_personnummer(value: str) -> str:
    """The number as ``YYYYMMDD-****`` for audit extracts: birth date kept, rest hidden.

    Raises :class:`IdentifierError` if ``value`` is not a valid number.
    """
    return normalise_personnummer(value)[:8] + "-****"

"""How the services write for Swedish readers: dictionary order, phone numbers, addresses,
dates and times.

:func:`swedish_sort_key` orders text as a Swedish dictionary does (å, ä, ö after z);
:func:`format_phone_national` shows a stored phone number as Swedes write it;
:func:`postal_text` writes a postal address on one line. The printable overview, the
export and the import's cells all use them, so a unit reads the same everywhere.
:func:`date_sv` and :func:`time_sv` write a date, and an instant in Swedish local time, as
running text does (``7 december 2026 kl. 14.05``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Final

from shared.domain.calendar import STOCKHOLM
from shared.domain.contact import PostalAddress

__all__ = [
    "SV_FOLD",
    "date_sv",
    "format_phone_national",
    "postal_text",
    "swedish_sort_key",
    "time_sv",
]

_SV_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzåäö"
_SV_LETTER: Final = {ch: i for i, ch in enumerate(_SV_ALPHABET)}
# Letters Swedish dictionaries file under another letter (SAOL: ü as y, æ as ä, ø as ö).
SV_FOLD: Final = {"ü": "y", "æ": "ä", "ø": "ö", "œ": "oe", "ð": "d", "þ": "th", "ł": "l"}

_Weight = tuple[int, int]


def _weights(ch: str) -> list[_Weight]:
    if ch.isspace():
        return [(0, 0)]
    if ch.isdigit():
        return [(1, int(ch))] if ch.isascii() else [(1, unicodedata.digit(ch, 0))]
    if ch in _SV_LETTER:
        return [(2, _SV_LETTER[ch])]
    folded = SV_FOLD.get(ch)
    if folded is None:
        # é -> e, ç -> c, á -> a ... (å ä ö never get here: they are letters of their own).
        base = unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in base if not unicodedata.combining(c))
    if folded and folded != ch and all(c in _SV_LETTER for c in folded):
        return [(2, _SV_LETTER[c]) for c in folded]
    # Punctuation and other scripts: before the letters, in code point order.
    return [(0, ord(ch))]


def swedish_sort_key(text: str) -> tuple[tuple[_Weight, ...], str]:
    """A sort key ordering text as a Swedish dictionary does: a–z, then å, ä, ö.

    Case is ignored and runs of whitespace count as one space; accented letters sort with
    their base letter (é as e, ü as y), digits before letters. Ties are broken by the text
    itself so the order is total.
    """
    normal = " ".join(text.split()).casefold()
    primary: list[_Weight] = []
    for ch in normal:
        primary.extend(_weights(ch))
    return tuple(primary), text


# --- phone numbers ---------------------------------------------------------------------------

_E164_SE: Final = re.compile(r"\+46([1-9][0-9]{5,9})")
_SHORT_NUMBERS: Final = {"112": "112", "1177": "1177", "11414": "114 14", "11313": "113 13"}
# Riktnummer with two digits after the 0 (all others but 08 have three).
_TWO_DIGIT_AREAS: Final = frozenset(
    {"11", "13", "16", "18", "19", "21", "23", "26", "31", "33", "35", "36", "40", "42", "44"}
    | {"46", "54", "60", "63", "90"}
)
_PREMIUM: Final = frozenset({"900", "939", "944"})


def _area_digits(nsn: str) -> int:
    """How many digits of the national number (after the trunk 0) are the area code."""
    if nsn.startswith("8"):
        return 1
    if nsn[:3] in _PREMIUM or nsn.startswith(("77", "200")):
        return 3  # 0900-, 0771-, 0200-
    if nsn.startswith(("7", "10", "20")) or nsn[:2] in _TWO_DIGIT_AREAS:
        return 2  # 070-, 010-, 020-, 031-
    return 3


def _subscriber_groups(digits: str) -> str:
    """Groups of two from the right, three first when odd; eight digits as 3-3-2."""
    n = len(digits)
    if n <= 4:
        return digits
    if n == 8:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    head = 3 if n % 2 else 2
    rest = digits[head:]
    return " ".join([digits[:head], *(rest[i : i + 2] for i in range(0, len(rest), 2))])


def format_phone_national(value: str) -> str:
    """A stored phone number (E.164 or short number) as Swedes write it: ``0470-41 00 00``.

    Mobile ``070-123 45 67``, Stockholm ``08-123 456 78``, short numbers ``114 14``. A value
    that is not a Swedish E.164 number is returned unchanged.
    """
    if value in _SHORT_NUMBERS:
        return _SHORT_NUMBERS[value]
    match = _E164_SE.fullmatch(value)
    if match is None:
        return value
    nsn = match[1]
    area = _area_digits(nsn)
    return f"0{nsn[:area]}-{_subscriber_groups(nsn[area:])}"


# --- postal addresses ------------------------------------------------------------------------


def postal_text(postal: PostalAddress) -> str:
    """The address on one line: ``c/o name, street, postcode city``."""
    parts = [f"c/o {postal.care_of}"] if postal.care_of else []
    return ", ".join([*parts, postal.street, f"{postal.postcode} {postal.city}"])


_MONTHS: Final = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)


def date_sv(day: dt.date) -> str:
    """A date as Swedes write it in running text: ``1 februari 2027``."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def time_sv(at: dt.datetime) -> str:
    """An instant in Swedish local time (Europe/Stockholm, summer time included) as running
    text writes it: ``7 december 2026 kl. 14.05``. A naive datetime is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime has no place in time")
    local = at.astimezone(STOCKHOLM)
    return f"{date_sv(local.date())} kl. {local:%H.%M}"

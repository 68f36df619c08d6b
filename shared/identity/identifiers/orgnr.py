"""Swedish organisationsnummer (legal entities: regions, kommuner, companies, associations).

The rules (Bolagsverket, Skatteverket SKV 709):

* Ten digits, usually written ``NNNNNN-NNNN``; the last is a Luhn check digit over the
  first nine, as for a personnummer.
* The third digit is 2 or higher. It is where a personnummer has the tens of its month
  (0 or 1), so the rule keeps the two number series apart; a sole trader's business is
  identified by the owner's personnummer and is not accepted here.
* Some registers write twelve digits with the prefix ``16``; it carries no information.

``stdnum.se.orgnr`` checks only the Luhn digit and strips any punctuation anywhere, so the
shape and the third-digit rule are checked here and only the Luhn digit is delegated.
"""

from __future__ import annotations

import re

from stdnum import luhn

from shared.identity.identifiers.personnummer import IdentifierError

__all__ = ["normalise_orgnr"]

_ALLOWED = re.compile(r"[0-9-]*")
_SHAPE = re.compile(r"(?:16)?(?P<head>[0-9]{6})-?(?P<tail>[0-9]{4})")


def normalise_orgnr(value: str) -> str:
    """Validate an organisationsnummer and return it as ``NNNNNN-NNNN``.

    Accepts ``NNNNNN-NNNN``, ``NNNNNNNNNN`` and the same prefixed with ``16``, with
    surrounding whitespace. Raises :class:`IdentifierError` with rule ``format``,
    ``length``, ``separator``, ``luhn`` or ``legal_entity``.
    """
    text = value.strip()
    if not _ALLOWED.fullmatch(text):
        raise IdentifierError(
            "format", "An organisationsnummer contains only digits and an optional '-'."
        )
    digits = text.replace("-", "")
    if len(digits) not in (10, 12):
        raise IdentifierError("length", "An organisationsnummer has 10 digits.")
    if len(digits) == 12 and not digits.startswith("16"):
        raise IdentifierError(
            "format", "A 12-digit organisationsnummer starts with 16; otherwise use 10 digits."
        )
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "separator", "Only one '-' is allowed, directly before the last four digits."
        )
    ten = match["head"] + match["tail"]
    if not luhn.is_valid(ten):
        raise IdentifierError("luhn", "The check digit of the organisationsnummer is wrong.")
    if int(ten[2]) < 2:
        raise IdentifierError(
            "legal_entity",
            "The third digit of an organisationsnummer is 2 or higher; this looks like a "
            "personnummer.",
        )
    return f"{match['head']}-{match['tail']}"

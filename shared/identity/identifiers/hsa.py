"""HSA-id: the identifier of a person, unit or function in Inera's Katalogtjänst HSA.

The format (Inera's HSA rules, as quoted in openEHR Sweden's implementation guide
"HSA-identitet och Organisationsnummer",
https://openehr.atlassian.net/wiki/spaces/healthmod/pages/1922990156):

* the HSA prefix ``SE`` + the catalogue owner's organisationsnummer, ten digits without a
  hyphen (e.g. ``SE2321000065``, Region Kronoberg), then ``-``;
* then at least one of ``A``–``Z``, ``a``–``z`` and ``0``–``9`` (no å, ä, ö or ``@``);
* at most 31 characters in all, prefix included (so 1–18 after the hyphen).

The prefix names whoever issued the id (often the region's catalogue, not the unit's own
member), so it is not compared with the unit's owner, only checked to be a valid
organisationsnummer (:func:`~shared.identity.identifiers.orgnr.normalise_orgnr`).
Letters keep their case: HSA-ids are compared exactly as written.
"""

from __future__ import annotations

import re

from shared.identity.identifiers.orgnr import normalise_orgnr
from shared.identity.identifiers.personnummer import IdentifierError

__all__ = ["HSA_ID_MAX_LENGTH", "HSA_ID_PATTERN", "is_hsa_id", "normalise_hsa_id"]

#: Characters an HSA-id may have in all.
HSA_ID_MAX_LENGTH = 31
#: The shape (length aside) as a JSON Schema / OpenAPI pattern.
HSA_ID_PATTERN = r"^SE[0-9]{10}-[A-Za-z0-9]{1,18}$"

_SHAPE = re.compile(r"SE(?P<orgnr>[0-9]{10})-(?P<local>[A-Za-z0-9]+)")


def normalise_hsa_id(value: str) -> str:
    """Validate an HSA-id and return it without surrounding whitespace.

    Raises :class:`IdentifierError` with rule ``length`` (over 31 characters), ``format``
    (not ``SE`` + ten digits + ``-`` + letters and digits), or the prefix's
    organisationsnummer rule (``luhn``, ``legal_entity``), named ``hsa_prefix_<rule>``.
    """
    text = value.strip()
    if len(text) > HSA_ID_MAX_LENGTH:
        raise IdentifierError("length", "An HSA-id has at most 31 characters.")
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "format",
            "An HSA-id is 'SE', a 10-digit organisationsnummer, '-' and letters A-Z, a-z "
            "or digits.",
        )
    try:
        normalise_orgnr(match["orgnr"])
    except IdentifierError as exc:
        raise IdentifierError(
            f"hsa_prefix_{exc.rule}",
            "The HSA prefix is not a valid organisationsnummer: " + exc.message,
        ) from None
    return text


def is_hsa_id(value: str) -> bool:
    """Whether ``value`` is a valid HSA-id (never raises)."""
    try:
        normalise_hsa_id(value)
    except IdentifierError:
        return False
    return True

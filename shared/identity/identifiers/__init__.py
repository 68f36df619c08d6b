"""Swedish identifiers: personnummer, samordningsnummer, organisationsnummer, kommunkod.

Every check raises :class:`IdentifierError` whose ``rule`` is machine readable and whose
``message`` never contains the submitted value. The Pydantic types ``Personnummer``,
``Organisationsnummer`` and ``Kommunkod`` apply the same checks to model fields.
"""

from shared.identity.identifiers.kommun import (
    County,
    Kommun,
    all_kommuner,
    counties,
    kommun,
    normalise_kommunkod,
)
from shared.identity.identifiers.orgnr import normalise_orgnr
from shared.identity.identifiers.personnummer import (
    IdentifierError,
    is_samordningsnummer,
    mask_personnummer,
    normalise_personnummer,
)
from shared.identity.identifiers.types import Kommunkod, Organisationsnummer, Personnummer

__all__ = [
    "County",
    "IdentifierError",
    "Kommun",
    "Kommunkod",
    "Organisationsnummer",
    "Personnummer",
    "all_kommuner",
    "counties",
    "is_samordningsnummer",
    "kommun",
    "mask_personnummer",
    "normalise_kommunkod",
    "normalise_orgnr",
    "normalise_personnummer",
]

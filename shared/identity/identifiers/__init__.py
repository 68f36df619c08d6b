"""Swedish identifiers: personnummer, samordningsnummer, organisationsnummer, kommunkod,
HSA-id, and their FHIR identifier systems (SE-base, :mod:`.systems`).

Every check raises :class:`IdentifierError` whose ``rule`` is machine readable and whose
``message`` never contains the submitted value. The Pydantic types ``Personnummer``,
``Organisationsnummer`` and ``Kommunkod`` apply the same checks to model fields.
"""

from shared.identity.identifiers.hsa import is_hsa_id, normalise_hsa_id
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
from shared.identity.identifiers.systems import (
    HSA_ID_SYSTEM,
    ORGANISATIONSNUMMER_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    SECURITY_LABEL_SYSTEM,
    IdentifierKind,
    identifier_of,
    parse_identifier,
    security_label,
)
from shared.identity.identifiers.types import HsaId, Kommunkod, Organisationsnummer, Personnummer

__all__ = [
    "HSA_ID_SYSTEM",
    "ORGANISATIONSNUMMER_SYSTEM",
    "PERSONNUMMER_SYSTEM",
    "SAMORDNINGSNUMMER_SYSTEM",
    "SECURITY_LABEL_SYSTEM",
    "County",
    "HsaId",
    "IdentifierError",
    "IdentifierKind",
    "Kommun",
    "Kommunkod",
    "Organisationsnummer",
    "Personnummer",
    "all_kommuner",
    "counties",
    "identifier_of",
    "is_hsa_id",
    "is_samordningsnummer",
    "kommun",
    "mask_personnummer",
    "normalise_hsa_id",
    "normalise_kommunkod",
    "normalise_orgnr",
    "normalise_personnummer",
    "parse_identifier",
    "security_label",
]

"""Swedish identifiers as FHIR ``Identifier`` systems, following HL7 Sweden's SE-base.

Where the systems come from (HL7 Sweden, *Swedish Base Profiles*, ``hl7se.fhir.base``
1.1.0, https://github.com/HL7Sweden/basprofiler-r4, read at d983982):

* ``input/fsh/Aliases.fsh``: personnummer ``http://electronichealth.se/identifier/personnummer``,
  samordningsnummer ``http://electronichealth.se/identifier/samordningsnummer`` (the
  SEBasePatient slices, ``patient.fsh``) and HSA-id ``urn:oid:1.2.752.29.4.19`` (the
  SEBaseOrganization and SEBasePractitioner ``hsaid`` slices).
* ``input/fsh/organization.fsh``: organisationsnummer ``urn:oid:2.5.4.97`` ("exactly").
* ``input/fsh/sekretess.fsh``: the CodeSystem ``SecurityLabel``
  (``http://hl7.se/fhir/ig/base/CodeSystem/SecurityLabel``) with ``sekretessmarkering``
  (protected under 22 kap. 1 § OSL) and ``skyddadFolkbokforing`` (Skatteverket's
  protected population registration), bound to ``Patient.meta.security``.

Accepted on input besides those: Inera's OIDs for the same identifiers, which other
Swedish specifications (RIV-TA) use: ``urn:oid:1.2.752.129.2.1.3.1`` (personnummer),
``urn:oid:1.2.752.129.2.1.3.3`` (samordningsnummer) and ``urn:oid:1.2.752.129.2.1.4.1``
(HSA-id). SE-base's page on SEBaseOrganization notes that HSA-ids travel under different
OIDs in different specifications; it chose ``1.2.752.29.4.19``. Output always uses the
SE-base system (ADR 0028).

A personnummer system must hold a personnummer and a samordningsnummer system a
samordningsnummer (day of month + 60): one under the other's system is refused
(``not_personnummer``, ``not_samordningsnummer``), as SE-base keeps them in separate slices.
"""

from __future__ import annotations

from enum import StrEnum

from shared.identity.identifiers.hsa import normalise_hsa_id
from shared.identity.identifiers.orgnr import normalise_orgnr
from shared.identity.identifiers.personnummer import IdentifierError, normalise_personnummer

__all__ = [
    "HSA_ID_SYSTEM",
    "ORGANISATIONSNUMMER_SYSTEM",
    "PERSONNUMMER_SYSTEM",
    "SAMORDNINGSNUMMER_SYSTEM",
    "SECURITY_LABEL_SYSTEM",
    "SEKRETESSMARKERING",
    "SKYDDAD_FOLKBOKFORING",
    "SYSTEMS",
    "IdentifierKind",
    "identifier_of",
    "kind_of_system",
    "parse_identifier",
    "security_label",
]


class IdentifierKind(StrEnum):
    """What a Swedish identifier identifies, as this module names it."""

    PERSONNUMMER = "personnummer"
    SAMORDNINGSNUMMER = "samordningsnummer"
    ORGANISATIONSNUMMER = "organisationsnummer"
    HSA_ID = "hsa_id"


PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
ORGANISATIONSNUMMER_SYSTEM = "urn:oid:2.5.4.97"
HSA_ID_SYSTEM = "urn:oid:1.2.752.29.4.19"

#: The SE-base CodeSystem of security labels and its two codes for a protected identity.
SECURITY_LABEL_SYSTEM = "http://hl7.se/fhir/ig/base/CodeSystem/SecurityLabel"
SEKRETESSMARKERING = "sekretessmarkering"
SKYDDAD_FOLKBOKFORING = "skyddadFolkbokforing"

#: The system each kind is written with on output (SE-base's).
SYSTEMS: dict[IdentifierKind, str] = {
    IdentifierKind.PERSONNUMMER: PERSONNUMMER_SYSTEM,
    IdentifierKind.SAMORDNINGSNUMMER: SAMORDNINGSNUMMER_SYSTEM,
    IdentifierKind.ORGANISATIONSNUMMER: ORGANISATIONSNUMMER_SYSTEM,
    IdentifierKind.HSA_ID: HSA_ID_SYSTEM,
}

# Every system accepted on input: SE-base's and Inera's OIDs for the same identifiers.
_ACCEPTED: dict[str, IdentifierKind] = {
    **{system: kind for kind, system in SYSTEMS.items()},
    "urn:oid:1.2.752.129.2.1.3.1": IdentifierKind.PERSONNUMMER,
    "urn:oid:1.2.752.129.2.1.3.3": IdentifierKind.SAMORDNINGSNUMMER,
    "urn:oid:1.2.752.129.2.1.4.1": IdentifierKind.HSA_ID,
}

_SAMORDNING_OFFSET = 60


def kind_of_system(system: str) -> IdentifierKind:
    """The kind of identifier a system URI names; ``unknown_system`` if none we know."""
    kind = _ACCEPTED.get(system.strip())
    if kind is None:
        raise IdentifierError("unknown_system", "The identifier system is not one we accept.")
    return kind


def _person_number(value: str, kind: IdentifierKind) -> str:
    normalised = normalise_personnummer(value)
    samordning = int(normalised[6:8]) > _SAMORDNING_OFFSET
    if kind is IdentifierKind.PERSONNUMMER and samordning:
        raise IdentifierError(
            "not_personnummer", "A samordningsnummer was given under the personnummer system."
        )
    if kind is IdentifierKind.SAMORDNINGSNUMMER and not samordning:
        raise IdentifierError(
            "not_samordningsnummer",
            "A personnummer was given under the samordningsnummer system.",
        )
    return normalised


def _normalise(kind: IdentifierKind, value: str) -> str:
    if kind in (IdentifierKind.PERSONNUMMER, IdentifierKind.SAMORDNINGSNUMMER):
        return _person_number(value, kind)
    if kind is IdentifierKind.ORGANISATIONSNUMMER:
        return normalise_orgnr(value)
    return normalise_hsa_id(value)


def parse_identifier(system: str, value: str) -> tuple[IdentifierKind, str]:
    """The kind and canonical value of a FHIR identifier (``system``, ``value``).

    Canonical values: ``YYYYMMDDNNNN`` (personnummer, samordningsnummer), ``NNNNNN-NNNN``
    (organisationsnummer), the HSA-id as written. Raises :class:`IdentifierError`:
    ``unknown_system``, the value's own rule (``luhn``, ``date``, ``format``, ...), or
    ``not_personnummer`` / ``not_samordningsnummer`` for one under the other's system.
    """
    kind = kind_of_system(system)
    return kind, _normalise(kind, value)


def identifier_of(kind: IdentifierKind | str, value: str) -> dict[str, str]:
    """A FHIR ``Identifier`` (``system``, ``value``) for output: SE-base's system and the
    canonical value; the value is checked as :func:`parse_identifier` does."""
    kind = IdentifierKind(kind)
    return {"system": SYSTEMS[kind], "value": _normalise(kind, value)}


def security_label(code: str = SEKRETESSMARKERING) -> dict[str, str]:
    """The SE-base ``meta.security`` Coding marking a protected identity."""
    if code not in (SEKRETESSMARKERING, SKYDDAD_FOLKBOKFORING):
        raise ValueError(f"not an SE-base security label code: {code!r}")
    return {"system": SECURITY_LABEL_SYSTEM, "code": code}

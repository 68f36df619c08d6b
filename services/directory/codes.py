"""The directory's code lists, with Swedish labels for people and exports.

Codes are stable ASCII identifiers stored and sent; labels may change. A list grows by
adding a member here (and a label); codes are never reused for another meaning.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

# The interventions list is shared with the referral service (needs are interventions).
from shared.domain.codes import INTERVENTION_LABELS, Intervention

__all__ = ["INTERVENTION_LABELS", "Intervention", "label"]


class UnitKind(enum.StrEnum):
    """What kind of unit/function this is."""

    REMISSPORT = "remissport"
    BEROENDEMOTTAGNING = "beroendemottagning"
    VUXENPSYKIATRI = "vuxenpsykiatri"
    PSYKOSENHET = "psykosenhet"
    AKUTPSYKIATRI = "akutpsykiatri"
    PRIMARVARD = "primarvard"
    SOCIALTJANSTENS_MOTTAGNING = "socialtjanstens_mottagning"
    MYNDIGHETSUTOVNING_VUXNA = "myndighetsutovning_vuxna"
    BOENDESTOD = "boendestod"
    SYSSELSATTNING = "sysselsattning"
    BEHANDLINGSHEM_HVB = "behandlingshem_hvb"
    HELDYGNSVARD = "heldygnsvard"
    INTEGRERAD_BEROENDEMOTTAGNING = "integrerad_beroendemottagning"
    ANHORIGSTOD = "anhorigstod"
    VARDKEDJEKOORDINATOR = "vardkedjekoordinator"
    BARN_OCH_UNGDOM = "barn_och_ungdom"
    MOTTAGNING_UNGA_VUXNA = "mottagning_unga_vuxna"


UNIT_KIND_LABELS: dict[UnitKind, str] = {
    UnitKind.REMISSPORT: "Remissport",
    UnitKind.BEROENDEMOTTAGNING: "Beroendemottagning",
    UnitKind.VUXENPSYKIATRI: "Vuxenpsykiatri",
    UnitKind.PSYKOSENHET: "Psykosenhet",
    UnitKind.AKUTPSYKIATRI: "Akutpsykiatri",
    UnitKind.PRIMARVARD: "Primärvård",
    UnitKind.SOCIALTJANSTENS_MOTTAGNING: "Socialtjänstens mottagning",
    UnitKind.MYNDIGHETSUTOVNING_VUXNA: "Myndighetsutövning vuxna",
    UnitKind.BOENDESTOD: "Boendestöd",
    UnitKind.SYSSELSATTNING: "Sysselsättning",
    UnitKind.BEHANDLINGSHEM_HVB: "Behandlingshem/HVB",
    UnitKind.HELDYGNSVARD: "Heldygnsvård",
    UnitKind.INTEGRERAD_BEROENDEMOTTAGNING: "Integrerad beroendemottagning",
    UnitKind.ANHORIGSTOD: "Anhörigstöd",
    UnitKind.VARDKEDJEKOORDINATOR: "Vårdkedjekoordinator",
    UnitKind.BARN_OCH_UNGDOM: "Barn och ungdom",
    UnitKind.MOTTAGNING_UNGA_VUXNA: "Mottagning för unga vuxna",
}

# Kinds that take in new cases for a member: the routing fallback (issue 3, point 5).
INTAKE_KINDS: frozenset[UnitKind] = frozenset(
    {UnitKind.REMISSPORT, UnitKind.SOCIALTJANSTENS_MOTTAGNING}
)


class Channel(enum.StrEnum):
    """How a contact path reaches the function."""

    PHONE = "phone"
    FUNCTIONAL_EMAIL = "functional_email"
    SECURE_MAIL = "secure_mail"
    POSTAL_ADDRESS = "postal_address"
    INBOX = "inbox"


CHANNEL_LABELS: dict[Channel, str] = {
    Channel.PHONE: "Telefon",
    Channel.FUNCTIONAL_EMAIL: "Funktionsbrevlåda (e-post)",
    Channel.SECURE_MAIL: "Säker e-post",
    Channel.POSTAL_ADDRESS: "Postadress",
    Channel.INBOX: "Enhetens inkorg i vårdkedjan",
}


class UnitStatus(enum.StrEnum):
    ACTIVE = "active"
    TEMPORARILY_CLOSED = "temporarily_closed"
    INACTIVE = "inactive"


def label(labels: Mapping[Any, str], code: str) -> str:
    """The label of ``code`` in ``labels`` (keyed by a code list's members, which compare
    as their codes), or the code itself when the list does not know it (a newer member's)."""
    return labels.get(code, code)

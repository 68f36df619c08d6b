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
from shared.domain.labelled import LabelledEnum, labels

__all__ = ["INTERVENTION_LABELS", "Intervention", "label"]


class UnitKind(LabelledEnum):
    """What kind of unit/function this is."""

    REMISSPORT = "remissport", "Remissport"
    BEROENDEMOTTAGNING = "beroendemottagning", "Beroendemottagning"
    VUXENPSYKIATRI = "vuxenpsykiatri", "Vuxenpsykiatri"
    PSYKOSENHET = "psykosenhet", "Psykosenhet"
    AKUTPSYKIATRI = "akutpsykiatri", "Akutpsykiatri"
    PRIMARVARD = "primarvard", "Primärvård"
    SOCIALTJANSTENS_MOTTAGNING = "socialtjanstens_mottagning", "Socialtjänstens mottagning"
    MYNDIGHETSUTOVNING_VUXNA = "myndighetsutovning_vuxna", "Myndighetsutövning vuxna"
    BOENDESTOD = "boendestod", "Boendestöd"
    SYSSELSATTNING = "sysselsattning", "Sysselsättning"
    BEHANDLINGSHEM_HVB = "behandlingshem_hvb", "Behandlingshem/HVB"
    HELDYGNSVARD = "heldygnsvard", "Heldygnsvård"
    INTEGRERAD_BEROENDEMOTTAGNING = "integrerad_beroendemottagning", "Integrerad beroendemottagning"
    ANHORIGSTOD = "anhorigstod", "Anhörigstöd"
    VARDKEDJEKOORDINATOR = "vardkedjekoordinator", "Vårdkedjekoordinator"
    BARN_OCH_UNGDOM = "barn_och_ungdom", "Barn och ungdom"
    MOTTAGNING_UNGA_VUXNA = "mottagning_unga_vuxna", "Mottagning för unga vuxna"
    BARN_OCH_FAMILJ = "barn_och_familj", "Barn och familj (socialtjänsten)"
    SOCIALJOUR = "socialjour", "Socialjour"


UNIT_KIND_LABELS: dict[UnitKind, str] = labels(UnitKind)

# Kinds that take in new cases for a member: the routing fallback (issue 3, point 5).
INTAKE_KINDS: frozenset[UnitKind] = frozenset(
    {UnitKind.REMISSPORT, UnitKind.SOCIALTJANSTENS_MOTTAGNING}
)


class Channel(LabelledEnum):
    """How a contact path reaches the function."""

    PHONE = "phone", "Telefon"
    FUNCTIONAL_EMAIL = "functional_email", "Funktionsbrevlåda (e-post)"
    SECURE_MAIL = "secure_mail", "Säker e-post"
    POSTAL_ADDRESS = "postal_address", "Postadress"
    INBOX = "inbox", "Enhetens inkorg i vårdkedjan"


CHANNEL_LABELS: dict[Channel, str] = labels(Channel)


class UnitStatus(enum.StrEnum):
    ACTIVE = "active"
    TEMPORARILY_CLOSED = "temporarily_closed"
    INACTIVE = "inactive"


def label(labels: Mapping[Any, str], code: str) -> str:
    """The label of ``code`` in ``labels`` (keyed by a code list's members, which compare
    as their codes), or the code itself when the list does not know it (a newer member's)."""
    return labels.get(code, code)

"""Code lists of the consent service: purposes, information categories, forms, legal bases.

Values are the domain's own words in ASCII (``vardkedjeremiss``, ``osl_25_12``); the labels
are what a person reads in a decision's reasons and the audit extract.
"""

from __future__ import annotations

import enum

from shared.domain.codes import LegalBasis
from shared.domain.kinds import purposes
from shared.domain.labelled import LabelledEnum, labels

PURPOSE_LABELS: dict[str, str] = purposes()
"""Every purpose a sharing may serve and how a person reads it: each kind of referral's
(the kinds registry, ``shared/domain/kinds.py``) and the coordination of the care chain."""

Purpose = enum.StrEnum("Purpose", {p.upper(): p for p in PURPOSE_LABELS})  # type: ignore[misc]
"""The cooperation a sharing serves (derived from :data:`PURPOSE_LABELS`)."""


class Category(LabelledEnum):
    """A kind of information about the person."""

    CONTACT_DETAILS = "contact_details", "kontaktuppgifter"
    NEEDS_SUMMARY = "needs_summary", "behov och sammanfattning"
    DIAGNOSES = "diagnoses", "diagnoser"
    MEDICATION = "medication", "läkemedel"
    SOCIAL_SITUATION = "social_situation", "social situation"
    PLAN = "plan", "plan"


CATEGORY_LABELS: dict[str, str] = {str(c): label for c, label in labels(Category).items()}


class ConsentForm(enum.StrEnum):
    """How the consent was given."""

    WRITTEN = "written"
    ORAL = "oral"
    DIGITAL = "digital"


class GiverKind(enum.StrEnum):
    """Who gave (or withdrew) the consent: the person or a legal representative."""

    PERSON = "person"
    GUARDIAN = "guardian"  # vårdnadshavare
    GOD_MAN = "god_man"
    FORVALTARE = "forvaltare"


class WithdrawerKind(enum.StrEnum):
    """Who withdrew a consent (a representative, or staff recording the person's wish)."""

    PERSON = "person"
    GUARDIAN = "guardian"
    GOD_MAN = "god_man"
    FORVALTARE = "forvaltare"
    STAFF = "staff"


class ConsentStatus(enum.StrEnum):
    """The life of a consent: active until withdrawn, expired or superseded (all final)."""

    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class RecordStatus(enum.StrEnum):
    """Refusals and blocks stand until revoked (refusal) or removed (block)."""

    ACTIVE = "active"
    REVOKED = "revoked"
    REMOVED = "removed"


LEGAL_BASIS_LABELS: dict[str, str] = {
    LegalBasis.OSL_25_12: "OSL 25 kap. 12 § (hälso- och sjukvård till socialtjänst)",
    LegalBasis.OSL_26_9: "OSL 26 kap. 9 § (socialtjänst till hälso- och sjukvård)",
    LegalBasis.LVM_ANMALAN: "anmälningsskyldighet enligt LVM",
    LegalBasis.OROSANMALAN: "orosanmälan om barn",
    LegalBasis.NODSITUATION: "akut nödsituation",
}


class Verdict(enum.StrEnum):
    """A decision's answer."""

    ALLOWED = "allowed"
    DENIED = "denied"
    REFUSED = "refused"

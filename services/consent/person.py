"""The person key: how the consent service finds a person's records without scanning.

``person_key`` is an HMAC-SHA256 of the normalised personnummer (or samordningsnummer)
under this member's secret (``VK_CONSENT__PERSON_KEY_SECRET``): stable, indexable, and
useless to anyone without the secret. Keys differ between members, so events to other
members carry the personnummer where the receiver must match a referral and the receiver
keeps only its own key (ADR 0011).
"""

from __future__ import annotations

import datetime as dt

from shared.config import Settings
from shared.identity.person import DEVELOPMENT_SECRET, PersonKeyConfigError, person_key
from shared.identity.person import member_secret as secret_of

__all__ = [
    "DEVELOPMENT_SECRET",
    "PersonKeyConfigError",
    "birth_date",
    "key_of",
    "person_key",
    "secret_of",
]


def key_of(*, settings: Settings, personnummer: str) -> str:
    """The person key of ``personnummer`` under this member's secret."""
    return person_key(secret_of(settings), personnummer)


def birth_date(personnummer: str) -> dt.date:
    """The birth date of a normalised personnummer or samordningsnummer (day minus 60)."""
    day = int(personnummer[6:8])
    return dt.date(int(personnummer[:4]), int(personnummer[4:6]), day - 60 if day > 60 else day)

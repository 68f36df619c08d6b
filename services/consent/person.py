"""The person key: how the consent service finds a person's records without scanning.

``person_key`` is an HMAC-SHA256 of the normalised personnummer (or samordningsnummer)
under this member's secret (``VK_CONSENT__PERSON_KEY_SECRET``): stable, indexable, and
useless to anyone without the secret. Keys differ between members, so events to other
members carry the personnummer where the receiver must match a referral and the receiver
keeps only its own key (ADR 0011).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from shared.config import ConsentSettings, Settings
from shared.identifiers import normalise_personnummer

DEVELOPMENT_SECRET = ConsentSettings.model_fields["person_key_secret"].default


class PersonKeyConfigError(RuntimeError):
    """Raised in production when the person-key secret is still the development value."""


def secret_of(settings: Settings) -> bytes:
    """The member's person-key secret; refuses the development value in production."""
    secret = settings.consent.person_key_secret
    if settings.env == "production" and secret == DEVELOPMENT_SECRET:
        raise PersonKeyConfigError("set VK_CONSENT__PERSON_KEY_SECRET in production")
    return secret.encode()


def person_key(secret: bytes, personnummer: str) -> str:
    """The lookup key of a personnummer (normalised first, so every spelling agrees)."""
    number = normalise_personnummer(personnummer)
    return hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()


def birth_date(personnummer: str) -> dt.date:
    """The birth date of a normalised personnummer or samordningsnummer (day minus 60)."""
    day = int(personnummer[6:8])
    return dt.date(int(personnummer[:4]), int(personnummer[4:6]), day - 60 if day > 60 else day)

"""The person key: how a service finds a person's records without scanning or storing the
personnummer in an index.

``person_key`` is an HMAC-SHA256 of the normalised personnummer (or samordningsnummer)
under the member's secret (``VK_CONSENT__PERSON_KEY_SECRET``, shared by the member's
services): stable, indexable, and useless to anyone without the secret (ADR 0011).
"""

from __future__ import annotations

import hashlib
import hmac

from shared.config import ConsentSettings, Settings
from shared.identity.identifiers import normalise_personnummer

DEVELOPMENT_SECRET: str = ConsentSettings.model_fields["person_key_secret"].default


class PersonKeyConfigError(RuntimeError):
    """Raised in production when the person-key secret is still the development value."""


def member_secret(settings: Settings) -> bytes:
    """The member's person-key secret; refuses the development value in production."""
    secret = settings.consent.person_key_secret
    if settings.env == "production" and secret == DEVELOPMENT_SECRET:
        raise PersonKeyConfigError("set VK_CONSENT__PERSON_KEY_SECRET in production")
    return secret.encode()


def person_key(secret: bytes, personnummer: str) -> str:
    """The lookup key of a personnummer (normalised first, so every spelling agrees)."""
    number = normalise_personnummer(personnummer)
    return hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()

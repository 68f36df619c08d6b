"""The person key: one key per person whatever the spelling, a different key per member
secret, birth dates of samordningsnummer, and no development secret in production."""

from __future__ import annotations

import datetime as dt

import pytest

from services.consent.person import (
    PersonKeyConfigError,
    birth_date,
    person_key,
    secret_of,
)
from shared.config import ConsentSettings
from shared.identity.identifiers import IdentifierError
from tests.conftest import make_settings


def test_every_spelling_of_a_number_has_one_key() -> None:
    keys = {
        person_key(b"member-secret", n)
        for n in ("191212121212", "19121212-1212", "121212+1212", " 191212121212 ")
    }
    assert len(keys) == 1
    [key] = keys
    assert len(key) == 64


def test_another_members_secret_gives_another_key() -> None:
    assert person_key(b"secret-of-vaxjo", "191212121212") != person_key(
        b"secret-of-region", "191212121212"
    )


def test_an_invalid_number_has_no_key() -> None:
    with pytest.raises(IdentifierError):
        person_key(b"member-secret", "191212121213")


def test_birth_dates() -> None:
    assert birth_date("191212121212") == dt.date(1912, 12, 12)
    assert birth_date("199001721234") == dt.date(1990, 1, 12)  # samordningsnummer: day + 60


def test_the_development_secret_is_refused_in_production() -> None:
    dev = make_settings(service="consent")
    assert secret_of(dev) == b"vardkedja-development-person-key"
    production = dev.model_copy(update={"env": "production"})
    with pytest.raises(PersonKeyConfigError):
        secret_of(production)
    own = production.model_copy(
        update={"consent": ConsentSettings(person_key_secret="a-real-secret-from-the-vault")}
    )
    assert secret_of(own) == b"a-real-secret-from-the-vault"

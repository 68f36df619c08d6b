"""Tests of shared.identity.identifiers: personnummer, organisationsnummer, kommunkod, types.

Personnummer here are fictitious: 19121212-1212 is Skatteverket's well-known test number
and the rest are built from 1212/1312-style dates with a computed check digit.
"""

from __future__ import annotations

import datetime as dt
import pickle
import re
from functools import partial
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.identity.identifiers import (
    IdentifierError,
    Kommunkod,
    Organisationsnummer,
    Personnummer,
    all_kommuner,
    counties,
    is_samordningsnummer,
    kommun,
    mask_personnummer,
    normalise_kommunkod,
    normalise_orgnr,
    normalise_personnummer,
)
from shared.identity.identifiers.types import REDACTED

# A fixed "today" so century inference and the future-date rule are deterministic.
TODAY = dt.date(2025, 6, 15)

# --- personnummer -------------------------------------------------------------------------

VALID_PERSONNUMMER = [
    ("19121212-1212", "191212121212"),
    ("191212121212", "191212121212"),
    ("  19121212-1212\n", "191212121212"),
    # 10 digits: the most recent century not in the future; '+' is 100 years earlier.
    ("121212-1212", "201212121212"),
    ("1212121212", "201212121212"),
    ("121212+1212", "191212121212"),
    # Born today is this century; a birthday tomorrow means 100 years ago.
    ("250615-1238", "202506151238"),
    ("250616-1237", "192506161237"),
    ("250614-1239", "202506141239"),
    # 29 February exists in 2000 ...
    ("000229-1235", "200002291235"),
    ("20000229-1235", "200002291235"),
    # Samordningsnummer: day of month + 60.
    ("19121272-1235", "191212721235"),
    ("121272-1235", "201212721235"),
    ("121272+1235", "191212721235"),
]

INVALID_PERSONNUMMER = [
    # (value, rule)
    ("19121212-1213", "luhn"),
    ("121212-1213", "luhn"),
    ("191212121213", "luhn"),
    ("19120230-1238", "date"),  # 30 February
    ("19121312-1237", "date"),  # month 13
    ("19120132-1237", "date"),  # day 32
    ("19121260-1239", "date"),  # day 60: neither a day nor a samordningsnummer day
    ("19121292-1231", "date"),  # samordningsnummer day 32
    ("19120290-1235", "date"),  # samordningsnummer 30 February
    ("000229+1235", "date"),  # 1900 was not a leap year
    ("20250616-1237", "date"),  # tomorrow
    ("00121212-1232", "date"),  # year 12: no living or registered person
    ("", "length"),
    ("12121212", "length"),
    ("1912121212123", "length"),
    ("19121212-12121", "length"),
    ("19121212-121A", "format"),
    ("abcdefghij", "format"),
    ("19121212 1212", "format"),
    ("19121212/1212", "format"),
    ("١٢١٢١٢-١٢١٢", "format"),  # Arabic-Indic digits are not ASCII digits
    ("19121212+1212", "separator"),  # '+' with an explicit century
    ("1912-12121212", "separator"),
    ("121212--1212", "separator"),
    ("12121-21212", "separator"),
    ("-1212121212", "separator"),
]


@pytest.mark.parametrize(("value", "expected"), VALID_PERSONNUMMER)
def test_valid_personnummer_normalises(value: str, expected: str) -> None:
    assert normalise_personnummer(value, today=TODAY) == expected


@pytest.mark.parametrize(("value", "rule"), INVALID_PERSONNUMMER)
def test_invalid_personnummer_names_the_rule(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_personnummer(value, today=TODAY)
    assert info.value.rule == rule
    assert info.value.message == str(info.value)


def test_personnummer_default_today_is_the_real_date() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    base = tomorrow.strftime("%Y%m%d") + "123"
    # Any check digit: the date rule is checked first.
    with pytest.raises(IdentifierError) as info:
        normalise_personnummer(base + "0")
    assert info.value.rule == "date"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19121272-1235", True),
        ("121272+1235", True),
        ("19121212-1212", False),
        ("191212121212", False),
    ],
)
def test_is_samordningsnummer(value: str, expected: bool) -> None:
    assert is_samordningsnummer(value) is expected


def test_is_samordningsnummer_rejects_invalid() -> None:
    with pytest.raises(IdentifierError):
        is_samordningsnummer("19121272-1236")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19121212-1212", "19121212-****"),
        ("121212+1212", "19121212-****"),
        ("191212721235", "19121272-****"),
    ],
)
def test_mask_personnummer(value: str, expected: str) -> None:
    assert mask_personnummer(value) == expected


def test_mask_personnummer_rejects_invalid() -> None:
    with pytest.raises(IdentifierError) as info:
        mask_personnummer("19121212-1213")
    assert info.value.rule == "luhn"


# --- organisationsnummer ------------------------------------------------------------------

VALID_ORGNR = [
    ("232100-0065", "232100-0065"),  # Region Kronoberg
    ("2321000065", "232100-0065"),
    ("16232100-0065", "232100-0065"),
    ("162321000065", "232100-0065"),
    (" 212000-0647 ", "212000-0647"),  # Växjö kommun
    ("212000-0613", "212000-0613"),  # Alvesta kommun
]

INVALID_ORGNR = [
    ("232100-0066", "luhn"),
    ("2321000064", "luhn"),
    ("16232100-0066", "luhn"),
    ("232100-006", "length"),
    ("232100-00655", "length"),
    ("23210000655555", "length"),
    ("", "length"),
    ("ab2100-0065", "format"),
    ("232100+0065", "format"),
    ("232100 0065", "format"),
    ("172321000065", "format"),  # 12 digits without the 16 prefix
    ("191212121212", "format"),  # a 12-digit personnummer
    ("2321-000065", "separator"),
    ("232100--0065", "separator"),
    ("121212-1212", "legal_entity"),  # a personnummer: third digit 1
]


@pytest.mark.parametrize(("value", "expected"), VALID_ORGNR)
def test_valid_orgnr_normalises(value: str, expected: str) -> None:
    assert normalise_orgnr(value) == expected


@pytest.mark.parametrize(("value", "rule"), INVALID_ORGNR)
def test_invalid_orgnr_names_the_rule(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_orgnr(value)
    assert info.value.rule == rule


# --- kommunkod ----------------------------------------------------------------------------

VALID_KOMMUNKOD = [
    ("0780", "0780"),  # Växjö
    ("0764", "0764"),  # Alvesta
    ("2085", "2085"),  # Ludvika
    (" 0780 ", "0780"),
]

INVALID_KOMMUNKOD = [
    ("0000", "unknown_kommunkod"),
    ("9999", "unknown_kommunkod"),
    ("0700", "unknown_kommunkod"),
    ("780", "length"),
    ("07800", "length"),
    ("", "length"),
    ("abcd", "format"),
    ("07 80", "format"),
    ("-780", "format"),
    ("٠٧٨٠", "format"),  # Arabic-Indic digits
]


@pytest.mark.parametrize(("value", "expected"), VALID_KOMMUNKOD)
def test_valid_kommunkod_normalises(value: str, expected: str) -> None:
    assert normalise_kommunkod(value) == expected


@pytest.mark.parametrize(("value", "rule"), INVALID_KOMMUNKOD)
def test_invalid_kommunkod_names_the_rule(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_kommunkod(value)
    assert info.value.rule == rule


@pytest.mark.parametrize(
    ("code", "short_name", "county_code", "county_name"),
    [
        ("0780", "Växjö", "07", "Kronobergs län"),
        ("0764", "Alvesta", "07", "Kronobergs län"),
        ("2085", "Ludvika", "20", "Dalarnas län"),
    ],
)
def test_kommun_lookup(code: str, short_name: str, county_code: str, county_name: str) -> None:
    found = kommun(code)
    assert (found.code, found.short_name, found.county_code, found.county_name) == (
        code,
        short_name,
        county_code,
        county_name,
    )
    assert found.name == f"{short_name} kommun"


@pytest.mark.parametrize("code", ["0000", "9999"])
def test_kommun_unknown_code(code: str) -> None:
    with pytest.raises(IdentifierError) as info:
        kommun(code)
    assert info.value.rule == "unknown_kommunkod"


def test_there_are_290_kommuner_and_21_counties() -> None:
    assert len(all_kommuner()) == 290
    assert len({k.code for k in all_kommuner()}) == 290
    assert len(counties()) == 21
    assert len({c.code for c in counties()}) == 21


def test_every_kommun_is_in_an_existing_county() -> None:
    by_code = {c.code: c for c in counties()}
    for k in all_kommuner():
        assert re.fullmatch(r"[0-9]{4}", k.code)
        assert k.county_code in by_code
        assert k.county_name == by_code[k.county_code].name
        # SCB codes begin with the county code.
        assert k.code.startswith(k.county_code)
        assert normalise_kommunkod(k.code) == k.code


def test_every_county_has_a_kommun() -> None:
    assert {c.code for c in counties()} == {k.county_code for k in all_kommuner()}


def test_lists_are_loaded_once() -> None:
    assert all_kommuner() is all_kommuner()
    assert counties() is counties()


# --- IdentifierError ----------------------------------------------------------------------


def _all_invalid() -> list[tuple[Any, str]]:
    return (
        [(partial(normalise_personnummer, today=TODAY), v) for v, _ in INVALID_PERSONNUMMER]
        + [(normalise_orgnr, v) for v, _ in INVALID_ORGNR]
        + [(normalise_kommunkod, v) for v, _ in INVALID_KOMMUNKOD]
    )


@pytest.mark.parametrize(("normalise", "value"), _all_invalid())
def test_error_message_never_contains_the_input(normalise: Any, value: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise(value)
    text = value.strip()
    if text:
        assert text not in info.value.message
        assert text not in str(info.value)
        assert text not in repr(info.value)
    digits = re.sub(r"[^0-9]", "", value)
    if len(digits) >= 3:
        assert digits not in info.value.message


def test_identifier_error_is_a_value_error_and_pickles() -> None:
    err = IdentifierError("luhn", "The check digit is wrong.")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object
    assert (copy.rule, copy.message) == ("luhn", "The check digit is wrong.")


# --- Pydantic types -----------------------------------------------------------------------


class Person(BaseModel):
    """A model with the three types and pydantic's default config (inputs not hidden)."""

    personnummer: Personnummer
    orgnr: Organisationsnummer
    kommunkod: Kommunkod


class Many(BaseModel):
    personnummer: list[Personnummer]


VALID_PERSON = {"personnummer": "19121212-1212", "orgnr": "2321000065", "kommunkod": "0780"}


def test_model_normalises_valid_input() -> None:
    person = Person(**VALID_PERSON)
    assert (person.personnummer, person.orgnr, person.kommunkod) == (
        "191212121212",
        "232100-0065",
        "0780",
    )


def test_model_normalises_json_input() -> None:
    person = Person.model_validate_json(
        '{"personnummer": "121212+1212", "orgnr": "16212000-0647", "kommunkod": "2085"}'
    )
    assert person.model_dump() == {
        "personnummer": "191212121212",
        "orgnr": "212000-0647",
        "kommunkod": "2085",
    }


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("personnummer", "19121212-1213", "luhn"),
        ("personnummer", "19120230-1238", "date"),
        ("personnummer", "19121212-121A", "format"),
        ("personnummer", "19121212+1212", "separator"),
        ("personnummer", "1912121212123", "length"),
        ("personnummer", 191212121212, "string_type"),
        ("orgnr", "232100-0066", "luhn"),
        ("orgnr", "121212-1212", "legal_entity"),
        ("orgnr", "232100-006", "length"),
        ("kommunkod", "9999", "unknown_kommunkod"),
        ("kommunkod", "780", "length"),
        ("kommunkod", "abcd", "format"),
    ],
)
def test_model_error_has_rule_as_type_and_hides_input(field: str, value: Any, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        Person(**{**VALID_PERSON, field: value})
    errors = info.value.errors()
    assert len(errors) == 1
    error = errors[0]
    assert error["loc"] == (field,)
    assert error["type"] == rule
    assert error["input"] == REDACTED
    submitted = str(value)
    assert submitted not in error["msg"]
    assert submitted not in str(info.value)
    assert submitted not in repr(info.value)
    assert submitted not in info.value.json()


def test_model_error_in_a_list_keeps_location_and_hides_input() -> None:
    with pytest.raises(ValidationError) as info:
        Many(personnummer=["19121212-1212", "19121212-1213"])
    (error,) = info.value.errors()
    assert error["loc"] == ("personnummer", 1)
    assert error["type"] == "luhn"
    assert "19121212-1213" not in str(info.value)


def test_json_schema_documents_pattern_and_example() -> None:
    validation = Person.model_json_schema(mode="validation")["properties"]
    serialization = Person.model_json_schema(mode="serialization")["properties"]
    assert "19121212-1212" in validation["personnummer"]["examples"]
    for field, normalise in [
        ("personnummer", normalise_personnummer),
        ("orgnr", normalise_orgnr),
        ("kommunkod", normalise_kommunkod),
    ]:
        for schema in (validation[field], serialization[field]):
            assert schema["type"] == "string"
            assert schema["description"]
            assert schema["examples"]
        # Input examples pass the input pattern and validate; output examples are canonical.
        for example in validation[field]["examples"]:
            assert re.fullmatch(validation[field]["pattern"], example)
            canonical = normalise(example)
            assert re.fullmatch(serialization[field]["pattern"], canonical)
        for example in serialization[field]["examples"]:
            assert normalise(example) == example

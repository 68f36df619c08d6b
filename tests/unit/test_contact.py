"""Tests of shared.domain.contact: Swedish phone numbers, e-mail and secure-mail addresses,
postcodes and postal addresses. The numbers are made up; none is meant to be called.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.domain.contact import (
    SHORT_NUMBERS,
    ContactValueError,
    FunctionalEmail,
    PostalAddress,
    Postnummer,
    SecureMailAddress,
    SwedishPhone,
    normalise_email,
    normalise_phone,
    normalise_postnummer,
)
from shared.identity.identifiers.types import REDACTED


class Contact(BaseModel):
    phone: SwedishPhone | None = None
    email: FunctionalEmail | None = None
    secure_mail: SecureMailAddress | None = None
    postcode: Postnummer | None = None


def assert_refused(field: str, value: Any, rule: str) -> None:
    """``value`` in ``field`` fails with ``rule``, and the value shows nowhere."""
    with pytest.raises(ValidationError) as info:
        Contact(**{field: value})
    (error,) = info.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] == rule
    assert error["input"] == REDACTED
    submitted = str(value).strip()
    if submitted:
        for text in (error["msg"], str(info.value), repr(info.value), info.value.json()):
            assert submitted not in text


# --- phone -----------------------------------------------------------------------------------

VALID_PHONES = [
    # Geographic: area code + subscriber number, 7-9 digits after the 0.
    ("0470-58 60 00", "+46470586000"),
    ("0470-586000", "+46470586000"),
    ("0470 58 60 00", "+46470586000"),
    ("0470/58 60 00", "+46470586000"),
    ("0470–58 60 00", "+46470586000"),  # en dash
    ("0470\u00a058\u00a060\u00a000", "+46470586000"),  # no-break spaces
    ("(0470) 58 60 00", "+46470586000"),
    ("08-123 456 78", "+46812345678"),
    ("08-12 34 56", "+468123456"),  # 7 digits, the shortest
    ("031-123 45 67", "+46311234567"),
    ("046-12 34 56", "+4646123456"),  # Lund's 046 is an area code, not a country code
    ("0980-123 45", "+4698012345"),
    # International notation.
    ("+46 470 58 60 00", "+46470586000"),
    ("+46470586000", "+46470586000"),
    ("+46 (0)470 58 60 00", "+46470586000"),
    ("+46 0470 58 60 00", "+46470586000"),
    ("0046 470 58 60 00", "+46470586000"),
    ("  +46 8 123 456 78 ", "+46812345678"),
    # Mobile and the rest of the 07 series, 9 digits.
    ("070-123 45 67", "+46701234567"),
    ("073-123 45 67", "+46731234567"),
    ("+46 76 123 45 67", "+46761234567"),
    ("0771-123 456", "+46771123456"),  # shared cost
    # 010: nationwide numbers, 9 digits.
    ("010-123 45 67", "+46101234567"),
    # Freephone 020 / 0200: 6-9 digits.
    ("020-123 123", "+4620123123"),
    ("0200-12 34 56", "+46200123456"),
    ("020-1234", "+46201234"),
    # Short numbers stay as they are dialled.
    ("112", "112"),
    ("1177", "1177"),
    ("114 14", "11414"),
    ("11414", "11414"),
    ("113 13", "11313"),
]

INVALID_PHONES = [
    ("0470-58 60 0A", "phone_format"),
    ("tel 0470586000", "phone_format"),
    ("0470-58 60 00 ankn 12", "phone_format"),
    ("046+470586000", "phone_format"),
    ("470586000", "phone_format"),  # no trunk 0 or +46
    ("1234", "phone_format"),  # not a listed short number
    ("118 118", "phone_format"),  # a real short number, but not on the list
    ("+46 00 470 58 60", "phone_format"),
    ("0470-58 60 00\u0660", "phone_format"),  # Arabic-Indic digit
    ("   ", "phone_format"),
    ("0470-58 6", "phone_length"),  # 6 digits after the 0
    ("08-123 456 789", "phone_length"),  # 10 digits after the 0
    ("070-123 45 6", "phone_length"),  # mobile needs exactly 9
    ("070-123 45 678", "phone_length"),
    ("010-123 45 6", "phone_length"),
    ("020-123", "phone_length"),
    ("+46 1177", "phone_length"),  # short numbers are national only
    ("+4", "phone_length"),
    ("0" * 41, "phone_length"),
    ("+47 22 00 00 00", "country"),
    ("+45 33 12 34 56", "country"),
    ("0047 22 00 00 00", "country"),
    ("+1 202 555 0100", "country"),
    ("+358 9 123 4567", "country"),
]


class TestSwedishPhone:
    @pytest.mark.parametrize(("raw", "normalised"), VALID_PHONES)
    def test_valid_is_normalised(self, raw: str, normalised: str) -> None:
        assert normalise_phone(raw) == normalised
        assert Contact(phone=raw).phone == normalised

    @pytest.mark.parametrize(("raw", "normalised"), VALID_PHONES)
    def test_normalised_form_is_accepted_unchanged(self, raw: str, normalised: str) -> None:
        assert normalise_phone(normalised) == normalised

    @pytest.mark.parametrize(("raw", "rule"), INVALID_PHONES)
    def test_invalid_is_refused_with_rule_and_no_echo(self, raw: str, rule: str) -> None:
        with pytest.raises(ContactValueError) as info:
            normalise_phone(raw)
        assert info.value.rule == rule
        assert_refused("phone", raw, rule)

    def test_short_numbers(self) -> None:
        assert {"112", "1177", "11414", "11313"} == SHORT_NUMBERS

    def test_non_string_is_refused_without_echo(self) -> None:
        assert_refused("phone", 46470586000, "string_type")

    def test_json_schema_documents_input_and_output(self) -> None:
        validation = Contact.model_json_schema(mode="validation")["properties"]["phone"]
        serialization = Contact.model_json_schema(mode="serialization")["properties"]["phone"]
        inp, out = validation["anyOf"][0], serialization["anyOf"][0]
        for example in inp["examples"]:
            normalise_phone(example)
        for example in out["examples"]:
            assert normalise_phone(example) == example
        assert "E.164" in out["description"]


# --- e-mail ----------------------------------------------------------------------------------

VALID_EMAILS = [
    ("mottagning@vaxjo.se", "mottagning@vaxjo.se"),
    ("Mottagning@Vaxjo.SE", "Mottagning@vaxjo.se"),  # the local part keeps its case
    ("  beroende.mottagning@regionkronoberg.se\n", "beroende.mottagning@regionkronoberg.se"),
    ("socialtjanst+vuxen@kommun.se", "socialtjanst+vuxen@kommun.se"),
    ("o'brien_team-1@sub.domain.example.org", "o'brien_team-1@sub.domain.example.org"),
    ("x@xn--vxj-ula.se", "x@xn--vxj-ula.se"),  # an internationalised domain, ASCII form
    ("info@a-b.c-d.se", "info@a-b.c-d.se"),
    ("a" * 64 + "@kommun.se", "a" * 64 + "@kommun.se"),
    ("x@" + "a" * 63 + ".se", "x@" + "a" * 63 + ".se"),
]

INVALID_EMAILS = [
    "mottagning",
    "mottagning@",
    "@vaxjo.se",
    "mottagning@vaxjo",  # no dot in the domain
    "mottagning vuxen@vaxjo.se",
    "mottagning@vax jo.se",
    "mottagning@@vaxjo.se",
    "a@b@vaxjo.se",
    ".mottagning@vaxjo.se",
    "mottagning.@vaxjo.se",
    "mottag..ning@vaxjo.se",
    "mottagning@vaxjo..se",
    "mottagning@.vaxjo.se",
    "mottagning@vaxjo.se.",
    "mottagning@-vaxjo.se",
    "mottagning@vaxjo-.se",
    "mottagning@vax_jo.se",
    "mottagning@vaxjo.s",  # one-letter top-level domain
    "mottagning@vaxjo.123",  # numeric top-level domain
    "mottagning@[192.0.2.1]",
    '"mottagning"@vaxjo.se',
    "mottagning@växjö.se",  # give an internationalised domain in its xn-- form
    "mötesbokning@vaxjo.se",
    "mailto:mottagning@vaxjo.se",
    "mottagning@vaxjo.se, annan@vaxjo.se",
    "a" * 65 + "@kommun.se",  # local part over 64
    "x@" + "a" * 64 + ".se",  # label over 63
    "x@" + ".".join(["a" * 60] * 5) + ".se",  # domain over 253
    "x" * 64 + "@" + ".".join(["a" * 63] * 3) + ".se",  # address over 254
    "",
]


class TestFunctionalEmail:
    @pytest.mark.parametrize(("raw", "normalised"), VALID_EMAILS)
    def test_valid_is_normalised(self, raw: str, normalised: str) -> None:
        assert normalise_email(raw) == normalised
        assert Contact(email=raw).email == normalised

    @pytest.mark.parametrize("raw", INVALID_EMAILS)
    def test_invalid_is_refused_with_rule_and_no_echo(self, raw: str) -> None:
        with pytest.raises(ContactValueError) as info:
            normalise_email(raw)
        assert info.value.rule == "email_format"
        assert_refused("email", raw, "email_format")

    def test_docstring_states_the_policy(self) -> None:
        schema = Contact.model_json_schema()["properties"]["email"]["anyOf"][0]
        assert "never a person" in schema["description"]


class TestSecureMailAddress:
    def test_same_syntax_as_e_mail(self) -> None:
        assert Contact(secure_mail="Vuxen@SakerPost.Kommun.SE").secure_mail == (
            "Vuxen@sakerpost.kommun.se"
        )
        assert_refused("secure_mail", "vuxen@sakerpost", "email_format")

    def test_documented_as_a_secure_messaging_address(self) -> None:
        schema = Contact.model_json_schema()["properties"]["secure_mail"]["anyOf"][0]
        assert "secure messaging" in schema["description"]


# --- postcode and postal address ---------------------------------------------------------------


class TestPostnummer:
    @pytest.mark.parametrize(
        ("raw", "normalised"),
        [
            ("352 30", "352 30"),
            ("35230", "352 30"),
            (" 352 30 ", "352 30"),
            ("SE-352 30", "352 30"),
            ("se-35230", "352 30"),
            ("S-352 30", "352 30"),
            ("981 99", "981 99"),
            ("100 05", "100 05"),
        ],
    )
    def test_valid_is_normalised(self, raw: str, normalised: str) -> None:
        assert normalise_postnummer(raw) == normalised
        assert Contact(postcode=raw).postcode == normalised

    @pytest.mark.parametrize(
        "raw",
        ["3523", "352300", "052 30", "352-30", "35 230", "352  30", "ABC DE", "DK-2100", "352 3O"],
    )
    def test_invalid_is_refused_with_rule_and_no_echo(self, raw: str) -> None:
        assert_refused("postcode", raw, "postcode")


class TestPostalAddress:
    def test_valid_address_is_normalised(self) -> None:
        address = PostalAddress.model_validate(
            {
                "street": " Box 1222 ",
                "postcode": "35112",
                "city": "Växjö",
                "care_of": "Socialtjänsten",
            }
        )
        assert address.model_dump() == {
            "street": "Box 1222",
            "postcode": "351 12",
            "city": "Växjö",
            "care_of": "Socialtjänsten",
        }

    @pytest.mark.parametrize(
        ("data", "field", "rule"),
        [
            ({"street": "Anna Anderssons väg 1" * 6}, "street", "string_too_long"),
            ({"street": "   "}, "street", "string_too_short"),
            ({"city": "Anna Andersson " * 5}, "city", "string_too_long"),
            ({"care_of": "Anna Andersson " * 8}, "care_of", "string_too_long"),
            ({"postcode": "Anna 1"}, "postcode", "postcode"),
            ({"extra": "Anna Andersson"}, "extra", "extra_forbidden"),
        ],
    )
    def test_invalid_is_refused_and_not_echoed(
        self, data: dict[str, Any], field: str, rule: str
    ) -> None:
        valid = {"street": "Box 1222", "postcode": "351 12", "city": "Växjö"}
        with pytest.raises(ValidationError) as info:
            PostalAddress.model_validate({**valid, **data})
        (error,) = info.value.errors()
        assert error["loc"] == (field,)
        assert error["type"] == rule
        assert "Anna" not in str(info.value)
        assert "Anna" not in error["msg"]

    def test_json_schema_has_an_example_that_validates(self) -> None:
        (example,) = PostalAddress.model_json_schema()["examples"]
        PostalAddress.model_validate(example)

    def test_the_schema_says_what_is_accepted(self) -> None:
        # Lengths are checked as sent (the schema's maxLength), and text of spaces only
        # (which the trimming would empty) is outside the schema's pattern.
        valid = {"street": "Box 1222", "postcode": "351 12", "city": "Växjö"}
        schema = PostalAddress.model_json_schema()["properties"]
        assert schema["street"]["maxLength"] == 100
        for blank in ("   ", "\x1c\u3000", "\t\xa0"):  # spaces to Python and to ECMA-262
            assert re.search(schema["street"]["pattern"], blank) is None
            with pytest.raises(ValidationError):
                PostalAddress.model_validate({**valid, "street": blank})
        assert re.search(schema["city"]["pattern"], " Växjö ") is not None
        with pytest.raises(ValidationError) as info:
            PostalAddress.model_validate({**valid, "street": "B" * 100 + " "})
        assert info.value.errors()[0]["type"] == "string_too_long"

"""Tests of the SE-base identifier systems (shared.identity.identifiers.systems) and HSA-id.

19121212-1212 is Skatteverket's test personnummer; 196109732393 is SE-base's example
samordningsnummer; 232100-0065 is Region Kronoberg's organisationsnummer.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from shared.identity.identifiers import (
    HSA_ID_SYSTEM,
    ORGANISATIONSNUMMER_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    SECURITY_LABEL_SYSTEM,
    HsaId,
    IdentifierError,
    IdentifierKind,
    identifier_of,
    is_hsa_id,
    normalise_hsa_id,
    parse_identifier,
    security_label,
)
from shared.identity.identifiers.types import REDACTED

PNR = "191212121212"
SNR = "196109732393"
ORGNR = "232100-0065"
HSA = "SE2321000065-E000000000001"


class TestSystems:
    """SE-base's systems, and Inera's OIDs accepted for the same identifiers."""

    @pytest.mark.parametrize(
        ("system", "value", "kind", "normalised"),
        [
            (PERSONNUMMER_SYSTEM, "19121212-1212", IdentifierKind.PERSONNUMMER, PNR),
            (
                "urn:oid:1.2.752.129.2.1.3.1",
                "121212-1212",
                IdentifierKind.PERSONNUMMER,
                "20" + PNR[2:],
            ),
            (SAMORDNINGSNUMMER_SYSTEM, SNR, IdentifierKind.SAMORDNINGSNUMMER, SNR),
            ("urn:oid:1.2.752.129.2.1.3.3", "19610973-2393", IdentifierKind.SAMORDNINGSNUMMER, SNR),
            (ORGANISATIONSNUMMER_SYSTEM, "2321000065", IdentifierKind.ORGANISATIONSNUMMER, ORGNR),
            (HSA_ID_SYSTEM, HSA, IdentifierKind.HSA_ID, HSA),
            ("urn:oid:1.2.752.129.2.1.4.1", f" {HSA} ", IdentifierKind.HSA_ID, HSA),
        ],
    )
    def test_every_system_and_alias_is_read(
        self, system: str, value: str, kind: IdentifierKind, normalised: str
    ) -> None:
        assert parse_identifier(system, value) == (kind, normalised)

    def test_the_system_uris_are_se_base_s(self) -> None:
        assert PERSONNUMMER_SYSTEM == "http://electronichealth.se/identifier/personnummer"
        assert SAMORDNINGSNUMMER_SYSTEM == "http://electronichealth.se/identifier/samordningsnummer"
        assert ORGANISATIONSNUMMER_SYSTEM == "urn:oid:2.5.4.97"
        assert HSA_ID_SYSTEM == "urn:oid:1.2.752.29.4.19"

    def test_an_unknown_system_is_refused(self) -> None:
        with pytest.raises(IdentifierError) as err:
            parse_identifier("urn:oid:1.2.752.97.3.1.3", PNR)  # a regional reservnummer
        assert err.value.rule == "unknown_system"

    @pytest.mark.parametrize(
        ("system", "value", "rule"),
        [
            (PERSONNUMMER_SYSTEM, "19121212-1213", "luhn"),
            ("urn:oid:1.2.752.129.2.1.3.1", "19121312-1212", "date"),
            (SAMORDNINGSNUMMER_SYSTEM, "196109732394", "luhn"),
            (ORGANISATIONSNUMMER_SYSTEM, "2321000066", "luhn"),
            (ORGANISATIONSNUMMER_SYSTEM, PNR[2:], "legal_entity"),
            (HSA_ID_SYSTEM, "SE2321000066-E1", "hsa_prefix_luhn"),
            ("urn:oid:1.2.752.129.2.1.4.1", "2321000065-E1", "format"),
        ],
    )
    def test_the_value_is_checked_against_its_system(
        self, system: str, value: str, rule: str
    ) -> None:
        with pytest.raises(IdentifierError) as err:
            parse_identifier(system, value)
        assert err.value.rule == rule
        assert value not in str(err.value)

    @pytest.mark.parametrize("system", [SAMORDNINGSNUMMER_SYSTEM, "urn:oid:1.2.752.129.2.1.3.3"])
    def test_a_personnummer_under_the_samordningsnummer_system_is_refused(
        self, system: str
    ) -> None:
        with pytest.raises(IdentifierError) as err:
            parse_identifier(system, PNR)
        assert err.value.rule == "not_samordningsnummer"

    @pytest.mark.parametrize("system", [PERSONNUMMER_SYSTEM, "urn:oid:1.2.752.129.2.1.3.1"])
    def test_a_samordningsnummer_under_the_personnummer_system_is_refused(
        self, system: str
    ) -> None:
        with pytest.raises(IdentifierError) as err:
            parse_identifier(system, SNR)
        assert err.value.rule == "not_personnummer"


class TestOutput:
    """Output always names SE-base's system, whatever came in."""

    @pytest.mark.parametrize(
        ("kind", "value", "expected"),
        [
            ("personnummer", "19121212-1212", {"system": PERSONNUMMER_SYSTEM, "value": PNR}),
            ("samordningsnummer", SNR, {"system": SAMORDNINGSNUMMER_SYSTEM, "value": SNR}),
            (
                IdentifierKind.ORGANISATIONSNUMMER,
                "2321000065",
                {"system": ORGANISATIONSNUMMER_SYSTEM, "value": ORGNR},
            ),
            ("hsa_id", HSA, {"system": HSA_ID_SYSTEM, "value": HSA}),
        ],
    )
    def test_identifier_of(self, kind: str, value: str, expected: dict[str, str]) -> None:
        assert identifier_of(kind, value) == expected

    def test_round_trip_from_an_oid(self) -> None:
        kind, value = parse_identifier("urn:oid:1.2.752.129.2.1.4.1", HSA)
        assert identifier_of(kind, value)["system"] == HSA_ID_SYSTEM

    def test_output_refuses_the_wrong_kind_too(self) -> None:
        with pytest.raises(IdentifierError) as err:
            identifier_of("personnummer", SNR)
        assert err.value.rule == "not_personnummer"

    def test_security_label(self) -> None:
        assert security_label() == {"system": SECURITY_LABEL_SYSTEM, "code": "sekretessmarkering"}
        assert security_label("skyddadFolkbokforing")["code"] == "skyddadFolkbokforing"
        with pytest.raises(ValueError, match="security label"):
            security_label("restricted")


class TestHsaId:
    """SE + organisationsnummer (10 digits) + '-' + letters and digits, 31 characters at most."""

    @pytest.mark.parametrize(
        "value",
        [
            HSA,
            "SE2321000131-P000000123457",  # SE-base's SEBaseOrganization example
            "SE2321000065-1",
            "SE2321000065-" + "a" * 18,  # 31 characters
        ],
    )
    def test_valid(self, value: str) -> None:
        assert normalise_hsa_id(value) == value
        assert is_hsa_id(value)

    @pytest.mark.parametrize(
        ("value", "rule"),
        [
            ("SE2321000065-" + "a" * 19, "length"),
            ("SE2321000065-", "format"),
            ("SE2321000065-E00å", "format"),
            ("SE2321000065-E0@1", "format"),
            ("se2321000065-E1", "format"),
            ("SE232100-0065-E1", "format"),
            ("SE23210000651-E1", "format"),
            ("SE2321000066-E1", "hsa_prefix_luhn"),
            ("SE1212121212-E1", "hsa_prefix_legal_entity"),  # a personnummer as prefix
        ],
    )
    def test_invalid(self, value: str, rule: str) -> None:
        with pytest.raises(IdentifierError) as err:
            normalise_hsa_id(value)
        assert err.value.rule == rule
        assert not is_hsa_id(value)

    def test_field_type_names_the_rule_and_hides_the_value(self) -> None:
        class M(BaseModel):
            hsa_id: HsaId

        assert M(hsa_id=f" {HSA}").hsa_id == HSA
        with pytest.raises(ValidationError) as err:
            M(hsa_id="SE2321000066-E1")
        (error,) = err.value.errors()
        assert error["type"] == "hsa_prefix_luhn"
        assert error["input"] == REDACTED
        schema = M.model_json_schema()["properties"]["hsa_id"]
        assert schema["maxLength"] == 31

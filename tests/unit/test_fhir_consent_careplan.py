"""The Consent and CarePlan mappings of the FHIR facade where the services' flows do not
easily reach: a party's withdrawn plan copy, a representative's and a protected person's
consent, and the CapabilityStatement entries the lead wires in."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from services.fhir.capability import capability_statement
from services.fhir.careplan import care_plan, careplan_capabilities
from services.fhir.consent import (
    consent_capabilities,
    consent_resource,
    decision_parameters,
    refusal_resource,
)

PLAN: dict[str, Any] = {
    "id": "p-1",
    "owner_orgnr": "212000-0647",
    "owner_unit_id": "soc",
    "kind": "remissmote",
    "person": {"personnummer": None, "protected_identity": None},
    "own_goals": [],
    "goals": [],
    "actions": [
        {
            "id": "a-1",
            "position": 0,
            "intervention": "boendestod",
            "orgnr": None,
            "unit_id": None,
            "outside_actor": "Försäkringskassan",
            "status": "cancelled",
            "reason": "Personen flyttade.",
        },
        {
            "id": "a-2",
            "position": 1,
            "intervention": "boendestod",
            "orgnr": "212000-0647",
            "unit_id": "boende",
            "end_by": "2027-01-31",
            "status": "ended",
            "outcome": "interrupted",
            "note": "Avbrutet.",
        },
    ],
    "coordinators": [{"orgnr": "212000-0647", "unit_id": "soc"}],
    "follow_up_date": "2027-02-01",
    "viewers": [],
    "version": 3,
    "status": "withdrawn",
}

CONSENT: dict[str, Any] = {
    "id": "c-1",
    "owner_orgnr": "212000-0647",
    "person": {"personnummer": "194001619875", "protected_identity": True},
    "given_by": {"kind": "guardian", "name": "A. Förmyndare", "reference": "TR 1"},
    "recorded_by": {"org": "212000-0647", "unit_id": None, "user": "u"},
    "form": "oral",
    "form_note": "Per telefon.",
    "signed_form_reference": None,
    "purposes": ["sip"],
    "withdrawn_purposes": ["vardkedjeremiss"],
    "parties": [{"orgnr": "212000-0647"}, {"orgnr": "232100-0065", "unit_id": "beroende"}],
    "categories": ["plan"],
    "valid_from": "2026-12-01",
    "valid_to": "2027-05-31",
    "status": "expired",
    "version": 2,
    "created_at": "2026-12-01T10:00:00Z",
    "updated_at": "2026-12-02T10:00:00Z",
}


class TestAWithdrawnPlanCopy:
    def test_revoked_with_nothing_about_the_person(self) -> None:
        plan = care_plan(PLAN)
        assert plan["status"] == "revoked"
        assert "identifier" not in plan["subject"]
        assert plan["category"][0]["coding"][0]["code"] == "remissmote"
        outside, owned = plan["activity"]
        assert outside["detail"]["status"] == "cancelled"
        assert outside["detail"]["statusReason"]["text"] == "Personen flyttade."
        assert owned["detail"]["status"] == "completed"
        assert owned["outcomeCodeableConcept"][0]["coding"][0]["code"] == "interrupted"
        assert plan["period"] == {"start": "2027-01-31", "end": "2027-01-31"}


class TestARepresentativesConsent:
    def test_samordningsnummer_restricted_and_the_withdrawn_purpose_denied(self) -> None:
        consent = consent_resource(CONSENT)
        assert consent["status"] == "inactive"
        assert consent["patient"]["identifier"]["system"].endswith("samordningsnummer")
        assert consent["meta"]["security"][0]["code"] == "sekretessmarkering"
        assert consent["performer"] == [
            {"type": "RelatedPerson", "display": "guardian: A. Förmyndare"}
        ]
        assert "reference" not in consent["organization"][0]
        [deny] = consent["provision"]["provision"]
        assert (deny["type"], deny["purpose"][0]["code"]) == ("deny", "vardkedjeremiss")


class TestADecisionOnALegalBasis:
    def test_permit_names_the_basis_and_what_may_be_shared(self) -> None:
        answer = decision_parameters(
            {
                "verdict": "allowed",
                "allowed": True,
                "basis": {
                    "kind": "legal_basis",
                    "legal_basis": "osl_25_12",
                    "legal_basis_use_id": "u",
                },
                "obligations": {"categories": ["plan"], "valid_until": "2026-12-07"},
                "reasons": [],
                "decided_at": "2026-12-07T10:00:00Z",
            }
        )
        names = [p["name"] for p in answer["parameter"]]
        assert names == ["decision", "verdict", "basis", "legalBasis", "category", "validUntil",
                         "decidedAt"]  # fmt: skip


class TestCapabilities:
    def test_the_entries_validate_in_the_statement(self) -> None:
        statement = capability_statement("http://fhir/fhir/R4", version="0", member="m")
        statement["rest"][0]["resource"] += consent_capabilities() + careplan_capabilities()
        CapabilityStatement.model_validate(statement)


class TestARevokedRefusal:
    def test_inactive_and_denying_every_purpose(self) -> None:
        refusal = refusal_resource(
            {
                "id": "r-1",
                "owner_orgnr": "212000-0647",
                "person": {"personnummer": "19121212-1212", "protected_identity": False},
                "refused_on": "2026-12-01",
                "parties": [{"orgnr": "232100-0065", "unit_id": None}],
                "purposes": [],
                "note": None,
                "recorded_by": {"org": "212000-0647", "unit_id": "soc", "user": "u"},
                "status": "revoked",
                "revoked_at": "2026-12-05T10:00:00Z",
                "revocation_reason": "Ändrade sig.",
                "created_at": "2026-12-01T10:00:00Z",
            }
        )
        assert refusal["status"] == "inactive"
        assert refusal["provision"]["type"] == "deny"
        assert "purpose" not in refusal["provision"]
        assert refusal["patient"]["identifier"]["value"] == "191212121212"

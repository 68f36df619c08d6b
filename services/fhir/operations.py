"""The ``OperationDefinition``s of the facade's own operations, at the canonical URLs the
``CapabilityStatement`` names (``GET OperationDefinition/{id}``): what a client sends to
``HealthcareService/$resolve`` and ``Consent/$decide`` and what it gets back."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from fhir.resources.R4B.operationdefinition import OperationDefinition

from services.fhir.common import fhir
from services.fhir.mapping import validated
from services.fhir.outcome import FhirError, outcome_responses

router = APIRouter()
CANONICAL: Final = "https://vardkedja.se/fhir/OperationDefinition/"

Param = tuple[str, str, str, int, str, str]
"""(name, use, type, min, max, documentation)."""


def _definition(
    id_: str, code: str, resource: str, *, affects: bool, doc: str, params: list[Param]
) -> dict[str, Any]:
    return {
        "resourceType": "OperationDefinition",
        "id": id_,
        "url": CANONICAL + id_,
        "name": id_.replace("-", ""),
        "title": f"{resource}/${code}",
        "status": "active",
        "kind": "operation",
        "publisher": "vardkedja",
        "description": doc,
        "affectsState": affects,
        "code": code,
        "resource": [resource],
        "system": False,
        "type": True,
        "instance": False,
        # A parameter of parts (a route, a reason) has no type of its own.
        "parameter": [
            {
                "name": n,
                "use": use,
                "min": lo,
                "max": hi,
                "documentation": d,
                **({"type": t} if t else {}),
            }
            for n, use, t, lo, hi, d in params
        ],
    }


DEFINITIONS: Final = {
    d["id"]: d
    for d in (
        _definition(
            "HealthcareService-resolve",
            "resolve",
            "HealthcareService",
            affects=False,
            doc="The units that receive a kind of referral for a person of a kommun with these "
            "needs, best first, with why each was chosen (the directory's routing). GET takes "
            "kommunkod, kind and needs; a person's age goes only in a POSTed Parameters body "
            "(kommun, age and needs together never in a URL). Scope directory:read.",
            params=[
                ("kommunkod", "in", "string", 1, "1", "SCB's four-digit kommunkod"),
                ("kind", "in", "code", 1, "1", "the referral kind (referral-kind)"),
                ("needs", "in", "code", 0, "*", "the needs (need), each matched"),
                ("age", "in", "integer", 0, "1", "the person's age (POST only)"),
                ("fallback", "out", "boolean", 1, "1", "no unit matched: the kommun's intake"),
                (
                    "route",
                    "out",
                    "",
                    0,
                    "*",
                    "rank, service, reason, matched-need, age-fits, "
                    "fallback, endpoint, contact-path",
                ),
            ],
        ),
        _definition(
            "Consent-decide",
            "decide",
            "Consent",
            affects=False,
            doc="May this member share these categories about the person with that "
            "organisation (or unit) for this purpose, at this moment? The consent service's "
            "decision: a consent, a refusal, a block, or a legal basis. Scope consent:read; "
            "the reasons name a person's consent only with consent:person.",
            params=[
                (
                    "patient",
                    "in",
                    "Identifier",
                    1,
                    "1",
                    "SE-base personnummer or samordningsnummer",
                ),
                ("purpose", "in", "code", 1, "1", "the purpose (purpose)"),
                (
                    "recipient",
                    "in",
                    "Identifier",
                    1,
                    "1",
                    "the receiving organisation "
                    "(organisationsnummer), or a Reference to Organization/<unit id>",
                ),
                (
                    "sender",
                    "in",
                    "Identifier",
                    0,
                    "1",
                    "the sending organisation (default: this member)",
                ),
                ("category", "in", "Coding", 1, "*", "the information categories shared"),
                ("at", "in", "dateTime", 0, "1", "the moment asked about (default: now)"),
                ("decision", "out", "code", 1, "1", "permit | deny"),
                ("verdict", "out", "Coding", 1, "1", "the decision's verdict"),
                ("basis", "out", "Coding", 0, "1", "consent or legal_basis"),
                ("consent", "out", "Reference", 0, "1", "the consent it rests on"),
                ("legalBasis", "out", "Coding", 0, "1", "the legal basis it rests on"),
                ("category", "out", "Coding", 0, "*", "the categories allowed"),
                ("validUntil", "out", "date", 0, "1", "the last day (in Sweden) it holds"),
                ("reason", "out", "", 0, "*", "why (code and words)"),
                ("decidedAt", "out", "dateTime", 1, "1", "when it was decided"),
            ],
        ),
    )
}


@router.get(
    "/OperationDefinition/{definition_id}",
    summary="The definition of one of the facade's operations",
    description="`HealthcareService-resolve` or `Consent-decide`: the parameters in and out. "
    "No token needed.",
    responses=outcome_responses(404),
)
async def operation_definition(
    definition_id: str = Path(pattern=r"^[A-Za-z-]{1,64}$"),
) -> JSONResponse:
    found = DEFINITIONS.get(definition_id)
    if found is None:
        raise FhirError(404, "no such OperationDefinition", rule="not-found")
    return fhir(validated(OperationDefinition, found))

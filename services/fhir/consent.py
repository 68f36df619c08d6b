"""The member's consents as FHIR R4 ``Consent``, and its sharing decisions as ``$decide``.

A consent the member recorded (a secrecy waiver, OSL 12 kap. 2 §) is a ``Consent``:

- ``status``: ``active`` while it is in force; ``inactive`` once withdrawn, expired or
  superseded (the product's exact status is ``meta.tag``, code system below). R4's
  ``rejected`` is not used: R4 means by it a consent the executing party rejected, while a
  person's "no" is a refusal, which is a ``Consent`` of its own (below).
- ``scope``: ``patient-privacy`` (consentscope): the consent is about sharing the person's
  information between care providers, not about treatment or research.
- ``category``: LOINC 59284-0 (consent document), the record kind (``consent``) and the
  form it was given in.
- ``patient``: the person's SE-base identifier; ``performer``: who gave it (the person, or a
  representative named in words); ``organization``: the unit that recorded it
  (``Organization/<unit id>``, the member's orgnr as identifier); ``dateTime``: recorded.
- ``provision`` (``permit``): the validity as ``period``, the parties as ``actor``s
  (role IRCP, information recipient), the purposes in force as ``purpose`` and the
  information categories as ``code``; purposes the person withdrew are a nested ``deny``
  provision.
- ``policy``/``policyRule`` and the R5 cross-version extensions ``regulatoryBasis`` (OSL
  12 kap. 2 §) and ``decision`` (``permit``).

A refusal the member recorded (the person said no to sharing with these parties, for these
purposes or all) is a ``Consent`` whose provision and R5 ``decision`` are ``deny`` (record
kind ``refusal``; ``active`` until revoked, then ``inactive``), with the same id as in the
consent service: ``GET Consent/{id}`` reads either, and a person search lists both.

``POST Consent/$decide`` asks the consent service's ``POST /v1/decisions`` (deny by default)
with a ``Parameters`` resource and answers one.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.parameters import Parameters

from services.fhir.common import fhir, searchset, upstream_of
from services.fhir.mapping import CS, org_identifier, person_identifier, security_of, validated
from services.fhir.outcome import FhirError
from services.fhir.sending import person_number
from services.fhir.upstream import UpstreamAnswer
from shared.identity.identifiers.systems import ORGANISATIONSNUMMER_SYSTEM

router = APIRouter()

PURPOSE: Final = CS + "purpose"
CATEGORY: Final = CS + "information-category"
CONSENT_STATUS: Final = CS + "consent-status"
CONSENT_FORM: Final = CS + "consent-form"
RECORD_KIND: Final = CS + "consent-record-kind"
RECORD_ID: Final = "https://vardkedja.se/fhir/sid/consent-id"
POLICY: Final = CS + "legal-basis"
VERDICT: Final = CS + "decision-verdict"
REASON: Final = CS + "decision-reason"
BASIS: Final = CS + "decision-basis"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC: Final = "http://loinc.org"
ROLE_CLASS: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
XVER: Final = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Consent."
REGULATORY_BASIS: Final = XVER + "regulatoryBasis"
DECISION: Final = XVER + "decision"
OSL: Final = "https://www.riksdagen.se/sv/dokument-och-lagar/dokument/svensk-forfattningssamling/offentlighets-och-sekretesslag-2009400_sfs-2009-400/"
OSL_12_2: Final = {
    "coding": [{"system": POLICY, "code": "osl_12_2", "display": "OSL 12 kap. 2 §"}],
    "text": "Samtycke: sekretessen gäller inte i förhållande till den enskilde själv "
    "och kan efterges av denne (OSL 12 kap. 2 §)",
}
CONSENT_ID: Final = r"^[A-Za-z0-9\-]{1,64}$"
FHIR_CONSENT_STATUS: Final = {
    "active": "active",
    "withdrawn": "inactive",
    "expired": "inactive",
    "superseded": "inactive",
}
FORM_ENCODED: Final = "application/x-www-form-urlencoded"


def _code(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}], "text": code}


def _party(party: dict[str, Any]) -> dict[str, Any]:
    """A member (its orgnr) or one unit of it, as an ``Organization`` reference."""
    ref: dict[str, Any] = {"identifier": org_identifier(party["orgnr"])}
    if party.get("unit_id"):
        ref["reference"] = f"Organization/{party['unit_id']}"
    return ref


def _giver(consent: dict[str, Any]) -> dict[str, Any]:
    given = consent.get("given_by") or {}
    if given.get("kind", "person") == "person":
        return {
            "type": "Patient",
            "identifier": person_identifier(_digits(consent["person"]["personnummer"])),
        }
    words = given["kind"] + (f": {given['name']}" if given.get("name") else "")
    return {"type": "RelatedPerson", "display": words}


def _digits(personnummer: str) -> str:
    return personnummer.replace("-", "")


def _record(
    record: dict[str, Any], *, decision: str, status: str, provision: dict[str, Any]
) -> dict[str, Any]:
    """What a consent and a refusal have alike as ``Consent`` (the product's record kind is
    a ``category``, its exact status a ``meta.tag``)."""
    recorded = record["recorded_by"]
    person = record["person"]
    provision["actor"] = [
        {"role": _code(ROLE_CLASS, "IRCP"), "reference": _party(p)} for p in record["parties"]
    ]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": record["id"],
        "meta": {"tag": [{"system": CONSENT_STATUS, "code": record["status"]}]},
        "extension": [
            {"url": REGULATORY_BASIS, "valueCodeableConcept": OSL_12_2},
            {"url": DECISION, "valueCode": decision},
        ],
        "identifier": [{"system": RECORD_ID, "value": record["id"]}],
        "status": status,
        "scope": _code(CONSENT_SCOPE, "patient-privacy"),
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent Document"}]},
            _code(RECORD_KIND, "consent" if decision == "permit" else "refusal"),
        ],
        "patient": {"identifier": person_identifier(_digits(person["personnummer"]))},
        "dateTime": record["created_at"],
        "organization": [_party({"orgnr": recorded["org"], "unit_id": recorded.get("unit_id")})],
        "policy": [{"authority": "https://www.riksdagen.se", "uri": OSL}],
        "policyRule": OSL_12_2,
        "provision": provision,
    }
    if security := security_of(person):
        resource["meta"]["security"] = security
    return resource


def consent_resource(consent: dict[str, Any]) -> dict[str, Any]:
    """A consent this member recorded (the consent service's ``ConsentOut``) as ``Consent``."""
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": consent["valid_from"], "end": consent["valid_to"]},
        "purpose": [{"system": PURPOSE, "code": p} for p in consent["purposes"]],
        "code": [_code(CATEGORY, c) for c in consent["categories"]],
    }
    if consent.get("withdrawn_purposes"):
        provision["provision"] = [
            {
                "type": "deny",
                "purpose": [{"system": PURPOSE, "code": p} for p in consent["withdrawn_purposes"]],
            }
        ]
    resource = _record(
        consent,
        decision="permit",
        status=FHIR_CONSENT_STATUS.get(consent["status"], "inactive"),
        provision=provision,
    )
    resource["meta"] |= {"versionId": str(consent["version"]), "lastUpdated": consent["updated_at"]}
    resource["category"].append(_code(CONSENT_FORM, consent["form"]))
    resource["performer"] = [_giver(consent)]
    if consent.get("signed_form_reference"):
        resource["sourceReference"] = {"display": consent["signed_form_reference"]}
    return validated(Consent, resource)


def refusal_resource(refusal: dict[str, Any]) -> dict[str, Any]:
    """A refusal this member recorded (``RefusalOut``: the person said no to sharing with
    these parties, for these purposes or every one) as a ``Consent`` that denies."""
    provision: dict[str, Any] = {"type": "deny", "period": {"start": refusal["refused_on"]}}
    if refusal["purposes"]:
        provision["purpose"] = [{"system": PURPOSE, "code": p} for p in refusal["purposes"]]
    resource = _record(
        refusal,
        decision="deny",
        status="active" if refusal["status"] == "active" else "inactive",
        provision=provision,
    )
    resource["performer"] = [_giver(refusal)]
    return validated(Consent, resource)


def consent_capabilities() -> list[dict[str, Any]]:
    """The ``CapabilityStatement.rest.resource`` entries of ``Consent``."""
    return [
        {
            "type": "Consent",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "searchParam": [
                {
                    "name": "patient",
                    "type": "reference",
                    "documentation": "the person (patient=<system>|<value> or "
                    "patient:identifier=...), only with POST Consent/_search; scope "
                    "consent:person",
                }
            ],
            "operation": [
                {
                    "name": "decide",
                    "definition": "https://vardkedja.se/fhir/OperationDefinition/Consent-decide",
                    "documentation": "May this be shared with that organisation for this "
                    "purpose, now? Parameters patient, purpose, recipient, sender, category, "
                    "at; scope consent:read",
                }
            ],
        }
    ]


ConsentIdPath = Annotated[str, Path(pattern=CONSENT_ID, description="the consent id")]


@router.get(
    "/Consent/{consent_id}",
    summary="Read a consent your member recorded",
    description=(
        "The consent with `meta.versionId` and `ETag`. Audited by the consent service. "
        "Scope `consent:read`. Errors are `OperationOutcome`s: 401, 403, 404."
    ),
)
async def read_consent(request: Request, consent_id: ConsentIdPath) -> JSONResponse:
    up = upstream_of(request)
    try:
        consent = (await up.call(request, "consent", "GET", f"/v1/consents/{consent_id}")).json()
    except UpstreamAnswer as not_a_consent:
        if not_a_consent.status != 404:
            raise
        try:  # a refusal (a Consent that denies)?
            answer = await up.call(request, "consent", "GET", f"/v1/refusals/{consent_id}")
        except UpstreamAnswer as exc:
            raise (not_a_consent if exc.status == 404 else exc) from None
        return fhir(refusal_resource(answer.json()))
    return fhir(consent_resource(consent), version=consent["version"])


def _person_of(value: str, name: str) -> str:
    """The personnummer of a token search value ``<system>|<value>``."""
    system, bar, number = value.rpartition("|")
    if not bar or not number:
        raise FhirError(
            400,
            f"{name}: <system>|<value> with a personnummer or samordningsnummer system",
            expression=name,
            rule="identifier",
        )
    return person_number(system, number, where=name, status=400)


@router.post(
    "/Consent/_search",
    summary="Search a person's consents (the person in the body)",
    description=(
        "An `application/x-www-form-urlencoded` body with `patient=<system>|<value>` (or "
        "`patient:identifier=`), the SE-base personnummer or samordningsnummer (or their "
        "OIDs): the consents this member recorded for the person, as a `searchset` Bundle. "
        "A personnummer never goes in the URL. Audited. Scope `consent:person`."
    ),
)
async def search_consents(request: Request) -> JSONResponse:
    if not request.headers.get("content-type", "").startswith(FORM_ENCODED):
        raise FhirError(415, f"send the parameters as {FORM_ENCODED}", rule="media-type")
    try:
        params = parse_qsl((await request.body()).decode(), strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise FhirError(400, "the body is not UTF-8", rule="encoding") from exc
    patients = [(k, v) for k, v in params if k in ("patient", "patient:identifier")]
    unknown = sorted({k for k, _ in params if k not in ("patient", "patient:identifier", "_count")})
    if unknown:
        raise FhirError(
            400, f"{unknown[0]}: not a supported parameter", expression=unknown[0], rule="unknown"
        )
    if len(patients) != 1:
        raise FhirError(
            400, "patient: exactly one is required", expression="patient", rule="required"
        )
    name, value = patients[0]
    personnummer = _person_of(value, name)
    up = upstream_of(request)
    found = (
        await up.call(
            request, "consent", "POST", "/v1/persons/search", json={"personnummer": personnummer}
        )
    ).json()
    entries = [(consent_resource(c), "match") for c in found["consents"]]
    entries += [(refusal_resource(r), "match") for r in found["refusals"]]
    return fhir(searchset(request, "Consent", entries, None))


# $decide ------------------------------------------------------------------------------


def _bad(name: str, words: str, rule: str = "invalid") -> FhirError:
    return FhirError(
        400, f"{name}: {words}", expression=f"Parameters.parameter('{name}')", rule=rule
    )


def _values(parameters: dict[str, Any], name: str) -> list[tuple[str, Any]]:
    found = []
    for p in parameters.get("parameter") or []:
        if isinstance(p, dict) and p.get("name") == name:
            value = [(k, v) for k, v in p.items() if k.startswith("value")]
            if len(value) != 1:
                raise _bad(name, "one value[x] is required")
            found.append(value[0])
    return found


def _one(parameters: dict[str, Any], name: str, *, required: bool) -> tuple[str, Any] | None:
    found = _values(parameters, name)
    if len(found) > 1:
        raise _bad(name, "at most one", "one")
    if not found and required:
        raise _bad(name, "is required", "required")
    return found[0] if found else None


def _code_of(name: str, system: str, value: tuple[str, Any]) -> str:
    kind, v = value
    if kind == "valueCode" and isinstance(v, str):
        return v
    coded = kind == "valueCoding" and isinstance(v, dict) and v.get("system") in (system, None)
    if coded and isinstance(v.get("code"), str):
        return str(v["code"])
    raise _bad(name, f"a valueCode, or a valueCoding of {system}")


def _org_of(name: str, value: tuple[str, Any]) -> dict[str, str]:
    """A member (valueIdentifier: its orgnr) or a unit (valueReference to
    ``Organization/<unit id>`` with the orgnr as identifier) as the consent API's party."""
    kind, v = value
    ident = {
        "valueIdentifier": v,
        "valueReference": v.get("identifier") if isinstance(v, dict) else None,
    }.get(kind)
    if (
        not isinstance(ident, dict)
        or ident.get("system") != ORGANISATIONSNUMMER_SYSTEM
        or not ident.get("value")
    ):
        raise _bad(
            name,
            f"a valueIdentifier (system {ORGANISATIONSNUMMER_SYSTEM}) or a valueReference to "
            "Organization/<unit id> with that identifier",
        )
    party = {"orgnr": str(ident["value"])}
    if kind == "valueReference" and (ref := v.get("reference")):
        if (
            not isinstance(ref, str)
            or not ref.startswith("Organization/")
            or ref == "Organization/"
        ):
            raise _bad(name, "the reference must be Organization/<unit id>")
        party["unit_id"] = ref.removeprefix("Organization/")
    return party


def decision_question(parameters: dict[str, Any], member: str) -> dict[str, Any]:
    """The consent API's ``DecisionRequest`` of a ``$decide`` ``Parameters`` resource."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise FhirError(400, "the body must be a Parameters resource", rule="resource-type")
    patient = _one(parameters, "patient", required=True)
    assert patient is not None
    if patient[0] != "valueIdentifier" or not isinstance(patient[1], dict):
        raise _bad("patient", "a valueIdentifier (SE-base personnummer or samordningsnummer)")
    ident = patient[1]
    person_number(
        str(ident.get("system", "")),
        str(ident.get("value", "")),
        where="Parameters.parameter('patient')",
    )
    purpose = _one(parameters, "purpose", required=True)
    assert purpose is not None
    recipient = _one(parameters, "recipient", required=True)
    assert recipient is not None
    sender = _one(parameters, "sender", required=False)
    categories = [_code_of("category", CATEGORY, v) for v in _values(parameters, "category")]
    if not categories:
        raise _bad("category", "at least one is required", "required")
    question: dict[str, Any] = {
        "person": {"personnummer": str(ident["value"])},
        "sender": _org_of("sender", sender) if sender else {"orgnr": member},
        "recipient": _org_of("recipient", recipient),
        "purpose": _code_of("purpose", PURPOSE, purpose),
        "categories": categories,
    }
    if at := _one(parameters, "at", required=False):
        if at[0] != "valueDateTime" or not isinstance(at[1], str):
            raise _bad("at", "a valueDateTime with a time zone")
        question["at"] = at[1]
    return question


# Where a field of the decision API is among the operation's parameters.
PARAMETER_OF: Final = {
    f: f"Parameters.parameter('{p}')"
    for f, p in {
        "person": "patient",
        "sender": "sender",
        "recipient": "recipient",
        "purpose": "purpose",
        "categories": "category",
        "at": "at",
    }.items()
}


def decision_parameters(answer: dict[str, Any]) -> dict[str, Any]:
    """The consent service's ``DecisionOut`` as the ``$decide`` answer (``Parameters``)."""
    basis = answer["basis"]
    out: list[dict[str, Any]] = [
        {"name": "decision", "valueCode": "permit" if answer["allowed"] else "deny"},
        {"name": "verdict", "valueCoding": {"system": VERDICT, "code": answer["verdict"]}},
        {"name": "basis", "valueCoding": {"system": BASIS, "code": basis["kind"]}},
    ]
    if basis.get("consent_id"):
        out.append(
            {"name": "consent", "valueReference": {"reference": f"Consent/{basis['consent_id']}"}}
        )
    if basis.get("legal_basis"):
        out.append(
            {"name": "legalBasis", "valueCoding": {"system": POLICY, "code": basis["legal_basis"]}}
        )
    if obligations := answer.get("obligations"):
        out += [
            {"name": "category", "valueCoding": {"system": CATEGORY, "code": c}}
            for c in obligations["categories"]
        ]
        out.append({"name": "validUntil", "valueDate": obligations["valid_until"]})
    out += [
        {
            "name": "reason",
            "valueCodeableConcept": {
                "coding": [{"system": REASON, "code": r["code"]}],
                "text": r["text"],
            },
        }
        for r in answer["reasons"]
    ]
    out.append({"name": "decidedAt", "valueDateTime": answer["decided_at"]})
    return validated(Parameters, {"resourceType": "Parameters", "parameter": out})


@router.post(
    "/Consent/$decide",
    summary="May this be shared with that organisation for this purpose, now?",
    description=(
        "A `Parameters` resource: `patient` (valueIdentifier, SE-base), `purpose` (valueCode "
        f"or valueCoding of `{PURPOSE}`), `recipient` (valueIdentifier: the member's orgnr; "
        "or valueReference `Organization/<unit id>` with that identifier), optionally "
        "`sender` (the same; default this member), `category` (one or more, of "
        f"`{CATEGORY}`) and `at` (valueDateTime). The answer is a `Parameters`: `decision` "
        "(`permit`/`deny`), `verdict`, `basis` (`consent`, `legal_basis` or `none`), "
        "`consent` (its reference), `category` and `validUntil` (what may be shared, through "
        "which day) and `reason`s. Deny by default; why not is told only with "
        "`consent:person`. Scope `consent:read`."
    ),
)
async def decide(request: Request, parameters: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    question = decision_question(parameters, request.app.state.member)
    up = upstream_of(request)
    try:
        answer = (await up.call(request, "consent", "POST", "/v1/decisions", json=question)).json()
    except UpstreamAnswer as exc:
        exc.paths = PARAMETER_OF
        raise
    return fhir(decision_parameters(answer))

"""The directory's units and members as FHIR R4 resources (dicts validated by the model
library): a unit is an ``Organization``, the ``HealthcareService`` it provides and its
vardkedja ``Endpoint``; a huvudman an ``Organization`` (id: the orgnr's ten digits); a kommun
a ``Location`` (``kommun-<kommunkod>``). The facade's routes are in
:mod:`services.fhir.directory`.
"""

from __future__ import annotations

from typing import Any, Final

from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization

from services.directory.codes import CHANNEL_LABELS, INTERVENTION_LABELS, UNIT_KIND_LABELS, label
from services.fhir.mapping import CS, NEED, REFERRAL_KIND, validated
from shared.domain.kinds import KINDS, ReferralKind
from shared.identity.identifiers.kommun import kommun
from shared.identity.identifiers.personnummer import IdentifierError
from shared.identity.identifiers.systems import (
    ORGANISATIONSNUMMER_SYSTEM,
    IdentifierKind,
    identifier_of,
)

UNIT_ID_SYSTEM: Final = "https://vardkedja.se/fhir/sid/unit-id"
# KV Kommun, SCB's kommunkod (1.2.752.129.2.2.1.18 is KV Län, the county's code).
KOMMUNKOD: Final = "urn:oid:1.2.752.129.2.2.1.17"
UNIT_KIND: Final = CS + "unit-kind"
MEMBER_KIND: Final = CS + "member-kind"
CONNECTION_TYPE: Final = CS + "endpoint-connection-type"
VARDKEDJA_KAFKA: Final = "vardkedja-kafka"
ORG_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
REFERRAL_METHOD: Final = "http://terminology.hl7.org/CodeSystem/service-referral-method"
PAYLOAD_TYPE: Final = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
# How a contact path's channel takes a referral (service-referral-method); the unit's
# inbox in vårdkedjan is secure electronic messaging.
REFERRAL_METHOD_OF_CHANNEL: Final = {
    "inbox": "elec",
    "phone": "phone",
    "secure_mail": "semail",
    "postal_address": "mail",
}


def digits(orgnr: str) -> str:
    """An organisationsnummer as the id of its ``Organization``: its ten digits."""
    return orgnr.replace("-", "")


def meta(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``meta`` of a resource from a record with its ``version`` (a read; a search
    item carries none): ``versionId`` as the read's ``ETag``, ``lastUpdated``."""
    if "version" not in record:
        return None
    out = {"versionId": str(record["version"])}
    if changed := record.get("changed_at"):
        out["lastUpdated"] = changed
    return out


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A ``Coding``."""
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _identifiers(unit: dict[str, Any]) -> list[dict[str, Any]]:
    found = [{"system": UNIT_ID_SYSTEM, "value": unit["unit_id"]}]
    if hsa := unit.get("hsa_id"):
        found.append(identifier_of(IdentifierKind.HSA_ID, hsa))
    return found


def _telecom(unit: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path in unit.get("contact_paths") or []:
        if path.get("phone"):
            out.append({"system": "phone", "value": path["phone"], "use": "work"})
        for email in (path.get("email"), path.get("secure_mail")):
            if email:
                out.append({"system": "email", "value": email, "use": "work"})
    return out


def _addresses(unit: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path in unit.get("contact_paths") or []:
        if postal := path.get("postal"):
            lines = [p for p in (postal.get("care_of"), postal.get("street")) if p]
            out.append(
                {
                    "use": "work",
                    "type": "postal",
                    "line": lines,
                    "postalCode": postal.get("postcode"),
                    "city": postal.get("city"),
                    "country": "SE",
                }
            )
    return out


def organization_of_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """A unit of the directory (replica or search item) as its ``Organization``."""
    org: dict[str, Any] = {
        "resourceType": "Organization",
        "id": unit["unit_id"],
        "meta": meta(unit),
        "identifier": _identifiers(unit),
        "active": unit["status"] != "inactive",
        "type": [
            {"coding": [coding(ORG_TYPE, "dept", "Hospital Department")]},
            {"coding": [coding(UNIT_KIND, unit["kind"], label(UNIT_KIND_LABELS, unit["kind"]))]},
        ],
        "name": unit["name"],
        "partOf": {"reference": f"Organization/{digits(unit['owner_orgnr'])}"},
        "endpoint": [{"reference": f"Endpoint/{unit['unit_id']}"}],
    }
    if telecom := _telecom(unit):
        org["telecom"] = telecom
    if addresses := _addresses(unit):
        org["address"] = addresses
    return validated(Organization, org)


def organization_of_member(member: dict[str, Any]) -> dict[str, Any]:
    """A huvudman (the directory's member record) as its ``Organization``."""
    org = {
        "resourceType": "Organization",
        "id": digits(member["orgnr"]),
        "meta": meta(member),
        "identifier": [{"system": ORGANISATIONSNUMMER_SYSTEM, "value": member["orgnr"]}],
        "active": True,
        "type": [
            {"coding": [coding(ORG_TYPE, "govt", "Government")]},
            {"coding": [coding(MEMBER_KIND, member["kind"])]},
        ],
        "name": member["name"],
        "address": [{"district": member.get("county_name"), "country": "SE"}],
    }
    return validated(Organization, org)


def location_of_kommun(kommunkod: str) -> dict[str, Any]:
    """A kommun (SCB's list, no upstream needed) as a ``Location`` of kind jurisdiction."""
    place = kommun(kommunkod)
    location = {
        "resourceType": "Location",
        "id": f"kommun-{place.code}",
        "identifier": [{"system": KOMMUNKOD, "value": place.code}],
        "status": "active",
        "name": place.name,
        "alias": [place.short_name] if place.short_name != place.name else None,
        "mode": "kind",
        "physicalType": {
            "coding": [
                coding(
                    "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "jdn",
                    "Jurisdiction",
                )
            ]
        },
        "address": {"district": place.county_name, "country": "SE"},
    }
    return validated(Location, location)


def vardkedja_address(unit: dict[str, Any]) -> str:
    """Where the federation delivers to the unit: its huvudman and unit id."""
    return f"vardkedja://{digits(unit['owner_orgnr'])}/{unit['unit_id']}"


def endpoint_of_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """The unit's vardkedja address (referrals as events over the member's Kafka) as an
    ``Endpoint``: ``suspended`` while the unit is temporarily closed, ``off`` inactive."""
    status = {"active": "active", "temporarily_closed": "suspended"}.get(unit["status"], "off")
    kinds = unit.get("referral_kinds") or []
    endpoint = {
        "resourceType": "Endpoint",
        "id": unit["unit_id"],
        "meta": meta(unit),
        "identifier": _identifiers(unit),
        "status": status,
        "connectionType": coding(CONNECTION_TYPE, VARDKEDJA_KAFKA, "vardkedja (Kafka)"),
        "name": unit["name"],
        "managingOrganization": {"reference": f"Organization/{digits(unit['owner_orgnr'])}"},
        "payloadType": [
            {"coding": [coding(REFERRAL_KIND, k, KINDS[ReferralKind(k)].label)]}
            if k in ReferralKind.__members__.values()
            else {"coding": [coding(REFERRAL_KIND, k)]}
            for k in kinds
        ]
        or [{"coding": [coding(PAYLOAD_TYPE, "none", "None")]}],
        "payloadMimeType": ["application/cloudevents+json"],
        "address": vardkedja_address(unit),
    }
    return validated(Endpoint, endpoint)


def _kommun_name(code: str) -> str:
    try:
        return kommun(code).name
    except IdentifierError:  # a code SCB's list no longer has
        return f"kommun {code}"


def _kind_label(code: str) -> str | None:
    return KINDS[ReferralKind(code)].label if code in ReferralKind.__members__.values() else None


def healthcare_service_of_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """A unit as the ``HealthcareService`` it provides."""
    kinds = unit.get("referral_kinds") or []
    methods = {"elec"} if kinds else set()
    methods |= {
        REFERRAL_METHOD_OF_CHANNEL[p["channel"]]
        for p in unit.get("contact_paths") or []
        if p.get("channel") in REFERRAL_METHOD_OF_CHANNEL
    }
    service: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": unit["unit_id"],
        "meta": meta(unit),
        "identifier": _identifiers(unit),
        "active": unit["status"] != "inactive",
        "providedBy": {"reference": f"Organization/{unit['unit_id']}", "display": unit["name"]},
        "category": [
            {"coding": [coding(UNIT_KIND, unit["kind"], label(UNIT_KIND_LABELS, unit["kind"]))]}
        ],
        "type": [{"coding": [coding(REFERRAL_KIND, k, _kind_label(k))]} for k in kinds]
        + [
            {"coding": [coding(NEED, i, label(INTERVENTION_LABELS, i))]}
            for i in unit.get("interventions") or []
        ],
        "name": unit["name"],
        "comment": unit.get("mission") or None,
        "coverageArea": [
            {"reference": f"Location/kommun-{k}", "display": _kommun_name(k)}
            for k in unit.get("kommunkoder") or []
        ],
        "referralMethod": [{"coding": [coding(REFERRAL_METHOD, m)]} for m in sorted(methods)],
        "endpoint": [{"reference": f"Endpoint/{unit['unit_id']}"}],
    }
    if telecom := _telecom(unit):
        service["telecom"] = telecom
    if unit["status"] == "temporarily_closed":
        service["notAvailable"] = [
            {"description": unit.get("status_message") or "temporarily closed"}
        ]
    for path in unit.get("contact_paths") or []:
        channel = label(CHANNEL_LABELS, path["channel"])
        service.setdefault("extraDetails", "")
        service["extraDetails"] += f"- {path['reason']}: {channel}\n"
    return validated(HealthcareService, service)

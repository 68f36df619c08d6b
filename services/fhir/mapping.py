"""The product's referral tasks as FHIR ``Task`` + ``ServiceRequest`` (FHIR workflow).

A referral to one unit is a ``Task`` (``id`` = the task id both members share) whose
``focus`` is the ``ServiceRequest`` (``id`` = the referral id) holding what the referral
asks for. The product's states follow FHIR Task already (ADR 0014); each is carried
exactly in ``businessStatus`` (code system below) and as the nearest ``Task.status``:

| product                 | Task.status  | | product        | Task.status |
|-------------------------|--------------| |----------------|-------------|
| sent                    | requested    | | in_progress    | in-progress |
| delivered, acknowledged | received     | | completed      | completed   |
| information_requested   | on-hold      | | withdrawn, cancelled, forwarded | cancelled |
| accepted                | accepted     | | declined, returned | rejected |
| undeliverable           | failed       | |                |             |

A step is asked for by ``businessStatus`` (exact) or, without it, by ``Task.status``
(:data:`STEP_OF_FHIR`: ``received`` acknowledges, ``rejected`` declines).
"""

from __future__ import annotations

from typing import Any, Final

from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from services.referral.codes import Status
from shared.domain.kinds import KINDS, ReferralKind

CS: Final = "https://vardkedja.se/fhir/CodeSystem/"
BUSINESS_STATUS: Final = CS + "task-business-status"
REFERRAL_KIND: Final = CS + "referral-kind"
NEED: Final = CS + "need"
TASK_ID: Final = "https://vardkedja.se/fhir/sid/task-id"
REFERRAL_ID: Final = "https://vardkedja.se/fhir/sid/referral-id"
CASE_REFERENCE: Final = "https://vardkedja.se/fhir/sid/case-reference"
# SE-base (HL7 Sweden) identifier systems.
PERSONNUMMER: Final = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER: Final = "http://electronichealth.se/identifier/samordningsnummer"
ORGNR: Final = "urn:oid:2.5.4.97"
# The security label of a person with protected identity (skyddad identitet).
CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

FHIR_STATUS: Final = {
    Status.SENT: "requested",
    Status.DELIVERED: "received",
    Status.ACKNOWLEDGED: "received",
    Status.INFORMATION_REQUESTED: "on-hold",
    Status.ACCEPTED: "accepted",
    Status.DECLINED: "rejected",
    Status.FORWARDED: "cancelled",
    Status.IN_PROGRESS: "in-progress",
    Status.COMPLETED: "completed",
    Status.WITHDRAWN: "cancelled",
    Status.CANCELLED: "cancelled",
    Status.RETURNED: "rejected",
    Status.UNDELIVERABLE: "failed",
}
STEP_OF_FHIR: Final = {
    "received": Status.ACKNOWLEDGED,
    "on-hold": Status.INFORMATION_REQUESTED,
    "accepted": Status.ACCEPTED,
    "rejected": Status.DECLINED,
    "in-progress": Status.IN_PROGRESS,
    "completed": Status.COMPLETED,
}
"""The step a receiving unit asks for with a ``Task.status`` alone."""
RESULT_PARTS: Final = {
    "decision": "valueCode",
    "intervention": "valueCode",
    "started_on": "valueDate",
    "text": "valueString",
}
"""A structured result (completed or declined) as ``Task.output``, one typed part each."""
PRIORITY: Final = {"normal": "routine", "urgent": "urgent", "acute": "stat"}


def person_identifier(personnummer: str) -> dict[str, str]:
    """A person's identifier as SE-base has it: a samordningsnummer's day is 61–91."""
    day = int(personnummer[6:8])
    return {"system": SAMORDNINGSNUMMER if day > 60 else PERSONNUMMER, "value": personnummer}


def _kind_code(kind: str) -> dict[str, Any]:
    label = KINDS[ReferralKind(kind)].label
    return {"coding": [{"system": REFERRAL_KIND, "code": kind, "display": label}], "text": label}


def _unit(unit_id: str, orgnr: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"Organization/{unit_id}"}
    if orgnr:
        ref["identifier"] = {"system": ORGNR, "value": orgnr}
    return ref


def _business_status(status: str) -> dict[str, Any]:
    return {"coding": [{"system": BUSINESS_STATUS, "code": status}], "text": status}


def _security(person: dict[str, Any]) -> list[dict[str, str]]:
    if not person.get("protected_identity"):
        return []
    return [{"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}]


def task_of_incoming(item: dict[str, Any]) -> dict[str, Any]:
    """A task in a unit's inbox (the referral service's ``IncomingOut``) as a ``Task``."""
    status = Status(item["status"])
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": item["task_id"],
        "meta": {
            "versionId": str(item["version"]),
            "lastUpdated": item.get("updated_at") or item["received_at"],
            "security": _security(item["person"]),
        },
        "identifier": [{"system": TASK_ID, "value": item["task_id"]}],
        "status": FHIR_STATUS[status],
        "businessStatus": _business_status(status.value),
        "intent": "order",
        "priority": PRIORITY.get(item.get("urgency") or "normal", "routine"),
        "code": _kind_code(item["kind"]),
        "focus": {"reference": f"ServiceRequest/{item['referral_id']}"},
        "for": {"identifier": person_identifier(item["person"]["personnummer"])},
        "authoredOn": item["received_at"],
        "lastModified": item.get("updated_at") or item["received_at"],
        "requester": _unit(item["sender_unit_id"], item["sender_orgnr"]),
        "owner": _unit(item["unit_id"]),
        "restriction": {"period": {"end": item["acknowledge_by"]}},
    }
    if item.get("reason"):
        task["statusReason"] = {"text": item["reason"]}
    if item.get("case_reference"):
        task["identifier"].append({"system": CASE_REFERENCE, "value": item["case_reference"]})
    output = [{"type": {"text": "outcome"}, "valueString": item["outcome"]}] * bool(
        item.get("outcome")
    )
    for part, value_type in RESULT_PARTS.items():
        if (value := (item.get("result") or {}).get(part)) is not None:
            output.append({"type": {"text": part}, value_type: value})
    if output:
        task["output"] = output
    if not task["meta"]["security"]:
        del task["meta"]["security"]
    return validated(Task, task)


def service_request_of_incoming(item: dict[str, Any]) -> dict[str, Any]:
    """What the referral asks for, as the receiving unit reads it."""
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": item["referral_id"],
        "identifier": [{"system": REFERRAL_ID, "value": item["referral_id"]}],
        "status": "active",
        "intent": "order",
        "priority": PRIORITY.get(item.get("urgency") or "normal", "routine"),
        "code": _kind_code(item["kind"]),
        "subject": {"identifier": person_identifier(item["person"]["personnummer"])},
        "requester": _unit(item["sender_unit_id"], item["sender_orgnr"]),
        "performer": [_unit(item["unit_id"])],
        "reasonCode": [
            {"coding": [{"system": NEED, "code": need}]} for need in item.get("needs") or []
        ],
    }
    if item.get("summary"):
        request["note"] = [{"text": item["summary"]}]
    if item["person"].get("protected_identity"):
        request["meta"] = {"security": _security(item["person"])}
    if not request["reasonCode"]:
        del request["reasonCode"]
    return validated(ServiceRequest, request)


def validated(model: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` after the model library's validation, as JSON."""
    out: dict[str, Any] = model.model_validate(resource).model_dump(mode="json", exclude_none=True)
    return out

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

import json
from typing import Any, Final

from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from services.referral.codes import Status
from shared.domain.kinds import KINDS, ReferralKind
from shared.identity.identifiers.systems import IdentifierKind, identifier_of, security_label

CS: Final = "https://vardkedja.se/fhir/CodeSystem/"
BUSINESS_STATUS: Final = CS + "task-business-status"
REFERRAL_KIND: Final = CS + "referral-kind"
NEED: Final = CS + "need"
TASK_ID: Final = "https://vardkedja.se/fhir/sid/task-id"
REFERRAL_ID: Final = "https://vardkedja.se/fhir/sid/referral-id"
CASE_REFERENCE: Final = "https://vardkedja.se/fhir/sid/case-reference"
# Identifiers and the protected-identity label are SE-base's (ADR 0028):
# shared.identity.identifiers.systems.
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
URGENCY: Final = {"routine": "normal", "urgent": "urgent", "asap": "acute", "stat": "acute"}
EXT: Final = "https://vardkedja.se/fhir/StructureDefinition/"
SCALAR_EXTENSIONS: Final = {
    "children_in_household": ("children-in-household", "valueCode"),
    "children_unknown_reason": ("children-unknown-reason", "valueString"),
    "persons_wish": ("persons-wish", "valueString"),
    "drug_free": ("drug-free", "valueCode"),
}
"""The referral's own fields carried as ``ServiceRequest`` extensions of a simple type."""
JSON_EXTENSIONS: Final = {
    "reachability": "reachability",
    "resolve": "resolve",
    "legal_basis": "legal-basis",
}
"""Blocks carried as an extension whose ``valueString`` is the block as the referral API
takes it (JSON); a kind's own block is the extension ``details``."""


def person_identifier(personnummer: str) -> dict[str, str]:
    """A person's identifier as SE-base has it: a samordningsnummer's day is 61-91."""
    day = int(personnummer.replace("-", "").replace("+", "")[-6:-4])
    kind = IdentifierKind.SAMORDNINGSNUMMER if day > 60 else IdentifierKind.PERSONNUMMER
    return identifier_of(kind, personnummer)


def _kind_code(kind: str) -> dict[str, Any]:
    label = KINDS[ReferralKind(kind)].label
    return {"coding": [{"system": REFERRAL_KIND, "code": kind, "display": label}], "text": label}


def org_identifier(orgnr: str) -> dict[str, str]:
    """A member's organisationsnummer as SE-base's ``Identifier``."""
    return identifier_of(IdentifierKind.ORGANISATIONSNUMMER, orgnr)


def _unit(unit_id: str, orgnr: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"Organization/{unit_id}"}
    if orgnr:
        ref["identifier"] = org_identifier(orgnr)
    return ref


def _business_status(status: str) -> dict[str, Any]:
    return {"coding": [{"system": BUSINESS_STATUS, "code": status}], "text": status}


def security_of(person: dict[str, Any]) -> list[dict[str, str]]:
    """SE-base's label of a protected identity (sekretessmarkering), or none."""
    return [security_label()] if person.get("protected_identity") else []


def _task(
    *,
    task_id: str,
    version: int,
    status: str,
    kind: str,
    urgency: str | None,
    referral_id: str,
    person: dict[str, Any],
    authored: str,
    updated: str,
    requester: dict[str, Any],
    owner: dict[str, Any],
    acknowledge_by: str,
    reason: str | None,
    case_reference: str | None,
    outcome: str | None,
    result: dict[str, Any] | None,
) -> dict[str, Any]:
    """A referral to one unit as a ``Task``, the same at the sending and the receiving unit."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"versionId": str(version), "lastUpdated": updated},
        "identifier": [{"system": TASK_ID, "value": task_id}],
        "status": FHIR_STATUS[Status(status)],
        "businessStatus": _business_status(status),
        "intent": "order",
        "priority": PRIORITY.get(urgency or "normal", "routine"),
        "code": _kind_code(kind),
        "focus": {"reference": f"ServiceRequest/{referral_id}"},
        "for": {"identifier": person_identifier(person["personnummer"])},
        "authoredOn": authored,
        "lastModified": updated,
        "requester": requester,
        "owner": owner,
        "restriction": {"period": {"end": acknowledge_by}},
    }
    if security := security_of(person):
        task["meta"]["security"] = security
    if reason:
        task["statusReason"] = {"text": reason}
    if case_reference:
        task["identifier"].append({"system": CASE_REFERENCE, "value": case_reference})
    output = [{"type": {"text": "outcome"}, "valueString": outcome}] if outcome else []
    for part, value_type in RESULT_PARTS.items():
        if (value := (result or {}).get(part)) is not None:
            output.append({"type": {"text": part}, value_type: value})
    if output:
        task["output"] = output
    return validated(Task, task)


def task_of_incoming(item: dict[str, Any]) -> dict[str, Any]:
    """A task in a unit's inbox (the referral service's ``IncomingOut``) as a ``Task``."""
    return _task(
        task_id=item["task_id"],
        version=item["version"],
        status=item["status"],
        kind=item["kind"],
        urgency=item.get("urgency"),
        referral_id=item["referral_id"],
        person=item["person"],
        authored=item["received_at"],
        updated=item.get("updated_at") or item["received_at"],
        requester=_unit(item["sender_unit_id"], item["sender_orgnr"]),
        owner=_unit(item["unit_id"]),
        acknowledge_by=item["acknowledge_by"],
        reason=item.get("reason"),
        case_reference=item.get("case_reference"),
        outcome=item.get("outcome"),
        result=item.get("result"),
    )


def task_of_sent(referral: dict[str, Any], recipient: dict[str, Any], orgnr: str) -> dict[str, Any]:
    """One recipient of a referral the caller's unit sent (``ReferralOut``) as a ``Task``."""
    return _task(
        task_id=recipient["task_id"],
        version=recipient["version"],
        status=recipient["status"],
        kind=referral["kind"],
        urgency=referral.get("urgency"),
        referral_id=referral["id"],
        person=referral["person"],
        authored=referral["created_at"],
        updated=recipient["updated_at"],
        requester=_unit(referral["sender_unit_id"], orgnr),
        owner=_unit(recipient["unit_id"], recipient["orgnr"]),
        acknowledge_by=recipient["acknowledge_by"],
        reason=recipient.get("reason"),
        case_reference=recipient.get("case_reference"),
        outcome=recipient.get("outcome"),
        result=recipient.get("result"),
    )


def _service_request(
    content: dict[str, Any],
    *,
    referral_id: str,
    requester: dict[str, Any],
    performers: list[dict[str, Any]],
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": referral_id,
        "identifier": [{"system": REFERRAL_ID, "value": referral_id}],
        "status": "active",
        "intent": "order",
        "priority": PRIORITY.get(content.get("urgency") or "normal", "routine"),
        "code": _kind_code(content["kind"]),
        "subject": {"identifier": person_identifier(content["person"]["personnummer"])},
        "requester": requester,
        "performer": performers,
    }
    if needs := content.get("needs"):
        request["reasonCode"] = [{"coding": [{"system": NEED, "code": n}]} for n in needs]
    if content.get("summary"):
        request["note"] = [{"text": content["summary"]}]
    if security := security_of(content["person"]):
        request["meta"] = {"security": security}
    extensions = [
        {"url": EXT + name, value_type: content[field]}
        for field, (name, value_type) in SCALAR_EXTENSIONS.items()
        if content.get(field) not in (None, "")
    ]
    details_field = KINDS[ReferralKind(content["kind"])].details_field
    for field, name in {**JSON_EXTENSIONS, details_field: "details"}.items():
        if content.get(field):
            extensions.append({"url": EXT + name, "valueString": json.dumps(content[field])})
    if extensions:
        request["extension"] = extensions
    return validated(ServiceRequest, request)


def service_request_of_incoming(item: dict[str, Any]) -> dict[str, Any]:
    """What the referral asks for, as the receiving unit reads it."""
    return _service_request(
        item,
        referral_id=item["referral_id"],
        requester=_unit(item["sender_unit_id"], item["sender_orgnr"]),
        performers=[_unit(item["unit_id"])],
    )


def service_request_of_sent(referral: dict[str, Any], orgnr: str) -> dict[str, Any]:
    """What a referral the caller's unit sent asks for, of every recipient."""
    return _service_request(
        referral,
        referral_id=referral["id"],
        requester=_unit(referral["sender_unit_id"], orgnr),
        performers=[_unit(r["unit_id"], r["orgnr"]) for r in referral["recipients"]],
    )


def validated(model: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` after the model library's validation, as JSON."""
    out: dict[str, Any] = model.model_validate(resource).model_dump(mode="json", exclude_none=True)
    return out

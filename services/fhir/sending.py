"""Sending a referral through the facade: ``POST Task`` (its ``ServiceRequest`` contained)
or a transaction ``Bundle`` (one ``ServiceRequest`` and the ``Task`` of each recipient),
translated to ``POST /v1/referrals`` — the consent decision, the routing and every rule of
the referral API apply, and its problems come back as ``OperationOutcome`` issues whose
``expression`` is the FHIR element (``ServiceRequest.subject``, an extension's URL, ...).

A create is made safe to retry by ``Idempotency-Key`` or, FHIR's way, by ``If-None-Exist:
identifier=<system>|<value>``: both go to the referral service's idempotency store, so a
retried or concurrent create answers the first one's result and never sends twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle

from services.fhir.common import base_of, fhir, upstream_of
from services.fhir.mapping import (
    EXT,
    JSON_EXTENSIONS,
    NEED,
    REFERRAL_KIND,
    SCALAR_EXTENSIONS,
    URGENCY,
    service_request_of_sent,
    task_of_sent,
    validated,
)
from services.fhir.outcome import FhirError
from services.fhir.upstream import UpstreamAnswer
from shared.domain.kinds import KINDS, ReferralKind
from shared.identity.identifiers import IdentifierError
from shared.identity.identifiers.systems import (
    ORGANISATIONSNUMMER_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SEKRETESSMARKERING,
    SKYDDAD_FOLKBOKFORING,
    IdentifierKind,
    parse_identifier,
)

router = APIRouter()

# A protected identity: SE-base's labels, or HL7's confidentiality R or V.
RESTRICTED: Final = (SEKRETESSMARKERING, SKYDDAD_FOLKBOKFORING, "R", "V")
# Where a field of the referral API is in a ServiceRequest (for the problems' expressions).
ELEMENT_OF: Final = {
    "kind": "ServiceRequest.code",
    "person": "ServiceRequest.subject",
    "needs": "ServiceRequest.reasonCode",
    "summary": "ServiceRequest.note",
    "urgency": "ServiceRequest.priority",
    "recipients": "ServiceRequest.performer",
    "attachment_ids": "ServiceRequest.supportingInfo",
    **{f: f"ServiceRequest.extension('{EXT}{n}')" for f, (n, _) in SCALAR_EXTENSIONS.items()},
    **{f: f"ServiceRequest.extension('{EXT}{n}')" for f, n in JSON_EXTENSIONS.items()},
}


_EXT = "https://vardkedja.se/fhir/StructureDefinition/"
TASK_EXAMPLE: Final = {
    "resourceType": "Task",
    "status": "requested",
    "intent": "order",
    "focus": {"reference": "#sr"},
    "contained": [
        {
            "resourceType": "ServiceRequest",
            "id": "sr",
            "status": "active",
            "intent": "order",
            "priority": "urgent",
            "code": {"coding": [{"system": REFERRAL_KIND, "code": "kontaktbegaran"}]},
            "subject": {"identifier": {"system": PERSONNUMMER_SYSTEM, "value": "191212121212"}},
            "reasonCode": [{"coding": [{"system": NEED, "code": "boendestod"}]}],
            "note": [{"text": "Skrivs ut inom två veckor och saknar bostad."}],
            "performer": [
                {
                    "reference": "Organization/6d3f7c1e-9a2b-4c5d-8e7f-0a1b2c3d4e5f",
                    "identifier": {"system": ORGANISATIONSNUMMER_SYSTEM, "value": "212000-0688"},
                }
            ],
            "extension": [
                {"url": _EXT + "children-in-household", "valueCode": "no"},
                {"url": _EXT + "details", "valueString": '{"kommunkod": "0780"}'},
            ],
        }
    ],
}


def _bad(element: str, rule: str, words: str) -> FhirError:
    return FhirError(422, f"{element}: {words}", expression=element, rule=rule, code="invalid")


def person_number(
    system: str, value: str, where: str = "ServiceRequest.subject.identifier", status: int = 422
) -> str:
    """The personnummer or samordningsnummer of a person's identifier (SE-base's systems or
    the OIDs); ``status`` (422, or 400 for a search parameter) naming ``where`` and the
    rule broken."""
    try:
        kind, number = parse_identifier(system, value)
    except IdentifierError as exc:
        raise FhirError(
            status, f"{where}: {exc.message}", expression=where, rule=exc.rule, code="invalid"
        ) from exc
    if kind not in (IdentifierKind.PERSONNUMMER, IdentifierKind.SAMORDNINGSNUMMER):
        raise FhirError(
            status,
            f"{where}: a personnummer or samordningsnummer",
            expression=where,
            rule="not_person",
            code="invalid",
        )
    return number


def _coded(concept: dict[str, Any] | None, system: str) -> list[str]:
    return [
        str(c["code"])
        for c in (concept or {}).get("coding") or []
        if c.get("system") == system and c.get("code")
    ]


def referral_body(request: dict[str, Any]) -> dict[str, Any]:
    """The referral API's body for a ``ServiceRequest`` (its JSON as sent)."""
    kinds = _coded(request.get("code"), REFERRAL_KIND)
    if len(kinds) != 1 or kinds[0] not in ReferralKind.__members__.values():
        raise _bad("ServiceRequest.code", "kind", f"one coding of {REFERRAL_KIND}")
    kind = ReferralKind(kinds[0])
    ident = (request.get("subject") or {}).get("identifier") or {}
    number = person_number(str(ident.get("system", "")), str(ident.get("value", "")))
    security = (request.get("meta") or {}).get("security") or []
    person = {
        "personnummer": number,
        "protected_identity": any(s.get("code") in RESTRICTED for s in security),
    }
    body: dict[str, Any] = {
        "kind": kind.value,
        "person": person,
        "needs": [n for c in request.get("reasonCode") or [] for n in _coded(c, NEED)],
        "summary": " ".join(n.get("text", "") for n in request.get("note") or []).strip(),
        "urgency": URGENCY.get(str(request.get("priority") or "routine"), "normal"),
    }
    recipients = []
    for n, performer in enumerate(request.get("performer") or []):
        unit = str(performer.get("reference", "")).removeprefix("Organization/")
        orgnr = (performer.get("identifier") or {}).get("value")
        if not unit or "/" in unit or not orgnr:
            raise _bad(
                f"ServiceRequest.performer[{n}]",
                "unit_ref",
                "Organization/<unit id> with the identifier of its member "
                f"({ORGANISATIONSNUMMER_SYSTEM})",
            )
        recipients.append({"orgnr": orgnr, "unit_id": unit})
    if recipients:
        body["recipients"] = recipients
    attachments = [
        str(i.get("reference", "")).removeprefix("DocumentReference/")
        for i in request.get("supportingInfo") or []
    ]
    if attachments:
        body["attachment_ids"] = attachments
    by_url = {e.get("url"): e for e in request.get("extension") or []}
    for field, (name, value_type) in SCALAR_EXTENSIONS.items():
        if (ext := by_url.get(EXT + name)) is not None:
            body[field] = ext.get(value_type)
    details_field = KINDS[kind].details_field
    for field, name in {**JSON_EXTENSIONS, details_field: "details"}.items():
        if (ext := by_url.get(EXT + name)) is not None:
            try:
                body[field] = json.loads(str(ext.get("valueString")))
            except ValueError as exc:
                raise _bad(
                    f"ServiceRequest.extension('{EXT}{name}')",
                    "json",
                    "valueString holds the block as JSON",
                ) from exc
    return body


def _idempotency(request: Request) -> dict[str, str]:
    """The idempotency key a create goes with: the caller's, or one made of its
    ``If-None-Exist`` criteria (the same criteria, the same key)."""
    if key := request.headers.get("idempotency-key"):
        return {"Idempotency-Key": key}
    if criteria := request.headers.get("if-none-exist"):
        if not criteria.startswith("identifier="):
            raise FhirError(
                400,
                "If-None-Exist: only identifier=<system>|<value> is supported",
                expression="If-None-Exist",
                rule="criteria",
            )
        digest = hashlib.sha256(criteria.encode()).hexdigest()[:48]
        return {"Idempotency-Key": f"fhir-if-none-exist-{digest}"}
    return {}


async def send(request: Request, service_request: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/referrals`` for ``service_request``: the referral as sent (``ReferralOut``)."""
    body = referral_body(service_request)
    up = upstream_of(request)
    try:
        answer = await up.call(
            request, "referral", "POST", "/v1/referrals", json=body, headers=_idempotency(request)
        )
    except UpstreamAnswer as exc:
        exc.paths = ELEMENT_OF
        raise
    sent: dict[str, Any] = answer.json()
    return sent


def _contained_request(task: dict[str, Any]) -> dict[str, Any]:
    focus = str((task.get("focus") or {}).get("reference", ""))
    contained: dict[str, dict[str, Any]] = {
        f"#{r.get('id')}": r for r in task.get("contained") or []
    }
    found = contained.get(focus)
    if found is None or found.get("resourceType") != "ServiceRequest":
        raise _bad(
            "Task.focus",
            "contained",
            "a reference to the ServiceRequest contained in the Task (#id)",
        )
    return found


def _check_new_task(task: dict[str, Any], where: str) -> None:
    if task.get("resourceType") != "Task":
        raise _bad(f"{where}resourceType", "type", "a Task")
    if task.get("status") not in ("requested", None) or task.get("intent") not in ("order", None):
        raise _bad(f"{where}status", "new_task", "a new Task is status requested, intent order")


@router.post(
    "/Task",
    status_code=201,
    summary="Send a referral: a Task with its ServiceRequest contained",
    description=(
        "The Task (status `requested`, intent `order`) holds the ServiceRequest it is about "
        "in `contained`, referenced by `focus` (`#id`). The ServiceRequest names the kind "
        "(`code`), the person (`subject.identifier`, SE-base personnummer or samordningsnummer), "
        "the needs (`reasonCode`), the summary (`note`), the urgency (`priority`) and the one "
        "receiving unit (`performer`: `Organization/<unit id>` with its member's "
        "organisationsnummer) — several go in a transaction Bundle. The consent decision "
        "applies as in `POST /v1/referrals` (403 `OperationOutcome` naming the missing "
        "basis). Send `Idempotency-Key` or `If-None-Exist` to retry safely. Scope "
        "`referral:write`."
    ),
)
async def create_task(
    request: Request, task: Annotated[dict[str, Any], Body(examples=[TASK_EXAMPLE])]
) -> JSONResponse:
    _check_new_task(task, "Task.")
    service_request = _contained_request(task)
    if len(service_request.get("performer") or []) > 1:
        raise _bad(
            "ServiceRequest.performer",
            "one_performer",
            "one receiving unit per Task: send several in a transaction Bundle",
        )
    sent = await send(request, service_request)
    orgnr = request.app.state.member
    [recipient] = sent["recipients"]
    out = task_of_sent(sent, recipient, orgnr)
    version = recipient["version"]
    where = f"{base_of(request)}/Task/{out['id']}/_history/{version}"
    return fhir(out, status=201, version=version, location=where)


@router.post(
    "",
    summary="A transaction: one ServiceRequest and the Task of each receiving unit",
    description=(
        "A `transaction` Bundle of one ServiceRequest (`fullUrl` `urn:uuid:...`) and one "
        "Task per receiving unit whose `focus` is that `urn:uuid` and whose `owner` is the unit "
        "(or none, and the ServiceRequest's `performer` names them). Sent all or nothing, as "
        "one referral; the `transaction-response` lists the ServiceRequest and every Task "
        "with its `location` and `etag`. Scope `referral:write`."
    ),
)
async def transaction(request: Request, bundle: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise _bad("Bundle.type", "transaction", "a transaction Bundle")
    entries = bundle.get("entry") or []
    requests = [
        e for e in entries if (e.get("resource") or {}).get("resourceType") == "ServiceRequest"
    ]
    tasks = [e for e in entries if (e.get("resource") or {}).get("resourceType") == "Task"]
    if len(requests) != 1 or len(tasks) + 1 != len(entries) or not tasks:
        raise _bad(
            "Bundle.entry", "one_request", "one ServiceRequest and at least one Task, nothing else"
        )
    service_request = dict(requests[0]["resource"])
    url = requests[0].get("fullUrl")
    owners = []
    for n, entry in enumerate(tasks):
        task = entry["resource"]
        _check_new_task(task, f"Bundle.entry[{n}].resource.")
        if (task.get("focus") or {}).get("reference") != url:
            raise _bad(f"Bundle.entry[{n}].resource.focus", "focus", "the ServiceRequest's fullUrl")
        if task.get("owner"):
            owners.append(task["owner"])
    if owners:
        if service_request.get("performer") and service_request["performer"] != owners:
            raise _bad("ServiceRequest.performer", "owners", "the Tasks' owners, or left out")
        service_request["performer"] = owners
    sent = await send(request, service_request)
    orgnr = request.app.state.member
    base = base_of(request)
    out_request = service_request_of_sent(sent, orgnr)
    response_entries = [
        {
            "fullUrl": f"{base}/ServiceRequest/{sent['id']}",
            "resource": out_request,
            "response": {"status": "201 Created", "location": f"ServiceRequest/{sent['id']}"},
        }
    ]
    for recipient in sent["recipients"]:
        task = task_of_sent(sent, recipient, orgnr)
        response_entries.append(
            {
                "fullUrl": f"{base}/Task/{task['id']}",
                "resource": task,
                "response": {
                    "status": "201 Created",
                    "location": f"Task/{task['id']}/_history/{recipient['version']}",
                    "etag": f'W/"{recipient["version"]}"',
                },
            }
        )
    out = {"resourceType": "Bundle", "type": "transaction-response", "entry": response_entries}
    return fhir(validated(Bundle, out))

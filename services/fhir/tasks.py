"""``Task`` (with its ``ServiceRequest``) read, searched and moved on through the facade.

The receiving unit's view: a caller with a unit claim reads its unit's inbox
(``GET /v1/incoming``) as ``Task`` resources. Steps are a JSON Patch (or a whole ``PUT``)
changing ``status``/``businessStatus`` (with ``statusReason`` or an ``output`` "outcome"),
sent on as the closed loop's transition with the caller's ``If-Match`` — a step the task
does not allow answers 409 with the allowed ones listed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from services.fhir.common import fhir, searchset, upstream_of
from services.fhir.mapping import (
    BUSINESS_STATUS,
    CASE_REFERENCE,
    FHIR_STATUS,
    RESULT_PARTS,
    STEP_OF_FHIR,
    service_request_of_incoming,
    service_request_of_sent,
    task_of_incoming,
    task_of_sent,
)
from services.fhir.outcome import FhirError, outcome_responses
from services.fhir.sending import person_number
from services.fhir.upstream import UpstreamAnswer
from services.referral.codes import Status

router = APIRouter()
TASK_ID: Final = r"^[A-Za-z0-9\-.]{1,64}$"
JSON_PATCH: Final = "application/json-patch+json"


def _codes(param: str | None, name: str) -> list[str]:
    if param is None:
        return []
    values = [v.strip() for v in param.split(",") if v.strip()]
    if not values:
        raise FhirError(400, f"{name}: a value is required", expression=name, rule="missing")
    return values


def statuses_of(status: str | None, business_status: str | None) -> list[str] | None:
    """The product statuses a search's ``status`` and ``business-status`` name (None: any)."""
    wanted: set[str] | None = None
    if fhir_codes := _codes(status, "status"):
        known = set(FHIR_STATUS.values())
        if bad := [c for c in fhir_codes if c not in known]:
            raise FhirError(
                400,
                f"status: not a Task status used here ({bad[0]})",
                expression="status",
                rule="code",
            )
        wanted = {s.value for s, f in FHIR_STATUS.items() if f in fhir_codes}
    if codes := _codes(business_status, "business-status"):
        codes = [c.rsplit("|", 1)[-1] for c in codes]
        if bad := [c for c in codes if c not in Status.__members__.values()]:
            raise FhirError(
                400,
                f"business-status: unknown code ({bad[0]})",
                expression="business-status",
                rule="code",
            )
        wanted = set(codes) if wanted is None else wanted & set(codes)
    return None if wanted is None else sorted(wanted)


def since(last_updated: str) -> str:
    """``_lastUpdated=gt<instant>`` (or ``ge``): the instant changes are asked for after."""
    prefix, instant = last_updated[:2], last_updated[2:]
    try:
        at = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if prefix not in ("gt", "ge") or at is None or at.tzinfo is None:
        raise FhirError(
            400,
            "_lastUpdated: gt or ge and an instant with its offset, e.g. gt2026-12-07T10:00:00Z",
            expression="_lastUpdated",
            rule="instant",
        )
    if prefix == "ge":
        at -= dt.timedelta(microseconds=1)
    return at.isoformat()


def _ref_id(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    ref = value.rsplit("/", 1)[-1]
    if not ref:
        raise FhirError(400, f"{name}: a reference is required", expression=name, rule="missing")
    return ref


TaskIdPath = Annotated[str, Path(pattern=TASK_ID, description="the task id")]


@router.get(
    "/Task/{task_id}",
    summary="Read a Task (a referral in your unit's inbox)",
    description=(
        "The task with `meta.versionId` and `ETag` (send it as `If-Match` with a step). "
        "Scope `referral:read`; the token's unit claim names the inbox. Errors are "
        "`OperationOutcome`s: 401, 403, 404."
    ),
)
async def read_task(request: Request, task_id: TaskIdPath) -> JSONResponse:
    up = upstream_of(request)
    try:
        item = (await up.call(request, "referral", "GET", f"/v1/incoming/{task_id}")).json()
    except UpstreamAnswer as exc:
        if exc.status != 404:
            raise
        # Not in the caller's inbox: a task of a referral the caller's unit sent?
        sent = (await up.call(request, "referral", "GET", f"/v1/referrals/{task_id}")).json()
        [recipient] = [r for r in sent["recipients"] if r["task_id"] == task_id]
        task = task_of_sent(sent, recipient, request.app.state.member)
        return fhir(task, version=recipient["version"])
    return fhir(task_of_incoming(item), version=item["version"])


@router.get(
    "/ServiceRequest/{referral_id}",
    summary="Read the ServiceRequest a Task in your unit's inbox is about",
    description=(
        "What the referral asks for: one your unit sent, or — with `_task`, the task in "
        "your unit's inbox that it is the focus of — one your unit received. "
        "Scope `referral:read`."
    ),
)
async def read_service_request(
    request: Request,
    referral_id: Annotated[str, Path(pattern=TASK_ID)],
    task: Annotated[str | None, Query(alias="_task", pattern=TASK_ID)] = None,
) -> JSONResponse:
    up = upstream_of(request)
    if task is None:
        sent = (await up.call(request, "referral", "GET", f"/v1/referrals/{referral_id}")).json()
        if sent["id"] != referral_id:
            raise FhirError(404, "no such ServiceRequest", rule="not-found")
        return fhir(service_request_of_sent(sent, request.app.state.member))
    item = (await up.call(request, "referral", "GET", f"/v1/incoming/{task}")).json()
    if item["referral_id"] != referral_id:
        raise FhirError(404, "no such ServiceRequest for this task", rule="not-found")
    return fhir(service_request_of_incoming(item))


@router.get(
    "/Task",
    summary="Search Tasks: your unit's inbox, or what it sent",
    description=(
        "Your unit's inbox, or with `requester` (your unit: `Organization/<unit id>`) the "
        "tasks of the referrals your unit sent (a page holds the tasks of `_count` referrals). "
        "Parameters: `owner` (your unit: `Organization/<unit id>`), `status` (Task status "
        "codes), `business-status` (the product's exact statuses), `code` (the referral kind, "
        "one), `_include=Task:focus` (the ServiceRequests), `_lastUpdated` (`gt` or `ge` an "
        "instant: changed since — poll for answers without a subscription), `_count` "
        "(1–100, default 20). "
        "The answer is a `searchset` Bundle with `self` and `next` links; follow `next` to "
        "page (it holds an opaque `_page`): no page loses or repeats a task. A person is "
        "searched for only with `POST Task/_search` (never a personnummer in a URL). "
        "Scope `referral:read`."
    ),
)
async def search_tasks(
    request: Request,
    owner: str | None = None,
    requester: str | None = None,
    status: str | None = None,
    business_status: Annotated[str | None, Query(alias="business-status")] = None,
    code: str | None = None,
    include: Annotated[list[str] | None, Query(alias="_include")] = None,
    last_updated: Annotated[str | None, Query(alias="_lastUpdated", max_length=40)] = None,
    count: Annotated[int | None, Query(alias="_count", ge=1)] = None,
    page: Annotated[str | None, Query(alias="_page", max_length=200)] = None,
) -> JSONResponse:
    settings = request.app.state.fhir_settings
    limit = min(count or 20, settings.page_max)
    params: dict[str, Any] = {"limit": limit}
    if (wanted := statuses_of(status, business_status)) is not None:
        if not wanted:
            return fhir(searchset(request, "Task", [], None))
        params["status"] = wanted
    if kinds := _codes(code, "code"):
        kinds = [k.rsplit("|", 1)[-1] for k in kinds]
        if len(kinds) > 1:
            raise FhirError(400, "code: one kind at a time", expression="code", rule="one")
        params["kind"] = kinds[0]
    if page:
        params["cursor"] = page
    if last_updated is not None:
        params["updated_since"] = since(last_updated)
    for inc in include or []:
        if inc != "Task:focus":
            raise FhirError(
                400, "_include: only Task:focus", expression="_include", rule="not-supported"
            )
    up = upstream_of(request)
    if (sender := _ref_id(requester, "requester")) is not None:
        if wanted is not None and len(wanted) == 1:
            params["status"] = wanted[0]
        else:
            params.pop("status", None)
        answer = (await up.call(request, "referral", "GET", "/v1/outgoing", params=params)).json()
        orgnr = request.app.state.member
        sent = [r for r in answer["items"] if r["sender_unit_id"] == sender]
        entries = [
            (task_of_sent(r, t, orgnr), "match")
            for r in sent
            for t in r["recipients"]
            if wanted is None or t["status"] in wanted
        ]
        if include:
            entries += [(service_request_of_sent(r, orgnr), "include") for r in sent]
        return fhir(searchset(request, "Task", entries, answer.get("next_cursor")))
    answer = (await up.call(request, "referral", "GET", "/v1/incoming", params=params)).json()
    items: list[dict[str, Any]] = answer["items"]
    if (unit := _ref_id(owner, "owner")) is not None:
        items = [i for i in items if i["unit_id"] == unit]
    entries = [(task_of_incoming(i), "match") for i in items]
    if include:
        entries += [(service_request_of_incoming(i), "include") for i in items]
    return fhir(searchset(request, "Task", entries, answer.get("next_cursor")))


@router.post(
    "/Task/_search",
    summary="Search Tasks about a person (the person in the body, never in a URL)",
    description=(
        "FHIR's search by POST: an `application/x-www-form-urlencoded` body with `patient` "
        "(or `patient:identifier`) = `<system>|<personnummer>` — SE-base "
        "`http://electronichealth.se/identifier/personnummer` or `.../samordningsnummer`, or "
        "their OIDs. Every task of this member about the person, sent or received, as the "
        "referral API's person search has them (scope `referral:person`; every access is "
        "audited; protected identities only with the role `protected_identity`)."
    ),
)
async def search_tasks_by_person(request: Request) -> JSONResponse:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    value = next(iter(form.get("patient") or form.get("patient:identifier") or []), None)
    if value is None or "|" not in value:
        raise FhirError(
            400,
            "patient: <system>|<personnummer> is required",
            expression="patient",
            rule="missing",
        )
    system, number = value.split("|", 1)
    personnummer = person_number(system, number, where="patient")
    up = upstream_of(request)
    try:
        found = await up.call(
            request, "referral", "POST", "/v1/person-search", json={"personnummer": personnummer}
        )
    except UpstreamAnswer as exc:
        exc.paths = {"personnummer": "patient"}
        raise
    orgnr = request.app.state.member
    entries = []
    for item in found.json():
        if "task_id" in item:
            entries.append((task_of_incoming(item), "match"))
        else:
            entries += [(task_of_sent(item, r, orgnr), "match") for r in item["recipients"]]
    return fhir(searchset(request, "Task", entries, None))


def step_of(task: dict[str, Any]) -> dict[str, Any]:
    """The closed loop's transition a changed ``Task`` asks for."""
    to: str | None = None
    for coding in (task.get("businessStatus") or {}).get("coding") or []:
        if coding.get("system") == BUSINESS_STATUS:
            to = coding.get("code")
    if to is None:
        fhir_status = task.get("status")
        if fhir_status not in STEP_OF_FHIR:
            raise FhirError(
                422,
                "status: not a step a receiving unit takes "
                f"(one of {', '.join(STEP_OF_FHIR)}, or a businessStatus)",
                expression="Task.status",
                rule="step",
                code="business-rule",
            )
        to = STEP_OF_FHIR[fhir_status].value
    body: dict[str, Any] = {"to": to}
    if reason := (task.get("statusReason") or {}).get("text"):
        # Asking the sender for more information: the reason is the question put to it.
        body["question" if to == Status.INFORMATION_REQUESTED else "reason"] = reason
    result: dict[str, Any] = {}
    for out in task.get("output") or []:
        kind = (out.get("type") or {}).get("text")
        value = next((v for k, v in out.items() if k.startswith("value")), None)
        if kind == "outcome" and value:
            body["outcome"] = value
        elif kind in RESULT_PARTS and value is not None:
            result[kind] = value
    if result:
        body["result"] = result
    for ident in task.get("identifier") or []:
        if ident.get("system") == CASE_REFERENCE and ident.get("value"):
            body["case_reference"] = ident["value"]
    return body


async def _step(request: Request, task_id: str, changed: dict[str, Any]) -> JSONResponse:
    if request.headers.get("if-match") is None:
        raise FhirError(
            428,
            "If-Match: send the ETag of the version you read",
            expression="If-Match",
            rule="required",
        )
    up = upstream_of(request)
    item = (
        await up.call(
            request,
            "referral",
            "POST",
            f"/v1/incoming/{task_id}/transitions",
            json=step_of(changed),
        )
    ).json()
    return fhir(task_of_incoming(item), version=str(item["version"]))


@router.put(
    "/Task/{task_id}",
    responses=outcome_responses(409, 412, 428),
    summary="Take a step with a Task your unit holds (the whole Task)",
    description=(
        "Send the Task as you read it with the new `status` or `businessStatus` (the "
        "product's exact step: e.g. `acknowledged`, `accepted`, `declined` with "
        "`statusReason`, `completed` with an `output` typed `outcome`). `If-Match` with the "
        "Task's `ETag` is required (412 if it changed, 428 without). A step the task does not "
        "allow answers 409 listing the allowed ones. Scope `referral:write`."
    ),
)
async def put_task(
    request: Request, task_id: TaskIdPath, task: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    if task.get("resourceType") != "Task" or task.get("id") != task_id:
        raise FhirError(
            400,
            "the body must be this Task (resourceType Task, the same id)",
            expression="Task.id",
            rule="same-id",
        )
    return await _step(request, task_id, task)


@router.patch(
    "/Task/{task_id}",
    responses=outcome_responses(409, 412, 428),
    summary="Take a step with a Task your unit holds (JSON Patch)",
    description=(
        "A JSON Patch (`application/json-patch+json`) of `replace`/`add` operations on "
        "`/status`, `/businessStatus`, `/statusReason`, `/output` or `/identifier` — as "
        "`PUT`, with `If-Match` required. Scope `referral:write`."
    ),
)
async def patch_task(
    request: Request,
    task_id: TaskIdPath,
    ops: Annotated[list[dict[str, Any]], Body(examples=[PATCH_EXAMPLE])],
) -> JSONResponse:
    changed: dict[str, Any] = {}
    for n, op in enumerate(ops):
        path = str(op.get("path", ""))
        field = path.strip("/").split("/", 1)[0]
        if op.get("op") not in ("replace", "add") or field not in PATCHABLE:
            raise FhirError(
                422,
                f"{n}: only replace/add of {', '.join(sorted(PATCHABLE))}",
                expression=f"[{n}].path",
                rule="patch",
                code="not-supported",
            )
        if path.strip("/") == field:
            changed[field] = op.get("value")
        else:  # an element added to a list, e.g. /output/- or /identifier/-
            changed.setdefault(field, []).append(op.get("value"))
    return await _step(request, task_id, changed)


PATCH_EXAMPLE: Final = [
    {
        "op": "replace",
        "path": "/businessStatus",
        "value": {"coding": [{"system": BUSINESS_STATUS, "code": "completed"}]},
    },
    {
        "op": "add",
        "path": "/output/-",
        "value": {"type": {"text": "outcome"}, "valueString": "Boendestöd beviljat."},
    },
    {
        "op": "add",
        "path": "/output/-",
        "value": {"type": {"text": "decision"}, "valueCode": "granted"},
    },
    {
        "op": "add",
        "path": "/output/-",
        "value": {"type": {"text": "intervention"}, "valueCode": "boendestod"},
    },
    {
        "op": "add",
        "path": "/output/-",
        "value": {"type": {"text": "started_on"}, "valueDate": "2026-12-01"},
    },
]
PATCHABLE: Final = frozenset({"status", "businessStatus", "statusReason", "output", "identifier"})

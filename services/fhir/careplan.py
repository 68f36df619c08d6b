"""The plans of SIP and remissmöte meetings as FHIR R4 ``CarePlan``.

A plan (the referral service's ``PlanOut``) is a ``CarePlan`` with ``intent`` ``plan``:

- ``status``: ``active``; ``revoked`` for a party's copy whose basis ended (it holds nothing
  about the person: its ``subject`` is then a display only).
- ``category``: the meeting kind (``sip``, ``remissmote``), code system below.
- ``subject``: the person's SE-base identifier; ``author``: the convening unit
  (``Organization/<unit id>``, the orgnr as identifier).
- ``careTeam``: a contained ``CareTeam`` of the units that may read the plan, each with its
  roles (convener, coordinator, action owner, participant).
- ``goal``: contained ``Goal``s; the person's own goals (in their own words) have
  ``expressedBy`` = the person.
- ``activity`` per action, in the plan's order (``activity.id`` = the action id):
  ``detail.status`` planned/started/ended/cancelled → not-started/in-progress/completed/
  cancelled, ``detail.code`` the intervention, ``performer`` the owner unit (or an outside
  actor as ``display``), ``scheduledPeriod`` its dates to start and to end by, an ended
  action's outcome as ``outcomeCodeableConcept`` and a cancelled one's reason as
  ``statusReason``.
- ``period``: from the earliest date to start to the latest date to end; the follow-up date
  is the extension ``follow-up-date``. ``meta.versionId`` and the ``ETag`` are the plan's
  version (send it as ``If-Match`` to the referral API's action steps).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.careplan import CarePlan

from services.fhir.common import fhir, searchset, upstream_of
from services.fhir.mapping import CS, EXT, org_identifier, person_identifier, security_of, validated
from services.fhir.outcome import FhirError
from shared.domain.codes import Intervention
from shared.domain.labelled import labels

router = APIRouter()

PLAN_KIND: Final = CS + "plan-kind"
INTERVENTION: Final = CS + "intervention"
PLAN_ROLE: Final = CS + "plan-role"
ACTION_STATUS: Final = CS + "plan-action-status"
ACTION_OUTCOME: Final = CS + "plan-action-outcome"
PLAN_ID: Final = "https://vardkedja.se/fhir/sid/plan-id"
FOLLOW_UP: Final = EXT + "follow-up-date"
PLAN_ID_PATTERN: Final = r"^[A-Za-z0-9\-]{1,64}$"
KIND_LABELS: Final = {
    "sip": "Samordnad individuell plan (SIP)",
    "remissmote": "Remissmöte",
    "samordningsmote": "Samordningsmöte",
}
ACTIVITY_STATUS: Final = {
    "planned": "not-started",
    "started": "in-progress",
    "ended": "completed",
    "cancelled": "cancelled",
}
INTERVENTION_LABELS: Final = {str(k): v for k, v in labels(Intervention).items()}


def _unit(orgnr: str | None, unit_id: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"Organization/{unit_id}"}
    if orgnr:
        ref["identifier"] = org_identifier(orgnr)
    return ref


def _coded(system: str, code: str, label: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code} | ({"display": label} if label else {})
    return {"coding": [coding], "text": label or code}


def _care_team(plan: dict[str, Any]) -> dict[str, Any]:
    roles: dict[tuple[str, str], list[str]] = {}

    def add(orgnr: str, unit_id: str, role: str) -> None:
        held = roles.setdefault((orgnr, unit_id), [])
        if role not in held:
            held.append(role)

    add(plan["owner_orgnr"], plan["owner_unit_id"], "convener")
    for c in plan["coordinators"]:
        add(c["orgnr"], c["unit_id"], "coordinator")
    for a in plan["actions"]:
        if a.get("unit_id"):
            add(a["orgnr"], a["unit_id"], "action-owner")
    for v in plan.get("viewers") or []:
        add(v["orgnr"], v["unit_id"], "participant")
    return {
        "resourceType": "CareTeam",
        "id": "team",
        "status": "active",
        "participant": [
            {"role": [_coded(PLAN_ROLE, r) for r in held], "member": _unit(orgnr, unit_id)}
            for (orgnr, unit_id), held in roles.items()
        ],
    }


def _activity(action: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "status": ACTIVITY_STATUS.get(action["status"], "unknown"),
        "code": _coded(
            INTERVENTION, action["intervention"], INTERVENTION_LABELS.get(action["intervention"])
        ),
        "performer": [
            _unit(action.get("orgnr"), action["unit_id"])
            if action.get("unit_id")
            else {"display": action.get("outside_actor") or "okänd utförare"}
        ],
        "extension": [
            {
                "url": EXT + "plan-action-status",
                "valueCoding": {"system": ACTION_STATUS, "code": action["status"]},
            }
        ],
    }
    if action.get("description"):
        detail["description"] = action["description"]
    period = {
        k: action[f]
        for k, f in (("start", "start_by"), ("end", "end_by"))
        if action.get(f) is not None
    }
    if period:
        detail["scheduledPeriod"] = period
    if action.get("reason"):
        detail["statusReason"] = {"text": action["reason"]}
    activity: dict[str, Any] = {"id": action["id"], "detail": detail}
    if action.get("outcome"):
        activity["outcomeCodeableConcept"] = [_coded(ACTION_OUTCOME, action["outcome"])]
    if action.get("note"):
        activity["progress"] = [{"text": action["note"]}]
    return activity


def care_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan (the referral service's ``PlanOut``) as a ``CarePlan``."""
    person = plan.get("person") or {}
    number = person.get("personnummer")
    subject: dict[str, Any] = (
        {"identifier": person_identifier(number.replace("-", ""))}
        if number
        else {"display": "uppgifterna om personen är borttagna (grunden för delningen upphörde)"}
    )
    withdrawn = plan.get("status") == "withdrawn"
    goals = [(g, True) for g in plan.get("own_goals") or []] + [
        (g, False) for g in plan.get("goals") or []
    ]
    contained: list[dict[str, Any]] = [_care_team(plan)]
    for n, (text, own) in enumerate(goals, start=1):
        goal: dict[str, Any] = {
            "resourceType": "Goal",
            "id": f"goal-{n}",
            "lifecycleStatus": "cancelled" if withdrawn else "active",
            "description": {"text": text},
            "subject": subject,
        }
        if own:
            goal["expressedBy"] = subject
        contained.append(goal)
    starts = sorted(a["start_by"] for a in plan["actions"] if a.get("start_by"))
    ends = sorted(a["end_by"] for a in plan["actions"] if a.get("end_by"))
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan["id"],
        "meta": {"versionId": str(plan["version"])},
        "contained": contained,
        "extension": [{"url": FOLLOW_UP, "valueDate": plan["follow_up_date"]}],
        "identifier": [{"system": PLAN_ID, "value": plan["id"]}],
        "status": "revoked" if withdrawn else "active",
        "intent": "plan",
        "category": [_coded(PLAN_KIND, plan["kind"], KIND_LABELS.get(plan["kind"]))],
        "subject": subject,
        "author": _unit(plan["owner_orgnr"], plan["owner_unit_id"]),
        "careTeam": [{"reference": "#team"}],
        "goal": [{"reference": f"#goal-{n}"} for n in range(1, len(goals) + 1)],
        "activity": [_activity(a) for a in plan["actions"]],
    }
    if starts or ends:
        resource["period"] = {"start": (starts or ends)[0]} | ({"end": ends[-1]} if ends else {})
    if not resource["goal"]:
        del resource["goal"]
    if security := security_of(person):
        resource["meta"]["security"] = security
    return validated(CarePlan, resource)


def careplan_capabilities() -> list[dict[str, Any]]:
    """The ``CapabilityStatement.rest.resource`` entries of ``CarePlan``."""
    return [
        {
            "type": "CarePlan",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "searchParam": [
                {
                    "name": "performer",
                    "type": "reference",
                    "documentation": "your unit (Organization/<unit id>): the plans in which "
                    "it owns an action",
                },
                {
                    "name": "coordinator",
                    "type": "reference",
                    "documentation": "your unit (Organization/<unit id>): the plans it coordinates",
                },
            ],
        }
    ]


PlanIdPath = Annotated[str, Path(pattern=PLAN_ID_PATTERN, description="the plan id")]


async def _plan(request: Request, plan_id: str) -> dict[str, Any]:
    answer = await upstream_of(request).call(request, "referral", "GET", f"/v1/plans/{plan_id}")
    plan: dict[str, Any] = answer.json()
    return plan


@router.get(
    "/CarePlan/{plan_id}",
    summary="Read a plan your unit takes part in (SIP or remissmöte)",
    description=(
        "The plan with `meta.versionId` and `ETag` (the plan's version: `If-Match` of the "
        "referral API's action steps). Audited by the referral service. Scope "
        "`referral:read`. Errors are `OperationOutcome`s: 401, 403, 404."
    ),
)
async def read_care_plan(request: Request, plan_id: PlanIdPath) -> JSONResponse:
    plan = await _plan(request, plan_id)
    return fhir(care_plan(plan), version=plan["version"])


def _unit_of(value: str, name: str) -> str:
    unit = value.removeprefix("Organization/")
    if not value.startswith("Organization/") or not unit or "/" in unit:
        raise FhirError(
            400, f"{name}: Organization/<unit id> (your unit)", expression=name, rule="reference"
        )
    return unit


@router.get(
    "/CarePlan",
    summary="Search the plans your unit owns actions in or coordinates",
    description=(
        "One of `performer` (your unit, `Organization/<unit id>`: the plans in which it owns "
        "an action, from the referral API's `/v1/plan-actions`) or `coordinator` (your unit: "
        "the plans it coordinates, from `/v1/coordination`). The answer is a `searchset` "
        "Bundle of every such plan (no paging), each with `meta.versionId`. Every plan read "
        "is audited. Scope `referral:read`."
    ),
)
async def search_care_plans(
    request: Request,
    performer: Annotated[str | None, Query(max_length=100)] = None,
    coordinator: Annotated[str | None, Query(max_length=100)] = None,
) -> JSONResponse:
    if (performer is None) == (coordinator is None):
        raise FhirError(
            400,
            "performer or coordinator: exactly one is required",
            expression="performer",
            rule="one",
        )
    up = upstream_of(request)
    ids: list[str] = []
    if performer is not None:
        unit = _unit_of(performer, "performer")
        items = (await up.call(request, "referral", "GET", "/v1/plan-actions")).json()
        ids = [i["plan_id"] for i in items if i["action"].get("unit_id") == unit]
    else:
        unit = _unit_of(str(coordinator), "coordinator")
        found = (await up.call(request, "referral", "GET", "/v1/coordination")).json()
        ids = [p["id"] for p in found["plans"]]
    plans = [await _plan(request, plan_id) for plan_id in dict.fromkeys(ids)]
    if coordinator is not None:
        plans = [p for p in plans if any(c["unit_id"] == unit for c in p["coordinators"])]
    return fhir(searchset(request, "CarePlan", [(care_plan(p), "match") for p in plans], None))

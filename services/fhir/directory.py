"""The directory as FHIR: ``HealthcareService``, ``Organization``, ``Location``, ``Endpoint``
and ``HealthcareService/$resolve``, read from this member's directory service.

Every unit of the federation (the directory's replica) is two resources with the unit's id:
an ``Organization`` (the function, ``partOf`` its huvudman) and the ``HealthcareService``
it provides (unit kind as ``category``; referral kinds received and interventions offered
as ``type``). Its huvudman is an ``Organization`` whose id is the organisationsnummer's ten
digits. Each kommun a unit covers is a ``Location`` (``kommun-<kommunkod>``, SCB's code
under KV Kommun, ``urn:oid:1.2.752.129.2.2.1.17``), and the unit's vardkedja address an
``Endpoint`` with the unit's id (``vardkedja://<orgnr digits>/<unit id>``).

``$resolve`` answers a ``Parameters`` resource: ``fallback`` (no unit receives the kind
there; the routes are the kommun's intake) and one ``route`` per chosen unit, best first,
with its ``rank``, the ``service`` (the ``HealthcareService``), the routing ``reason``, the
``matched-need``s, ``age-fits``, its own ``fallback`` and the ``contact-path`` to use.
Everything needs the scope ``directory:read`` (the caller's token goes on unchanged).
The resources are built in :mod:`services.fhir.directory_mapping`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.parameters import Parameters

from services.directory.codes import CHANNEL_LABELS, UnitKind, label
from services.fhir.common import fhir, searchset, upstream_of
from services.fhir.directory_mapping import (
    UNIT_ID_SYSTEM,
    UNIT_KIND,
    coding,
    endpoint_of_unit,
    healthcare_service_of_unit,
    location_of_kommun,
    organization_of_member,
    organization_of_unit,
    vardkedja_address,
)
from services.fhir.mapping import NEED, REFERRAL_KIND, validated
from services.fhir.outcome import FhirError
from services.fhir.upstream import UpstreamAnswer
from shared.domain.codes import Intervention
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers.kommun import kommun
from shared.identity.identifiers.orgnr import normalise_orgnr
from shared.identity.identifiers.personnummer import IdentifierError
from shared.identity.identifiers.systems import ORGANISATIONSNUMMER_SYSTEM

router = APIRouter()

RESOURCE_ID: Final = r"^[A-Za-z0-9\-.]{1,64}$"
SCOPE: Final = "Scope `directory:read`."
ERRORS: Final = " Errors are `OperationOutcome`s (400 naming the parameter, 401, 403, 404)."

IdPath = Annotated[str, Path(pattern=RESOURCE_ID, description="the resource's id")]


def directory_capabilities() -> list[dict[str, Any]]:
    """The ``CapabilityStatement.rest.resource`` entries of the directory's resources."""

    def params(*items: tuple[str, str, str]) -> list[dict[str, str]]:
        return [{"name": n, "type": t, "documentation": d} for n, t, d in items]

    count = ("_count", "number", "page size, 1-100 (default 20)")
    return [
        {
            "type": "HealthcareService",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": params(
                ("service-category", "token", "the unit kind (unit-kind code system)"),
                ("service-type", "token", "a referral kind received or an intervention offered"),
                ("coverage-area", "reference", "a kommun: Location/kommun-<kod> or a kommunkod"),
                ("name", "string", "words of the name, mission or contact reasons"),
                ("active", "token", "true: listed units; false: inactive ones"),
                ("organization", "reference", "the huvudman: Organization/<orgnr digits>"),
                count,
            ),
            "operation": [
                {
                    "name": "resolve",
                    "definition": "https://vardkedja.se/fhir/OperationDefinition/"
                    "HealthcareService-resolve",
                    "documentation": "the receiving units for a referral (kommunkod, kind, "
                    "needs; POST: also age): a Parameters resource of ranked routes",
                }
            ],
        },
        {
            "type": "Organization",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": params(
                ("name", "string", "the name (huvudmän: starts with; units: words)"),
                ("identifier", "token", "orgnr (urn:oid:2.5.4.97) or unit id"),
                ("partof", "reference", "the huvudman's units: Organization/<orgnr digits>"),
                count,
            ),
        },
        {"type": "Location", "interaction": [{"code": "read"}]},
        {"type": "Endpoint", "interaction": [{"code": "read"}]},
    ]


# --- Parameters ------------------------------------------------------------------------------


def _bad(name: str, words: str, rule: str = "invalid") -> FhirError:
    return FhirError(400, f"{name}: {words}", expression=name, rule=rule)


def _one(value: str | None, name: str) -> str | None:
    """A search parameter's single value (a comma-separated OR is not supported here)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise _bad(name, "a value is required", "missing")
    if "," in value:
        raise _bad(name, "one value at a time", "one")
    return value


def _kommunkod(value: str, name: str) -> str:
    """A kommun as a kommunkod, a ``kommun-<kod>`` id or a ``Location/kommun-<kod>`` ref."""
    code = value.rsplit("/", 1)[-1].removeprefix("kommun-").rsplit("|", 1)[-1]
    try:
        return kommun(code).code
    except IdentifierError as exc:
        raise _bad(
            name, "not a Swedish kommun (kommunkod or Location/kommun-<kod>)", exc.rule
        ) from exc


def _orgnr(value: str, name: str) -> str:
    """An organisationsnummer (digits, with '-' or as ``Organization/<digits>``)."""
    try:
        return normalise_orgnr(value.rsplit("/", 1)[-1])
    except IdentifierError as exc:
        raise _bad(name, "not an organisationsnummer", exc.rule) from exc


def _is_orgnr(value: str) -> bool:
    try:
        normalise_orgnr(value)
    except IdentifierError:
        return False
    return value.isdigit()


def _token(value: str, name: str) -> tuple[str | None, str]:
    """A token parameter's system (None: any) and code."""
    system, sep, code = value.rpartition("|")
    if not code:
        raise _bad(name, "a code is required", "missing")
    return (system if sep else None), code


def _unit_kind(value: str) -> str:
    system, code = _token(value, "service-category")
    if system not in (None, UNIT_KIND) or code not in UnitKind.__members__.values():
        raise _bad("service-category", f"not a unit kind ({UNIT_KIND})", "code")
    return code


def _service_type(value: str) -> tuple[str, str]:
    """A ``service-type`` as the directory's filter: ``referral_kind`` or ``intervention``."""
    system, code = _token(value, "service-type")
    if system in (None, REFERRAL_KIND) and code in ReferralKind.__members__.values():
        return "referral_kind", code
    if system in (None, NEED) and code in Intervention.__members__.values():
        return "intervention", code
    raise _bad("service-type", "not a referral kind or an intervention", "code")


def _active(value: str | None) -> list[str]:
    if value is None:
        return ["active", "temporarily_closed", "inactive"]
    if value == "true":
        return ["active", "temporarily_closed"]
    if value == "false":
        return ["inactive"]
    raise _bad("active", "true or false", "boolean")


def _limit(request: Request, count: int | None) -> int:
    page_max: int = request.app.state.fhir_settings.page_max
    return min(count or 20, page_max, 100)


Count = Annotated[int | None, Query(alias="_count", ge=1, description="page size")]
PageCursor = Annotated[str | None, Query(alias="_page", max_length=400, description="next page")]
Name = Annotated[str | None, Query(max_length=200)]


def bundle(
    request: Request,
    resource_type: str,
    resources: list[dict[str, Any]],
    next_page: str | None,
    total: int | None = None,
) -> dict[str, Any]:
    """A ``searchset`` of ``resource_type`` (every entry a match)."""
    return searchset(request, resource_type, [(r, "match") for r in resources], next_page, total)


# --- $resolve (registered before the reads: `$resolve` is no id) ---------------------


def _question(
    kommunkod: str | None, kind: str | None, needs: list[str], age: Any
) -> dict[str, Any]:
    """The directory's routing question (``POST /v1/routing/resolve``)."""
    if kommunkod is None:
        raise _bad("kommunkod", "required", "missing")
    if kind is None:
        raise _bad("kind", "required", "missing")
    question: dict[str, Any] = {"kommunkod": _kommunkod(kommunkod, "kommunkod")}
    system, code = _token(kind, "kind")
    if system not in (None, REFERRAL_KIND) or code not in ReferralKind.__members__.values():
        raise _bad("kind", "not a referral kind", "code")
    question["referral_kind"] = code
    wanted = []
    for need in needs:
        system, code = _token(need, "needs")
        if system not in (None, NEED) or code not in Intervention.__members__.values():
            raise _bad("needs", "not an intervention", "code")
        wanted.append(code)
    question["needs"] = sorted(set(wanted))
    if age is not None:
        if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 120:
            raise _bad("age", "an integer 0-120", "age")
        question["age"] = age
    return question


def _route(route: dict[str, Any]) -> dict[str, Any]:
    unit = route["unit"]
    parts: list[dict[str, Any]] = [
        {"name": "rank", "valueInteger": route["rank"]},
        {"name": "service", "resource": healthcare_service_of_unit(unit)},
        {"name": "reason", "valueString": route["reason"]},
        *({"name": "matched-need", "valueCoding": coding(NEED, n)} for n in route["matched_needs"]),
        {"name": "age-fits", "valueBoolean": route["age_fits"]},
        {"name": "fallback", "valueBoolean": route["fallback"]},
        {"name": "endpoint", "valueUrl": vardkedja_address(unit)},
    ]
    if path := route.get("contact_path"):
        channel = label(CHANNEL_LABELS, path["channel"])
        parts.append({"name": "contact-path", "valueString": f"{path['reason']}: {channel}"})
    return {"name": "route", "part": parts}


async def _resolve(request: Request, question: dict[str, Any]) -> JSONResponse:
    answer = (
        await upstream_of(request).call(
            request, "directory", "POST", "/v1/routing/resolve", json=question
        )
    ).json()
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "fallback", "valueBoolean": answer["fallback"]},
            *(_route(r) for r in answer["routes"]),
        ],
    }
    return fhir(validated(Parameters, parameters))


RESOLVE = (
    "The directory's routing (`POST /v1/routing/resolve`): the active units of every member "
    "that receive the referral `kind` and cover the person's kommun, ranked by the `needs` "
    "offered, then age fit, then the kind's natural receivers; without a match, the "
    "kommun's intake (`fallback`). The answer is a `Parameters` resource: `fallback`, then "
    "one `route` per unit, best first (parts `rank`, `service` — the HealthcareService —, "
    "`reason`, `matched-need`, `age-fits`, `fallback`, `endpoint`, `contact-path`). 404 "
    "when no unit or member serves the kommun. " + SCOPE + ERRORS
)


@router.get(
    "/HealthcareService/$resolve",
    summary="Resolve the receiving units for a referral (query parameters)",
    description=RESOLVE
    + " Parameters: `kommunkod`, `kind` (a referral kind), `needs` (interventions, "
    "repeated or comma-separated). A person's age never goes in a URL: send it with POST.",
)
async def resolve_get(
    request: Request,
    kommunkod: str | None = None,
    kind: str | None = None,
    needs: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    if "age" in request.query_params:
        raise _bad("age", "send the age only with POST (never in a URL)", "not-in-url")
    wanted = [n for value in needs or [] for n in value.split(",") if n.strip()]
    return await _resolve(request, _question(kommunkod, kind, wanted, None))


@router.post(
    "/HealthcareService/$resolve",
    summary="Resolve the receiving units for a referral (a Parameters body)",
    description=RESOLVE
    + " The body is a `Parameters` resource: `kommunkod` (valueString or valueCode), `kind` "
    "(valueCode or valueCoding), `needs` (repeated, valueCode or valueCoding), `age` "
    "(valueInteger, optional).",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/fhir+json": {
                    "example": {
                        "resourceType": "Parameters",
                        "parameter": [
                            {"name": "kommunkod", "valueString": "0780"},
                            {"name": "kind", "valueCode": "kontaktbegaran"},
                            {"name": "needs", "valueCode": "boendestod"},
                            {"name": "age", "valueInteger": 34},
                        ],
                    }
                }
            }
        }
    },
)
async def resolve_post(request: Request, body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    if body.get("resourceType") != "Parameters":
        raise _bad("resourceType", "the body is a Parameters resource", "resource-type")
    values: dict[str, list[Any]] = {}
    for n, param in enumerate(body.get("parameter") or []):
        if not isinstance(param, dict):
            raise _bad(f"parameter[{n}]", "not a parameter", "invalid")
        value = next((v for k, v in param.items() if k.startswith("value")), None)
        if isinstance(value, dict):  # a Coding
            value = f"{value.get('system', '')}|{value.get('code', '')}".lstrip("|")
        name = str(param.get("name"))
        if name not in ("kommunkod", "kind", "needs", "age"):
            raise _bad(name, "not a parameter of $resolve", "unknown-parameter")
        values.setdefault(name, []).append(value)
    for single in ("kommunkod", "kind", "age"):
        if len(values.get(single, [])) > 1:
            raise _bad(single, "one value", "one")
    texts = {k: [v for v in vs if isinstance(v, str)] for k, vs in values.items()}
    for k in ("kommunkod", "kind", "needs"):
        if len(texts.get(k, [])) != len(values.get(k, [])):
            raise _bad(k, "a text or code value", "type")
    question = _question(
        next(iter(texts.get("kommunkod", [])), None),
        next(iter(texts.get("kind", [])), None),
        texts.get("needs", []),
        (values.get("age") or [None])[0],
    )
    return await _resolve(request, question)


# --- Interactions ----------------------------------------------------------------------------


async def _unit(request: Request, unit_id: str) -> dict[str, Any]:
    answer = await upstream_of(request).call(
        request, "directory", "GET", f"/v1/replica/units/{unit_id}"
    )
    unit: dict[str, Any] = answer.json()
    return unit


async def _search_units(
    request: Request, params: dict[str, Any], count: int | None, page: str | None
) -> tuple[list[dict[str, Any]], str | None, int]:
    """One page of the directory's search (``GET /v1/search``) over the replica."""
    params = {**params, "limit": _limit(request, count)}
    if page:
        params["cursor"] = page
    answer = (
        await upstream_of(request).call(request, "directory", "GET", "/v1/search", params=params)
    ).json()
    return answer["items"], answer.get("next_cursor"), int(answer["total"])


@router.get(
    "/HealthcareService/{service_id}",
    summary="Read a HealthcareService (a unit of any member)",
    description=(
        "The unit from this member's replica of the federation's directory "
        "(`GET /v1/replica/units/{id}`): kind, referral kinds received, interventions, "
        "kommuner covered (`Location/kommun-<kod>`), contact paths and its vardkedja "
        "`Endpoint`. " + SCOPE + ERRORS
    ),
)
async def read_healthcare_service(request: Request, service_id: IdPath) -> JSONResponse:
    unit = await _unit(request, service_id)
    return fhir(healthcare_service_of_unit(unit), version=unit["version"])


@router.get(
    "/HealthcareService",
    summary="Search HealthcareServices (the units of every member)",
    description=(
        "The directory's search over the federation (`GET /v1/search`). Parameters: "
        "`service-category` (the unit kind), `service-type` (a referral kind received or an "
        "intervention offered), `coverage-area` (a kommun: `Location/kommun-0780` or "
        "`0780`), `name` (words, Swedish-aware prefixes, all must match), `organization` "
        "(the huvudman: `Organization/<orgnr digits>`), `active` (`true`: listed units, "
        "`false`: inactive ones; default both), `_count` (1–100, default 20). One value "
        "per parameter. A `searchset` Bundle with `total`, `self` and `next` links. "
        + SCOPE
        + ERRORS
    ),
)
async def search_healthcare_services(
    request: Request,
    category: Annotated[str | None, Query(alias="service-category")] = None,
    service_type: Annotated[str | None, Query(alias="service-type")] = None,
    coverage_area: Annotated[str | None, Query(alias="coverage-area")] = None,
    name: Name = None,
    organization: str | None = None,
    active: str | None = None,
    count: Count = None,
    page: PageCursor = None,
) -> JSONResponse:
    params: dict[str, Any] = {"status": _active(active)}
    if (value := _one(category, "service-category")) is not None:
        params["kind"] = _unit_kind(value)
    if (value := _one(service_type, "service-type")) is not None:
        key, code = _service_type(value)
        params[key] = code
    if (value := _one(coverage_area, "coverage-area")) is not None:
        params["kommunkod"] = _kommunkod(value, "coverage-area")
    if (value := _one(organization, "organization")) is not None:
        params["member"] = _orgnr(value, "organization")
    if name is not None:
        params["q"] = name
    items, next_page, total = await _search_units(request, params, count, page)
    services = [healthcare_service_of_unit(u) for u in items]
    return fhir(bundle(request, "HealthcareService", services, next_page, total))


@router.get(
    "/Organization/{organization_id}",
    summary="Read an Organization (a huvudman or a unit)",
    description=(
        "A huvudman by its organisationsnummer's ten digits (`GET /v1/members/{orgnr}`), "
        "or a unit of any member by its id (`GET /v1/replica/units/{id}`), `partOf` its "
        "huvudman. " + SCOPE + ERRORS
    ),
)
async def read_organization(request: Request, organization_id: IdPath) -> JSONResponse:
    if _is_orgnr(organization_id):
        orgnr = normalise_orgnr(organization_id)
        member = await upstream_of(request).call(
            request, "directory", "GET", f"/v1/members/{orgnr}"
        )
        record = member.json()
        return fhir(organization_of_member(record), version=record["version"])
    unit = await _unit(request, organization_id)
    return fhir(organization_of_unit(unit), version=unit["version"])


def _name_matches(name: str, wanted: str) -> bool:
    """FHIR string search: case-insensitive, the name or one of its words starts with it."""
    have, want = name.casefold(), wanted.casefold()
    return have.startswith(want) or any(w.startswith(want) for w in have.split())


@router.get(
    "/Organization",
    summary="Search Organizations (huvudmän and units)",
    description=(
        "Huvudmän (`GET /v1/members`) and units (`GET /v1/search`). Parameters: `name` "
        "(huvudmän: the name or a word of it starts with it; units: the directory's word "
        "search), `identifier` (`urn:oid:2.5.4.97|<orgnr>` a huvudman, "
        "`https://vardkedja.se/fhir/sid/unit-id|<id>` a unit), `partof` (a huvudman's units: "
        "`Organization/<orgnr digits>`), `_count` (1–100, default 20: the page of units; the "
        "matching huvudmän come on the first page). A `searchset` Bundle with `self` and "
        "`next` links. " + SCOPE + ERRORS
    ),
)
async def search_organizations(
    request: Request,
    name: Name = None,
    identifier: str | None = None,
    partof: str | None = None,
    count: Count = None,
    page: PageCursor = None,
) -> JSONResponse:
    up = upstream_of(request)
    params: dict[str, Any] = {"status": _active(None)}
    if name is not None:
        params["q"] = name
    if (value := _one(partof, "partof")) is not None:
        params["member"] = _orgnr(value, "partof")
    if (value := _one(identifier, "identifier")) is not None:
        found = await _by_identifier(request, value, params.get("member"))
        if name is not None:
            found = [r for r in found if _name_matches(r["name"], name)]
        return fhir(bundle(request, "Organization", found, None))
    resources: list[dict[str, Any]] = []
    if partof is None and page is None:
        members = (await up.call(request, "directory", "GET", "/v1/members")).json()
        resources += [
            organization_of_member(m)
            for m in members
            if name is None or _name_matches(m["name"], name)
        ]
    items, next_page, _ = await _search_units(request, params, count, page)
    resources += [organization_of_unit(u) for u in items]
    return fhir(bundle(request, "Organization", resources, next_page))


@router.get(
    "/Location/{location_id}",
    summary="Read a Location (a kommun a unit covers)",
    description=(
        "`kommun-<kommunkod>`: the kommun from SCB's list (KV Kommun, "
        "`urn:oid:1.2.752.129.2.2.1.17`); no service is asked. " + SCOPE + ERRORS
    ),
)
async def read_location(request: Request, location_id: IdPath) -> JSONResponse:
    code = location_id.removeprefix("kommun-")
    try:
        if not location_id.startswith("kommun-"):
            raise IdentifierError("format", "not a kommun")
        return fhir(location_of_kommun(code))
    except IdentifierError:
        raise FhirError(404, "no such Location (kommun-<kommunkod>)", rule="not-found") from None


@router.get(
    "/Endpoint/{endpoint_id}",
    summary="Read an Endpoint (a unit's vardkedja address)",
    description=(
        "The unit's address in the federation (`vardkedja://<orgnr digits>/<unit id>`, "
        "connection type `vardkedja-kafka`): referrals reach it as events between the "
        "members' instances. The id is the unit's (`GET /v1/replica/units/{id}`). " + SCOPE + ERRORS
    ),
)
async def read_endpoint(request: Request, endpoint_id: IdPath) -> JSONResponse:
    unit = await _unit(request, endpoint_id)
    return fhir(endpoint_of_unit(unit), version=unit["version"])


async def _by_identifier(request: Request, value: str, member: str | None) -> list[dict[str, Any]]:
    """The ``Organization`` with this identifier (none: an empty search, not a 404), a
    huvudman (orgnr) or a unit (unit id); with ``member``, only a unit of that huvudman."""
    system, code = _token(value, "identifier")
    if system == ORGANISATIONSNUMMER_SYSTEM or (
        system is None and _is_orgnr(code.replace("-", ""))
    ):
        orgnr = _orgnr(code, "identifier")
        found = await _found(request, f"/v1/members/{orgnr}")
        return [organization_of_member(found)] if found and member is None else []
    if system not in (None, UNIT_ID_SYSTEM):
        raise _bad(
            "identifier", f"systems: {ORGANISATIONSNUMMER_SYSTEM}, {UNIT_ID_SYSTEM}", "system"
        )
    if not re.fullmatch(RESOURCE_ID, code):
        return []
    unit = await _found(request, f"/v1/replica/units/{code}")
    if unit is None or member not in (None, unit["owner_orgnr"]):
        return []
    return [organization_of_unit(unit)]


async def _found(request: Request, path: str) -> dict[str, Any] | None:
    """The directory's answer to ``GET path``, or None where it has nothing (404)."""
    try:
        answer = await upstream_of(request).call(request, "directory", "GET", path)
    except UpstreamAnswer as exc:
        if exc.status == 404:
            return None
        raise
    found: dict[str, Any] = answer.json()
    return found

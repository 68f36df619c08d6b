"""HTTP API for finding units: full-text search and routing resolve (over the replica)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.directory import territory
from services.directory.codes import Intervention, UnitKind, UnitStatus
from services.directory.router import Reader
from services.directory.routing import resolve
from services.directory.search import Doc, Filters, ReplicaSearch, replica_search
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers import HsaId, Kommunkod, Organisationsnummer
from shared.web.app import DbSession
from shared.web.errors import Forbidden, InvalidInput, NotFound, problem_responses
from shared.web.fields import Age, JsonInt
from shared.web.pagination import NOT_A_CURSOR, decode_json_cursor, encode_cursor

search_router = APIRouter(prefix="/v1", tags=["search and routing"])


def get_search(request: Request) -> ReplicaSearch:
    """The process's replica index."""
    return replica_search(request.app.state.ctx)


Search = Annotated[ReplicaSearch, Depends(get_search)]


class ContactPathOut(BaseModel):
    reason: str
    channel: str
    phone: str | None = None
    email: str | None = None
    secure_mail: str | None = None
    postal: dict[str, Any] | None = None
    note: str | None = None


class SearchItem(BaseModel):
    """One matching unit (from the replica) with its relevance score."""

    unit_id: str
    name: str
    owner_orgnr: str
    kind: str
    status: str
    kommunkoder: list[str]
    interventions: list[str]
    referral_kinds: list[str]
    contact_paths: list[ContactPathOut]
    hsa_id: str | None = None
    score: float = Field(description="relevance (higher is better); 0 without a query")


class SearchPage(BaseModel):
    items: list[SearchItem]
    total: int = Field(description="matches in all pages")
    next_cursor: str | None = None


def _rendered(doc: Doc) -> dict[str, Any]:
    """The unit as a search item without its score (built once per indexed version)."""
    if doc.rendered is None:
        item = {
            f: getattr(doc, f)
            for f in ("unit_id", "name", "owner_orgnr", "kind", "status", "hsa_id")
        }
        for codes in ("kommunkoder", "interventions", "referral_kinds"):
            item[codes] = sorted(getattr(doc, codes))
        item["contact_paths"] = list(doc.contact_paths)
        doc.rendered = SearchItem.model_validate({**item, "score": 0.0}).model_dump(mode="json")
    return doc.rendered


def _item(doc: Doc, score: float) -> SearchItem:
    return SearchItem.model_validate({**_rendered(doc), "score": score})


_CURSOR_KEYS = frozenset({"s", "n", "i"})  # the score, name and id a page starts after


def _cursor(value: str | None) -> dict[str, Any] | None:
    data = decode_json_cursor(value, _CURSOR_KEYS)
    try:
        if data is not None:
            float(data["s"])
    except (TypeError, ValueError) as exc:
        raise InvalidInput.field("cursor", "cursor", NOT_A_CURSOR) from exc
    return data


def _question(
    q: Annotated[
        str, Query(max_length=200, description="words to find", examples=["boendestöd"])
    ] = "",
    member: Annotated[Organisationsnummer | None, Query(description="owning member")] = None,
    kommunkod: Annotated[Kommunkod | None, Query(description="a kommun the unit covers")] = None,
    hsa_id: Annotated[HsaId | None, Query(description="the unit's HSA-id")] = None,
    kind: Annotated[UnitKind | None, Query()] = None,
    referral_kind: Annotated[ReferralKind | None, Query(description="a kind it receives")] = None,
    intervention: Annotated[Intervention | None, Query()] = None,
    age: Annotated[int | None, Query(ge=0, le=120, description="fits a target group")] = None,
    status: Annotated[
        list[UnitStatus] | None, Query(description="default: active, temporarily_closed")
    ] = None,
) -> tuple[str, Filters]:
    """A search's words and filters, from its query parameters."""
    filters = Filters(
        member=member,
        kommunkod=kommunkod,
        hsa_id=hsa_id,
        kind=kind,
        referral_kind=referral_kind,
        intervention=intervention,
        age=age,
        statuses=frozenset(str(s) for s in status) if status else Filters().statuses,
    )
    return q, filters


def _page(
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> tuple[str | None, int]:
    """Which page of the result: the cursor (decoded by the endpoint) and its size."""
    return cursor, limit


Question = Annotated[tuple[str, Filters], Depends(_question)]
Page = Annotated[tuple[str | None, int], Depends(_page)]


@search_router.get(
    "/search",
    response_model=SearchPage,
    summary="Search the units of every member",
    description=(
        "Full-text search over name, kind, mission, interventions and contact reasons of "
        "every member's units (the federated replica). Swedish-aware: case and diacritics "
        "do not matter (`boendestod` finds *Boendestöd*), every word matches as a prefix, "
        "all words must match. Ordered by relevance; without `q`, by name. Filters (`hsa_id`: "
        "the unit with that HSA-id) narrow "
        "the result; by default active and temporarily closed units are listed. Cursor "
        "pagination. Scope `directory:read`."
    ),
    responses=problem_responses(Forbidden),
)
async def search_units(caller: Reader, search: Search, query: Question, page: Page) -> Response:
    text, filters = query
    cursor, limit = page
    found = await search.search(text, filters, _cursor(cursor), limit)
    encoded = encode_cursor(found.next_cursor) if found.next_cursor else None
    # The items were validated when the replica stored them and rendered once per
    # version: the page is written directly instead of being validated again.
    body = {
        "items": [{**_rendered(d), "score": score} for d, score in found.items],
        "total": found.total,
        "next_cursor": encoded,
    }
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        media_type="application/json",
    )


class RoutingQuestion(BaseModel):
    """Who should receive this referral? Sent in the body: the person's kommun, age and
    needs together must not appear in a URL or a log."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "referral_kind": "kontaktbegaran",
                    "kommunkod": "0764",
                    "needs": ["boendestod"],
                    "age": 34,
                }
            ]
        },
    )

    referral_kind: ReferralKind
    kommunkod: Kommunkod = Field(description="the person's kommun of residence")
    needs: list[Intervention] = Field(default_factory=list, max_length=30)
    age: Age | None = None
    limit: JsonInt = Field(10, ge=1, le=50)


class RouteOut(BaseModel):
    rank: int
    unit: SearchItem
    matched_needs: list[str]
    age_fits: bool
    fallback: bool = Field(
        description="true: no unit receives this kind here; this is the "
        "member's intake, which will pass it on"
    )
    reason: str
    contact_path: ContactPathOut | None = Field(description="the path to use for this kind")


class RoutingAnswer(BaseModel):
    routes: list[RouteOut]
    fallback: bool


NoUnitServesKommun = NotFound.kind(
    "no-unit-for-kommun", "No unit in the federation covers this kommun"
)


@search_router.post(
    "/routing/resolve",
    response_model=RoutingAnswer,
    summary="Resolve the receiving units for a referral",
    description=(
        "Ranks the active units of every member that receive the referral kind and cover "
        "the person's kommun: by needs offered, then age fit, then the kind's natural "
        "receivers. Each route names the contact path to use. Never empty for a kommun "
        "the federation serves: without a match, the kommun's intake (remissport or "
        "socialtjänstens mottagning) is returned with `fallback: true`; when no unit names "
        "the kommun, the intake of the member whose record says it serves the kommun "
        "(`PUT /v1/member`). Only units of members whose record serves the kommun are "
        "ever routed to (a kommun its own kommunkod, a region its county's). Used by the "
        "referral service. Scope `directory:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitServesKommun),
)
async def resolve_routing(
    body: RoutingQuestion, caller: Reader, search: Search, session: DbSession
) -> RoutingAnswer:
    index = await search.refresh()
    members = await territory.members_serving(session=session, kommunkod=body.kommunkod)
    routes = resolve(
        index,
        kind=body.referral_kind,
        kommunkod=body.kommunkod,
        needs=[str(n) for n in body.needs],
        age=body.age,
        limit=body.limit,
        members_serving=members,
    )
    if not routes:
        raise NoUnitServesKommun(
            f"kommun {body.kommunkod} has no active unit and no member serving it"
        )
    return RoutingAnswer(
        routes=[
            RouteOut(
                rank=r.rank,
                unit=_item(r.doc, 0.0),
                matched_needs=list(r.matched_needs),
                age_fits=r.age_fits,
                fallback=r.fallback,
                reason=r.reason,
                contact_path=ContactPathOut.model_validate(r.contact_path)
                if r.contact_path
                else None,
            )
            for r in routes
        ],
        fallback=routes[0].fallback,
    )

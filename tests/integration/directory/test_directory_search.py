"""Search and routing over the replica: Swedish folding, prefixes, relevance, filters,
pagination, freshness, and routing with its fallback. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.directory import members, replica
from shared.data.db import Database
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import UNIT_CHANGED_V1, MemberChangedV1, UnitChangedV1
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.directory import auth, member_record

NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


def unit(
    unit_id: str,
    name: str,
    *,
    owner: str = ORG_ALVESTA,
    kind: str = "socialtjanstens_mottagning",
    kommunkoder: tuple[str, ...] = ("0764",),
    interventions: tuple[str, ...] = (),
    referral_kinds: tuple[str, ...] = (),
    mission: str = "",
    status: str = "active",
    reasons: tuple[str, ...] = (),
    ages: tuple[int | None, int | None] | None = None,
    version: int = 1,
) -> UnitChangedV1:
    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=name,
        kind=kind,
        mission=mission,
        kommunkoder=list(kommunkoder),
        interventions=list(interventions),
        referral_kinds=list(referral_kinds),
        contact_paths=[{"reason": r, "channel": "inbox"} for r in reasons],
        target_groups=(
            [{"description": "Målgrupp", "age_min": ages[0], "age_max": ages[1]}] if ages else []
        ),
        status=status,
        version=version,
        changed_at=NOW,
    )


async def seed(db: Database, *units: UnitChangedV1) -> None:
    for payload in units:
        event = CloudEvent(
            source=f"urn:vardkedja:{payload.owner_orgnr.replace('-', '')}:directory",
            type=UNIT_CHANGED_V1,
            data=payload.model_dump(mode="json"),
        )
        async with db.transaction() as session:
            await replica.apply_unit_changed(session=session, event=event, payload=payload)


def member(orgnr: str, kind: str, kommunkoder: tuple[str, ...]) -> MemberChangedV1:
    return member_record(orgnr, kind, kommunkoder, at=NOW)


# The members' records: routing goes only to units of a member serving the kommun.
MEMBERS = [
    member(ORG_ALVESTA, "kommun", ("0764",)),
    member(ORG_VAXJO, "kommun", ("0780",)),
    member(ORG_REGION, "region", ("0760", "0761", "0763", "0764", "0765", "0767", "0780", "0781")),
]


async def seed_members(db: Database, *records: MemberChangedV1) -> None:
    for record in records:
        async with db.transaction() as session:
            await members.apply_member_changed(session=session, payload=record)


KRONOBERG = [
    unit(
        "alv-soc",
        "Socialtjänstens mottagning Alvesta",
        interventions=("boendestod", "utredning_sol"),
        referral_kinds=("kontaktbegaran", "sip_kallelse"),
        reasons=("Kontaktbegäran från vården", "Ansökan om boendestöd"),
    ),
    unit(
        "alv-bo",
        "Boendestöd Alvesta",
        kind="boendestod",
        interventions=("boendestod",),
        mission="Stöd i hemmet för vuxna med skadligt bruk.",
    ),
    unit(
        "vx-bo",
        "Boendestöd Växjö",
        owner=ORG_VAXJO,
        kind="boendestod",
        kommunkoder=("0780",),
        interventions=("boendestod",),
    ),
    unit(
        "rk-ber",
        "Beroendemottagningen Växjö",
        owner=ORG_REGION,
        kind="beroendemottagning",
        kommunkoder=("0780", "0764"),
        interventions=("abstinensbehandling", "nedtrappning"),
        referral_kinds=("hvb_underrattelse",),
        ages=(18, None),
    ),
    unit(
        "rk-port",
        "Psykiatrins remissport",
        owner=ORG_REGION,
        kind="remissport",
        kommunkoder=("0780", "0764"),
        referral_kinds=("vardkedjeremiss",),
        mission="Tar emot vårdkedjeremisser och kallar till remissmöte.",
    ),
    unit(
        "rk-unga",
        "Mottagning för unga vuxna",
        owner=ORG_REGION,
        kind="mottagning_unga_vuxna",
        kommunkoder=("0780", "0764"),
        interventions=("motivationssamtal",),
        ages=(13, 25),
    ),
    unit("alv-old", "Gamla boendeenheten", kind="boendestod", status="inactive"),
]


@pytest.fixture
async def client(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    await seed(db, *KRONOBERG)
    await seed_members(db, *MEMBERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/search", params=params, headers=auth(scopes=["directory:read"]))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [i["unit_id"] for i in page["items"]]


class TestSearchText:
    @pytest.mark.parametrize("q", ["boendestod", "BOENDESTÖD", "Boendestöd", "boende"])
    async def test_swedish_folding_and_prefixes(self, client: httpx.AsyncClient, q: str) -> None:
        found = ids(await search(client, q=q))
        assert {"alv-bo", "vx-bo", "alv-soc"} <= set(found)
        assert "alv-old" not in found  # inactive units are not listed by default

    async def test_all_words_must_match(self, client: httpx.AsyncClient) -> None:
        assert ids(await search(client, q="boendestöd alvesta")) == ["alv-bo", "alv-soc"]

    async def test_a_name_match_ranks_above_a_mission_match(
        self, client: httpx.AsyncClient
    ) -> None:
        found = ids(await search(client, q="remiss"))
        assert found[0] == "rk-port"

    async def test_vaxjo_without_diacritics(self, client: httpx.AsyncClient) -> None:
        assert set(ids(await search(client, q="vaxjo"))) == {"vx-bo", "rk-ber"}

    async def test_no_match(self, client: httpx.AsyncClient) -> None:
        page = await search(client, q="trolldom")
        assert page == {"items": [], "total": 0, "next_cursor": None}


class TestSearchFilters:
    async def test_filters(self, client: httpx.AsyncClient) -> None:
        assert set(ids(await search(client, member=ORG_REGION))) == {"rk-ber", "rk-port", "rk-unga"}
        assert set(ids(await search(client, kommunkod="0780", kind="boendestod"))) == {"vx-bo"}
        assert ids(await search(client, referral_kind="vardkedjeremiss")) == ["rk-port"]
        assert set(ids(await search(client, intervention="boendestod", kommunkod="0764"))) == {
            "alv-bo",
            "alv-soc",
        }
        assert "rk-unga" not in ids(await search(client, age=40))
        assert "rk-unga" in ids(await search(client, age=19))
        assert ids(await search(client, status="inactive")) == ["alv-old"]

    async def test_bad_filter_values_are_refused(self, client: httpx.AsyncClient) -> None:
        for params, field in (
            ({"kind": "trollkarl"}, "kind"),
            ({"kommunkod": "0000"}, "kommunkod"),
            ({"age": 300}, "age"),
            ({"cursor": "!!"}, "cursor"),
        ):
            r = await client.get("/v1/search", params=params, headers=auth())
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == field


class TestSearchPaging:
    async def test_cursor_pages_cover_everything_once(self, client: httpx.AsyncClient) -> None:
        everything = ids(await search(client, limit=100))
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await search(client, limit=2, **({"cursor": cursor} if cursor else {}))
            seen += ids(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == everything
        assert len(everything) == 6


class TestSearchFreshness:
    async def test_a_change_is_searchable_at_once(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        assert "alv-bo" in ids(await search(client, q="boendestöd"))
        await seed(db, unit("alv-bo", "Hemstöd Alvesta", kind="sysselsattning", version=2))
        assert "alv-bo" not in ids(await search(client, q="boendestöd"))
        assert ids(await search(client, q="hemstod")) == ["alv-bo"]


async def route(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/routing/resolve", json=body, headers=auth())


class TestRouting:
    async def test_who_handles_a_kontaktbegaran_about_housing_support_in_alvesta(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await route(
            client, referral_kind="kontaktbegaran", kommunkod="0764", needs=["boendestod"], age=34
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["fallback"] is False
        first = answer["routes"][0]
        assert first["unit"]["unit_id"] == "alv-soc"
        assert first["matched_needs"] == ["boendestod"]
        assert first["contact_path"]["reason"] == "Kontaktbegäran från vården"

    async def test_needs_rank_the_receivers(self, client: httpx.AsyncClient, db: Database) -> None:
        await seed(
            db,
            unit(
                "alv-myn",
                "Myndighetsutövning vuxna Alvesta",
                kind="myndighetsutovning_vuxna",
                referral_kinds=("kontaktbegaran",),
                interventions=("boendestod", "hvb_placering"),
            ),
        )
        r = await route(
            client,
            referral_kind="kontaktbegaran",
            kommunkod="0764",
            needs=["boendestod", "hvb_placering"],
        )
        assert [x["unit"]["unit_id"] for x in r.json()["routes"]][:2] == ["alv-myn", "alv-soc"]

    async def test_falls_back_to_the_intake_and_says_so(self, client: httpx.AsyncClient) -> None:
        # No unit in Alvesta receives utskrivningsplanering: the intake takes it.
        r = await route(client, referral_kind="utskrivningsplanering", kommunkod="0764")
        answer = r.json()
        assert answer["fallback"] is True
        assert answer["routes"][0]["unit"]["unit_id"] == "alv-soc"
        assert answer["routes"][0]["fallback"] is True
        assert "fallback" in answer["routes"][0]["reason"]

    async def test_a_kommun_without_units_is_a_clear_404(self, client: httpx.AsyncClient) -> None:
        r = await route(client, referral_kind="kontaktbegaran", kommunkod="0180")
        assert r.status_code == 404
        assert r.json()["type"].endswith("no-unit-for-kommun")

    async def test_bad_questions_are_refused(self, client: httpx.AsyncClient) -> None:
        r = await route(client, referral_kind="brevduva", kommunkod="9999", needs=["trolldom"])
        fields = {e["field"] for e in r.json()["errors"]}
        assert r.status_code == 422
        assert {"referral_kind", "kommunkod", "needs.0"} <= fields


class TestIndexBuild:
    async def test_a_search_during_the_first_build_waits_for_the_whole_index(
        self, db: Database, db_url: str
    ) -> None:
        from services.directory.search import Filters, ReplicaSearch

        many = [unit(f"u{i:04d}", f"Boendestöd {i}", kind="boendestod") for i in range(1200)]
        await seed(db, *many)
        search = ReplicaSearch(Database(db_url))
        try:
            building = asyncio.create_task(search.refresh())
            await asyncio.sleep(0)  # the build has started and yields now and then
            page = await search.search("boendestod", Filters(), None, 5)
            await building
            assert page.total == 1200
        finally:
            await search.db.dispose()

    async def test_the_api_builds_its_index_when_it_starts(
        self, app: FastAPI, db: Database
    ) -> None:
        await seed(db, *KRONOBERG)
        async with app.router.lifespan_context(app):
            from services.directory.search import replica_search

            search = replica_search(app.state.ctx)
            for _ in range(200):
                if len(search.index.docs) == len(KRONOBERG):
                    break
                await asyncio.sleep(0.05)
            assert len(search.index.docs) == len(KRONOBERG)

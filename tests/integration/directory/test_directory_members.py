"""Member records: a member describes itself (name, kind, county, kommuner served), the
record is broadcast and kept by every member, overviews show the name, and routing falls
back to the intake of the member serving a kommun that no unit names."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.directory.handlers import on_member_changed
from services.directory.models import MemberRecord
from shared.data.db import Database
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import MEMBER_CHANGED_V1, MemberChangedV1
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.directory import SPEC, auth
from tests.helpers.problems import field_rules, problem

from .test_directory_search import KRONOBERG, seed

VAXJO = {"name": "Växjö kommun", "kind": "kommun", "county_code": "07", "kommunkoder": ["0780"]}
KRONOBERG_KOMMUNER = ["0760", "0761", "0763", "0764", "0765", "0767", "0780", "0781"]


async def put_member(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> Any:
    return await client.put("/v1/member", json=body, headers={**auth(), **headers})


async def member_events(db: Database) -> list[dict[str, Any]]:
    ob = SPEC.infra.outbox
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == MEMBER_CHANGED_V1))).all()
    return [dict(r._mapping) for r in rows]


async def members_stored(db: Database) -> int:
    async with db.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(MemberRecord)) or 0)


def delivery(payload: MemberChangedV1, sender: str) -> Delivery:
    event = CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:directory",
        type=MEMBER_CHANGED_V1,
        data=payload.model_dump(mode="json"),
    )
    return Delivery(event, payload, ReceivedRecord("vardkedja.directory", 0, 0, None, b"", []))


def region_record(version: int = 1, name: str = "Region Kronoberg") -> MemberChangedV1:
    return MemberChangedV1(
        orgnr=ORG_REGION,
        name=name,
        kind="region",
        county_code="07",
        kommunkoder=KRONOBERG_KOMMUNER,
        version=version,
        changed_at=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
    )


async def receive(db: Database, payload: MemberChangedV1, sender: str) -> None:
    async with db.transaction() as session:
        await on_member_changed(session, delivery(payload, sender))


class TestOwnRecord:
    async def test_set_broadcast_and_unchanged_repeat(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        r = await put_member(client, VAXJO)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["orgnr"] == ORG_VAXJO
        assert body["county_name"] == "Kronobergs län"
        assert (body["version"], r.headers["ETag"]) == (1, '"1"')
        events = await member_events(db)
        assert [e["key"] for e in events] == [f"member:{ORG_VAXJO}"]

        again = await put_member(client, VAXJO)
        assert again.json()["version"] == 1
        assert len(await member_events(db)) == 1, "an unchanged record sends no event"

        renamed = await put_member(client, {**VAXJO, "name": "Växjö kommun, socialförvaltningen"})
        assert renamed.json()["version"] == 2
        assert len(await member_events(db)) == 2

        stale = await put_member(client, VAXJO, **{"If-Match": '"1"'})
        problem(stale, 412, "member-version-mismatch")
        listed = await client.get("/v1/members", headers=auth(scopes=["directory:read"]))
        assert [m["name"] for m in listed.json()] == ["Växjö kommun, socialförvaltningen"]

    async def test_a_region_without_kommunkoder_serves_its_whole_county(
        self, client: httpx.AsyncClient
    ) -> None:
        # The test app is Växjö's; a region's own record is checked by the same rules.
        r = await put_member(client, {"name": "Växjö", "kind": "region", "county_code": "07"})
        assert r.json()["kommunkoder"] == KRONOBERG_KOMMUNER

    @pytest.mark.parametrize(
        ("change", "field", "rule"),
        [
            ({"county_code": "99"}, "county_code", "unknown_county"),
            ({"county_code": "7"}, "county_code", "string_pattern_mismatch"),
            ({"kommunkoder": ["0180"]}, "kommunkoder", "kommun_outside_county"),
            ({"kommunkoder": []}, "kommunkoder", "kommunkoder_required"),
            ({"kommunkoder": ["9999"]}, "kommunkoder.0", "unknown_kommunkod"),
            ({"kind": "landsting"}, "kind", "enum"),
            ({"name": "X"}, "name", "string_too_short"),
        ],
    )
    async def test_bad_records_are_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, db: Database, change: dict[str, Any], field: str, rule: str
    ) -> None:
        r = await put_member(client, {**VAXJO, **change})
        assert field_rules(problem(r, 422))[field] == rule
        assert await members_stored(db) == 0
        assert await member_events(db) == []

    async def test_needs_the_write_scope(self, client: httpx.AsyncClient, db: Database) -> None:
        r = await client.put("/v1/member", json=VAXJO, headers=auth(scopes=["directory:read"]))
        problem(r, 403)
        assert await members_stored(db) == 0


class TestOtherMembers:
    async def test_records_arrive_and_stale_versions_are_ignored(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await receive(db, region_record(version=2, name="Region Kronoberg"), ORG_REGION)
        await receive(db, region_record(version=1, name="Landstinget Kronoberg"), ORG_REGION)
        r = await client.get(f"/v1/members/{ORG_REGION}", headers=auth(scopes=["directory:read"]))
        assert r.status_code == 200
        assert (r.json()["name"], r.json()["version"]) == ("Region Kronoberg", 2)
        missing = await client.get(
            f"/v1/members/{ORG_ALVESTA}", headers=auth(scopes=["directory:read"])
        )
        problem(missing, 404, "member-not-found")

    async def test_a_member_may_only_describe_itself(self, db: Database) -> None:
        with pytest.raises(Reject) as refused:
            await receive(db, region_record(), ORG_VAXJO)
        assert refused.value.rule == "sender_not_owner"
        assert await members_stored(db) == 0

    async def test_the_overview_shows_the_members_name(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed(db, *KRONOBERG)
        before = await client.get(
            f"/v1/overview/{ORG_REGION}", headers=auth(scopes=["directory:read"])
        )
        assert "Region Kronoberg" not in before.text  # shown by organisationsnummer
        await receive(db, region_record(), ORG_REGION)
        after = await client.get(
            f"/v1/overview/{ORG_REGION}", headers=auth(scopes=["directory:read"])
        )
        assert "Region Kronoberg" in after.text


class TestRoutingFallbackToTheServingMember:
    async def test_a_kommun_no_unit_names_goes_to_the_serving_members_intake(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed(db, *KRONOBERG)
        question = {"referral_kind": "vardkedjeremiss", "kommunkod": "0767"}  # Markaryd
        reader = auth(scopes=["directory:read"])
        r = await client.post("/v1/routing/resolve", json=question, headers=reader)
        problem(r, 404, "no-unit-for-kommun")

        await receive(db, region_record(), ORG_REGION)  # the region serves all of Kronoberg
        r = await client.post("/v1/routing/resolve", json=question, headers=reader)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["fallback"] is True
        first = answer["routes"][0]
        assert first["unit"]["unit_id"] == "rk-port"  # the region's remissport
        assert first["unit"]["owner_orgnr"] == ORG_REGION
        assert "no unit names this kommun" in first["reason"]
        assert {x["unit"]["owner_orgnr"] for x in answer["routes"]} == {ORG_REGION}

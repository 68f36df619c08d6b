"""Owners stay owners, and units stay in their member's territory (issue 19, ADR 0013):
the directory's replica binds a unit id to its first owner, refuses a unit covering a kommun
its member does not serve, the owner's API refuses one (422), and routing never sends a
referral to such a unit. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.directory.handlers import on_member_changed, on_unit_changed, on_units_changed
from services.directory.models import ReplicaUnit, Unit
from services.directory.replica import apply_unit_changed
from shared.data import migrations
from shared.data.db import Database
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import (
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.directory import SPEC, UNIT, auth, build, member_record
from tests.helpers.problems import field_rules, problem

NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
KRONOBERG = ("0760", "0761", "0763", "0764", "0765", "0767", "0780", "0781")


def unit(
    unit_id: str,
    *,
    owner: str = ORG_ALVESTA,
    name: str = "Socialtjänstens mottagning Alvesta",
    kommunkoder: tuple[str, ...] = ("0764",),
    version: int = 1,
    status: str = "active",
    interventions: tuple[str, ...] = ("boendestod",),
) -> UnitChangedV1:
    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=name,
        kind="socialtjanstens_mottagning",
        kommunkoder=list(kommunkoder),
        interventions=list(interventions),
        referral_kinds=["kontaktbegaran"],
        contact_paths=[{"reason": "Kontaktbegäran", "channel": "inbox"}],
        status=status,
        version=version,
        changed_at=NOW,
    )


def member(orgnr: str, kind: str, kommunkoder: tuple[str, ...]) -> MemberChangedV1:
    return member_record(orgnr, kind, kommunkoder, at=NOW)


ALVESTA = member(ORG_ALVESTA, "kommun", ("0764",))
VAXJO = member(ORG_VAXJO, "kommun", ("0780",))
REGION = member(ORG_REGION, "region", KRONOBERG)


def delivery(payload: UnitChangedV1 | MemberChangedV1, sender: str) -> Delivery:
    kind = UNIT_CHANGED_V1 if isinstance(payload, UnitChangedV1) else MEMBER_CHANGED_V1
    event = CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:directory",
        type=kind,
        data=payload.model_dump(mode="json"),
    )
    record = ReceivedRecord("vardkedja.directory", 0, 0, None, b"", [])
    return Delivery(event, payload, record)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    await migrations.upgrade(SPEC.migrations_dir, db_url)
    database = Database(db_url)
    yield database
    await database.dispose()


async def receive(db: Database, payload: UnitChangedV1 | MemberChangedV1, sender: str) -> None:
    async with db.transaction() as session:
        if isinstance(payload, UnitChangedV1):
            await on_unit_changed(session, delivery(payload, sender))
        else:
            await on_member_changed(session, delivery(payload, sender))


async def refused(db: Database, payload: UnitChangedV1 | MemberChangedV1, sender: str) -> str:
    with pytest.raises(Reject) as info:
        await receive(db, payload, sender)
    return info.value.rule


async def replica(db: Database, unit_id: str) -> tuple[str, int, str] | None:
    async with db.sessionmaker() as session:
        row = await session.get(ReplicaUnit, unit_id)
        return None if row is None else (row.owner_orgnr, row.version, row.name)


class TestTheFirstOwnerBindsAUnit:
    async def test_another_member_cannot_take_a_unit_over(self, db: Database) -> None:
        await receive(db, unit("alv-soc"), ORG_ALVESTA)
        # Växjö names itself owner of Alvesta's unit: the sender check alone let it through.
        takeover = unit("alv-soc", owner=ORG_VAXJO, name="Växjö tar över", version=2)
        assert await refused(db, takeover, ORG_VAXJO) == "not_owner"
        assert await replica(db, "alv-soc") == (
            ORG_ALVESTA,
            1,
            "Socialtjänstens mottagning Alvesta",
        )

    async def test_a_forged_version_changes_nothing_and_the_owner_goes_on(
        self, db: Database
    ) -> None:
        await receive(db, unit("alv-soc"), ORG_ALVESTA)
        forged = unit("alv-soc", owner=ORG_VAXJO, version=1000)
        assert await refused(db, forged, ORG_VAXJO) == "not_owner"
        await receive(db, unit("alv-soc", name="Mottagningen Alvesta", version=2), ORG_ALVESTA)
        assert await replica(db, "alv-soc") == (ORG_ALVESTA, 2, "Mottagningen Alvesta")

    async def test_a_run_of_events_binds_the_first_owner_too(self, db: Database) -> None:
        run = [
            delivery(unit("alv-new"), ORG_ALVESTA),
            delivery(unit("alv-new", owner=ORG_VAXJO, version=5), ORG_VAXJO),
        ]
        with pytest.raises(Reject) as info:
            async with db.transaction() as session:
                await on_units_changed(session, run)
        assert info.value.rule == "not_owner"
        assert await replica(db, "alv-new") is None  # the whole run rolled back

    async def test_this_members_own_units_are_bound_to_it(self, db: Database) -> None:
        async with db.transaction() as session:
            session.add(Unit(id="vx-own", owner_orgnr=ORG_VAXJO, name="Egen", kind="boendestod"))
        stolen = unit("vx-own", owner=ORG_ALVESTA)
        assert await refused(db, stolen, ORG_ALVESTA) == "not_owner"
        assert await replica(db, "vx-own") is None


class TestTerritoryInTheReplica:
    async def test_a_unit_outside_its_members_territory_is_refused(self, db: Database) -> None:
        await receive(db, VAXJO, ORG_VAXJO)
        intruder = unit("vx-alv", owner=ORG_VAXJO, kommunkoder=("0780", "0764"))
        assert await refused(db, intruder, ORG_VAXJO) == "outside_territory"
        assert await replica(db, "vx-alv") is None
        await receive(db, unit("vx-own", owner=ORG_VAXJO, kommunkoder=("0780",)), ORG_VAXJO)
        assert await replica(db, "vx-own") is not None

    async def test_a_region_serves_its_county_and_nothing_beyond(self, db: Database) -> None:
        await receive(db, REGION, ORG_REGION)
        await receive(db, unit("rk-all", owner=ORG_REGION, kommunkoder=KRONOBERG), ORG_REGION)
        beyond = unit("rk-sthlm", owner=ORG_REGION, kommunkoder=("0780", "0180"))
        assert await refused(db, beyond, ORG_REGION) == "outside_territory"

    async def test_an_owner_may_still_retire_a_unit_outside_its_territory(
        self, db: Database
    ) -> None:
        await receive(db, unit("vx-alv", owner=ORG_VAXJO, kommunkoder=("0764",)), ORG_VAXJO)
        await receive(db, VAXJO, ORG_VAXJO)  # the record came after the unit
        retired = unit("vx-alv", owner=ORG_VAXJO, kommunkoder=("0764",), status="inactive")
        await receive(db, retired.model_copy(update={"version": 2}), ORG_VAXJO)
        assert await replica(db, "vx-alv") == (ORG_VAXJO, 2, "Socialtjänstens mottagning Alvesta")

    async def test_a_kommuns_record_names_its_own_kommunkod_only(self, db: Database) -> None:
        greedy = member(ORG_VAXJO, "kommun", ("0780", "0764"))
        assert await refused(db, greedy, ORG_VAXJO) == "outside_territory"


@pytest.fixture
async def app(db: Database, db_url: str) -> AsyncIterator[FastAPI]:
    application = build(db_url)
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.put(
            "/v1/member",
            json={"name": "Växjö kommun", "kind": "kommun", "county_code": "07",
                  "kommunkoder": ["0780"]},
            headers=auth(),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        yield c


async def stored(db: Database) -> tuple[int, int]:
    """Units of this member, and unit events in its outbox."""
    ob = SPEC.infra.outbox
    async with db.sessionmaker() as s:
        units = await s.scalar(select(func.count()).select_from(Unit))
        events = await s.scalar(
            select(func.count()).select_from(ob).where(ob.c.event_type == UNIT_CHANGED_V1)
        )
    return int(units or 0), int(events or 0)


class TestTerritoryInTheOwnersApi:
    async def test_creating_a_unit_for_another_kommun_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        r = await client.post(
            "/v1/units", json={**UNIT, "kommunkoder": ["0780", "0764"]}, headers=auth()
        )
        assert field_rules(problem(r, 422)) == {"kommunkoder": "outside_territory"}
        assert "0764" in r.json()["errors"][0]["message"]
        assert await stored(db) == (0, 0)

    async def test_changing_a_unit_to_another_kommun_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        created = await client.post("/v1/units", json=UNIT, headers=auth())
        assert created.status_code == 201, created.text
        r = await client.put(
            f"/v1/units/{created.json()['id']}",
            json={**UNIT, "kommunkoder": ["0764"]},
            headers={**auth(), "If-Match": created.headers["ETag"]},
        )
        assert field_rules(problem(r, 422)) == {"kommunkoder": "outside_territory"}
        assert await stored(db) == (1, 1)

    async def test_importing_a_unit_for_another_kommun_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = "name,kind,kommunkoder\nMottagningen,socialtjanstens_mottagning,0764\n"
        r = await client.post(
            "/v1/units/import",
            content=text.encode(),
            headers={**auth(), "Content-Type": "text/csv"},
        )
        assert field_rules(problem(r, 422)) == {"line 2: kommunkoder": "outside_territory"}
        assert await stored(db) == (0, 0)

    async def test_a_kommun_record_with_two_kommuner_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        body: dict[str, Any] = {
            "name": "Växjö kommun",
            "kind": "kommun",
            "county_code": "07",
            "kommunkoder": ["0780", "0764"],
        }
        r = await client.put("/v1/member", json=body, headers=auth())
        assert field_rules(problem(r, 422)) == {"kommunkoder": "one_kommunkod"}


class TestRoutingStaysInTheTerritory:
    async def test_a_unit_for_a_kommun_its_member_does_not_serve_is_never_routed(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        # Växjö's unit naming Alvesta reached the replica before Växjö's record did (the
        # replica keeps it then); it offers more of the needs than Alvesta's own intake.
        async def apply(payload: UnitChangedV1) -> None:
            event = CloudEvent(
                source=f"urn:vardkedja:{payload.owner_orgnr.replace('-', '')}:directory",
                type=UNIT_CHANGED_V1,
                data=payload.model_dump(mode="json"),
            )
            async with db.transaction() as session:
                await apply_unit_changed(session=session, event=event, payload=payload)

        await apply(unit("alv-soc", interventions=()))
        await apply(
            unit("vx-lure", owner=ORG_VAXJO, name="Växjö lockar", kommunkoder=("0764", "0780"))
        )
        await receive(db, ALVESTA, ORG_ALVESTA)
        question = {"referral_kind": "kontaktbegaran", "kommunkod": "0764", "needs": ["boendestod"]}
        r = await client.post("/v1/routing/resolve", json=question, headers=auth())
        assert r.status_code == 200, r.text
        assert [x["unit"]["unit_id"] for x in r.json()["routes"]] == ["alv-soc"]
        # In Växjö's own kommun the same unit is a route.
        question["kommunkod"] = "0780"
        r = await client.post("/v1/routing/resolve", json=question, headers=auth())
        assert [x["unit"]["unit_id"] for x in r.json()["routes"]] == ["vx-lure"]

    async def test_a_member_without_a_record_gets_no_referrals(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        async with db.transaction() as session:
            payload = unit("alv-soc")
            event = CloudEvent(
                source=f"urn:vardkedja:{ORG_ALVESTA.replace('-', '')}:directory",
                type=UNIT_CHANGED_V1,
                data=payload.model_dump(mode="json"),
            )
            await apply_unit_changed(session=session, event=event, payload=payload)
        question = {"referral_kind": "kontaktbegaran", "kommunkod": "0764"}
        r = await client.post("/v1/routing/resolve", json=question, headers=auth())
        problem(r, 404, "no-unit-for-kommun")

"""A token's ``unit`` claim naming the unit by its HSA-id (ADR 0006, amendment 3): the
referral service resolves it through its copy of the directory, so the unit reads its
worklist exactly as with its unit id; an HSA-id no unit of this member has (unknown, or
another member's unit) is refused with 403 ``unknown-hsa-id``. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.referral import units
from services.referral.models import Incoming
from shared.data.db import Database
from shared.messaging.events.payloads import UnitChangedV1
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.helpers.problems import problem
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT, OTHER_UNIT, REGION_UNIT = "vx-soc", "vx-boende", "rk-ber"
HSA = "SE2321000065-E000000000301"  # issued by the region's catalogue for Växjö's unit
REGION_HSA = "SE2321000065-E000000000101"
UNKNOWN_HSA = "SE2120000647-E999"


def announced(unit_id: str, owner: str, hsa_id: str | None) -> UnitChangedV1:
    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=unit_id,
        kind="socialtjanstens_mottagning",
        status="active",
        kommunkoder=["0780"],
        hsa_id=hsa_id,
        version=1,
        changed_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    )


def incoming(n: int, unit: str) -> Incoming:
    return Incoming(
        id=f"i{n:02d}", referral_id=f"r{n}", kind="kontaktbegaran", personnummer=new_person(),
        person_key=f"k{n}", sender_orgnr=ORG_REGION, sender_unit_id=REGION_UNIT, unit_id=unit,
        status="delivered", basis={"kind": "consent"},
        acknowledge_by=dt.date.today() + dt.timedelta(days=3),
    )  # fmt: skip


async def seed(db: Database) -> None:
    async with db.transaction() as session:
        for payload in (
            announced(UNIT, ORG_VAXJO, HSA),
            announced(OTHER_UNIT, ORG_VAXJO, None),
            announced(REGION_UNIT, ORG_REGION, REGION_HSA),
        ):
            await units.apply_unit_changed(session=session, payload=payload)
        session.add_all([incoming(1, UNIT), incoming(2, UNIT), incoming(3, OTHER_UNIT)])


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_VAXJO, seed) as application:
        yield application


async def worklist(app: FastAPI, unit: str) -> Any:
    return await asgi_get(app, "/v1/incoming", auth(ORG_VAXJO, unit, RW))


class TestUnitClaimByHsaId:
    async def test_reads_the_units_worklist_as_the_unit_id_does(self, app: FastAPI) -> None:
        by_id = await worklist(app, UNIT)
        by_hsa = await worklist(app, HSA)
        assert by_id.status_code == by_hsa.status_code == 200, by_hsa.text
        assert [i["task_id"] for i in by_hsa.json()["items"]] == ["i01", "i02"]
        assert by_hsa.json() == by_id.json()

    async def test_an_unknown_hsa_id_is_refused(self, app: FastAPI) -> None:
        body = problem(await worklist(app, UNKNOWN_HSA), 403, "unknown-hsa-id")
        assert UNKNOWN_HSA not in str(body)
        # A caller of this member was refused: audited as such (ADR 0010).
        ctx = app.state.ctx
        async with ctx.db.transaction() as session:
            rows = (await session.execute(select(ctx.spec.infra.audit))).all()
        assert [(r.outcome, r.actor_unit) for r in rows] == [("denied", UNKNOWN_HSA)]

    async def test_the_hsa_id_of_another_members_unit_is_refused(self, app: FastAPI) -> None:
        problem(await worklist(app, REGION_HSA), 403, "unknown-hsa-id")

    async def test_a_unit_id_is_still_taken_as_it_is(self, app: FastAPI) -> None:
        r = await worklist(app, OTHER_UNIT)
        assert [i["task_id"] for i in r.json()["items"]] == ["i03"]

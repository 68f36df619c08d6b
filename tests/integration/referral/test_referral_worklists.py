"""Worklists: a unit's inbox filtered by status, kind and overdue, paged, never another
unit's; protected identities only for the role (seeded rows, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.referral.models import Incoming
from shared.data import migrations
from shared.data.db import Database
from shared.web.app import create_app
from tests.conftest import ORG_VAXJO, DatabaseFactory, make_settings
from tests.integration.consent.helpers import new_person

from .conftest import REFERRAL, RW, auth

UNIT = "vx-soc"
TODAY = dt.date.today()


def incoming(
    n: int, kind: str, status: str, due: dt.date, *, unit: str = UNIT, protected: bool = False
) -> Incoming:
    return Incoming(
        id=f"i{n:02d}",
        referral_id=f"r{n}",
        kind=kind,
        personnummer=new_person(),
        person_key=f"k{n}",
        protected_identity=protected,
        sender_orgnr="232100-0065",
        sender_unit_id="rk-beroende",
        unit_id=unit,
        status=status,
        basis={"kind": "consent"},
        acknowledge_by=due,
    )


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    url = await databases.new("referral")
    await migrations.upgrade(REFERRAL.migrations_dir, url)
    db = Database(url)
    late, soon = TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=3)
    async with db.transaction() as s:
        s.add_all(
            [
                incoming(1, "kontaktbegaran", "delivered", late),  # overdue
                incoming(2, "kontaktbegaran", "delivered", soon),
                incoming(3, "kontaktbegaran", "acknowledged", late),  # acknowledged: not overdue
                incoming(4, "utskrivningsplanering", "delivered", late),  # overdue
                incoming(5, "sip_kallelse", "completed", late),
                incoming(6, "kontaktbegaran", "delivered", late, unit="vx-boende"),
                incoming(7, "kontaktbegaran", "delivered", soon, protected=True),
            ]
        )
    await db.dispose()
    application = create_app(
        REFERRAL, make_settings(service="referral", orgnr=ORG_VAXJO, db_url=url)
    )
    yield application
    await application.state.ctx.db.dispose()


async def ids(app: FastAPI, roles: list[str] | None = None, **params: object) -> list[str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/v1/incoming", params=params, headers=auth(ORG_VAXJO, UNIT, RW, roles))
    assert r.status_code == 200, r.text
    return [i["task_id"] for i in r.json()["items"]]


async def test_filters_of_the_units_inbox(app: FastAPI) -> None:
    assert await ids(app) == ["i01", "i02", "i03", "i04", "i05"]
    assert await ids(app, status="delivered") == ["i01", "i02", "i04"]
    assert await ids(app, kind="kontaktbegaran") == ["i01", "i02", "i03"]
    assert await ids(app, overdue="true") == ["i01", "i04"]
    assert await ids(app, overdue="true", kind="utskrivningsplanering") == ["i04"]
    # A protected identity only for the role.
    assert "i07" in await ids(app, roles=["protected_identity"])


async def test_pages_cover_the_inbox_once(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    seen: list[str] = []
    cursor = None
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (
                await c.get("/v1/incoming", params=params, headers=auth(ORG_VAXJO, UNIT, RW))
            ).json()
            seen += [i["task_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == ["i01", "i02", "i03", "i04", "i05"]

"""Issue 19: a member admin sets channels only for units of its own member, as its
directory announced them; another member's unit or a made-up id is refused (404
``unit-not-own``), and nothing is stored for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.notify.channels import apply_units_changed
from services.notify.models import UnitChannel
from shared.data import migrations
from shared.data.work import Work
from shared.web.app import create_app
from tests.conftest import ORG_REGION
from tests.helpers.problems import problem
from tests.integration.notify.conftest import (
    ADMIN,
    INTAKE,
    MAILBOX,
    SPEC,
    auth,
    notify_settings,
    own_unit_changed,
)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    await migrations.upgrade(SPEC.migrations_dir, db_url)
    application = create_app(SPEC, notify_settings(db_url))
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def announce(app: FastAPI, *changes: object) -> None:
    ctx = app.state.ctx
    async with ctx.db.transaction() as session:
        await apply_units_changed(
            Work(session, ctx.outbox, ctx.settings),
            list(changes),  # type: ignore[arg-type]
        )


async def put_channels(client: httpx.AsyncClient, unit_id: str) -> httpx.Response:
    return await client.put(
        f"/v1/units/{unit_id}/channels", json={"email": MAILBOX}, headers=auth(**ADMIN)
    )


class TestChannelsOnlyForOwnUnits:
    async def test_another_members_unit_and_a_made_up_id_are_refused(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        region_unit = own_unit_changed("region-psykiatri").model_copy(
            update={"owner_orgnr": ORG_REGION}
        )
        await announce(app, region_unit)  # seen on the broadcast topic, not ours
        for unit_id in ("region-psykiatri", "hittepa-enhet"):
            r = await put_channels(client, unit_id)
            body = problem(r, 404, "unit-not-own")
            assert "directory" in body["detail"]
        async with app.state.ctx.db.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(UnitChannel)) == 0

    async def test_an_own_unit_the_directory_announced_is_set(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await announce(app, own_unit_changed(INTAKE))
        r = await put_channels(client, INTAKE)
        assert r.status_code == 200, r.text
        assert r.json()["mailbox"] == MAILBOX

    async def test_the_rule_is_in_the_operations_description(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()
        operation = spec["paths"]["/v1/units/{unit_id}/channels"]["put"]
        assert "unit-not-own" in operation["description"]
        assert "404" in operation["responses"]

"""A token naming its unit by HSA-id reads that unit's notifications in notify, which
resolves the HSA-id through its own member's units as the directory announced them
(ADR 0006, amendment); an HSA-id no unit of the member has is refused."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.notify.channels import apply_units_changed
from shared.config import Settings
from shared.data.db import Database
from shared.data.work import Work
from tests.helpers.problems import problem
from tests.integration.notify.conftest import INTAKE, auth, handle, own_unit_changed, received

HSA = "SE2120000647-E000000000201"


async def announce_with_hsa_id(app: FastAPI) -> None:
    ctx = app.state.ctx
    payload = own_unit_changed(INTAKE).model_copy(update={"hsa_id": HSA})
    async with ctx.db.transaction() as session:
        await apply_units_changed(Work(session, ctx.outbox, ctx.settings), [payload])


class TestUnitClaimByHsaId:
    async def test_reads_the_units_notifications(
        self, app: FastAPI, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        await announce_with_hsa_id(app)
        await handle(db, settings, received())
        path = f"/v1/units/{INTAKE}/notifications"

        by_id = await client.get(path, headers=auth())
        by_hsa = await client.get(path, headers=auth(unit=HSA))
        assert by_hsa.status_code == 200, by_hsa.text
        assert by_hsa.json()["unread"] == 1
        assert by_hsa.json() == by_id.json()

    async def test_an_hsa_id_of_no_own_unit_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await announce_with_hsa_id(app)
        r = await client.get(
            f"/v1/units/{INTAKE}/notifications", headers=auth(unit="SE2321000065-E1")
        )
        problem(r, 403, "unknown-hsa-id")

"""Issue 19: a unit's token changes only its own unit in the directory (update, close,
reopen, deactivate, review); ``member_admin`` changes any unit of the member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.identity.auth import mint_token
from tests.conftest import ORG_VAXJO
from tests.helpers.asgi import app_client
from tests.helpers.directory import RW, SPEC, UNIT, auth, build
from tests.helpers.problems import problem


def as_unit(unit: str, *roles: str) -> dict[str, str]:
    token = mint_token(sub="handlaggare-1", org=ORG_VAXJO, scopes=RW, unit=unit, roles=roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SPEC.migrations_dir, db_url, build) as c:
        yield c


async def create(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post("/v1/units", json={**UNIT, "name": name}, headers=auth())
    assert r.status_code == 201, r.text
    unit_id: str = r.json()["id"]
    return unit_id


async def change(
    client: httpx.AsyncClient, action: str, unit_id: str, headers: dict[str, str]
) -> httpx.Response:
    current = await client.get(f"/v1/units/{unit_id}", headers=auth())
    etag = {"If-Match": current.headers["ETag"]}
    if action == "update":
        body: dict[str, Any] = {**UNIT, "name": current.json()["name"], "mission": "Ändrad"}
        return await client.put(f"/v1/units/{unit_id}", json=body, headers={**headers, **etag})
    bodies: dict[str, Any] = {
        "close": {"message": "Stängt i sommar, ring växeln."},
        "review": {"reviewed_by": "Vårdkedjekoordinatorn"},
    }
    return await client.post(
        f"/v1/units/{unit_id}/{action}", json=bodies.get(action), headers={**headers, **etag}
    )


ACTIONS = ["update", "close", "reopen", "deactivate", "review"]


class TestAUnitChangesOnlyItself:
    @pytest.mark.parametrize("action", ACTIONS)
    async def test_a_sibling_units_token_is_refused(
        self, client: httpx.AsyncClient, action: str
    ) -> None:
        a, b = await create(client, "Enhet A"), await create(client, "Enhet B")
        if action == "reopen":
            assert (await change(client, "close", b, auth())).status_code == 200
        r = await change(client, action, b, as_unit(a))
        body = problem(r, 403)
        assert "own unit" in body["detail"]
        after = await client.get(f"/v1/units/{b}", headers=auth())
        assert after.json()["version"] == (2 if action == "reopen" else 1)

    @pytest.mark.parametrize("action", ACTIONS)
    async def test_the_unit_itself_and_a_member_admin_may(
        self, client: httpx.AsyncClient, action: str
    ) -> None:
        a, b = await create(client, "Enhet A"), await create(client, "Enhet B")
        for unit_id in (a, b):
            if action == "reopen":
                assert (await change(client, "close", unit_id, auth())).status_code == 200
        r = await change(client, action, a, as_unit(a))
        assert r.status_code == 200, r.text
        r = await change(client, action, b, as_unit(a, "member_admin"))
        assert r.status_code == 200, r.text

    async def test_the_rule_is_in_the_operations_descriptions(
        self, client: httpx.AsyncClient
    ) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        operations = [paths["/v1/units/{unit_id}"]["put"]] + [
            paths[f"/v1/units/{{unit_id}}/{a}"]["post"] for a in ACTIONS[1:]
        ]
        for operation in operations:
            assert "member_admin" in operation["description"]

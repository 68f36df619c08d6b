"""Issue 19: an ``Idempotency-Key`` is scoped per member, unit and subject. The same
subject acting for unit B with unit A's key gets its own answer, never A's replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from shared.identity.auth import mint_token
from tests.conftest import ORG_VAXJO
from tests.helpers.asgi import app_client
from tests.helpers.directory import RW, SPEC, UNIT, build

KEY = "create-intake-0001"


def as_unit(unit: str | None) -> dict[str, str]:
    token = mint_token(sub="integration-1", org=ORG_VAXJO, scopes=RW, unit=unit)
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": KEY}


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SPEC.migrations_dir, db_url, build) as c:
        yield c


class TestIdempotencyKeysArePerUnit:
    async def test_unit_b_does_not_get_unit_as_answer_replayed(
        self, client: httpx.AsyncClient
    ) -> None:
        first = await client.post("/v1/units", json=UNIT, headers=as_unit("unit-a"))
        assert first.status_code == 201, first.text
        again = await client.post("/v1/units", json=UNIT, headers=as_unit("unit-a"))
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == first.json()["id"]

        other = await client.post("/v1/units", json=UNIT, headers=as_unit("unit-b"))
        assert other.status_code == 201, other.text
        assert "Idempotent-Replayed" not in other.headers
        assert other.json()["id"] != first.json()["id"]

        member = await client.post("/v1/units", json=UNIT, headers=as_unit(None))
        assert "Idempotent-Replayed" not in member.headers
        assert member.json()["id"] not in (first.json()["id"], other.json()["id"])

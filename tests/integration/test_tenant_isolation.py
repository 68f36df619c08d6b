"""Tenant isolation on every operation of every service: an instance serves only its own
member. A valid token of another member (with every scope) is refused with 403, no token
with 401 — before anything is read, validated or stored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.data import migrations
from shared.identity.auth import mint_token
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from tests.conftest import ORG_ALVESTA, ORG_VAXJO, make_settings
from vardkedja.federation import ALL_SCOPES

SERVICES = ["directory", "consent", "referral", "notify"]


@pytest.fixture(params=SERVICES)
async def app(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[FastAPI]:
    spec = load_spec(request.param)
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await migrations.upgrade(spec.migrations_dir, url)
    application = create_app(
        spec, make_settings(service=request.param, orgnr=ORG_VAXJO, db_url=url)
    )
    yield application
    await application.state.ctx.db.dispose()


def operations(app: FastAPI) -> list[tuple[str, str]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        if not path.startswith("/v1"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        ops += [(method.upper(), concrete) for method in item]
    return ops


async def test_another_members_token_is_refused_everywhere(app: FastAPI) -> None:
    foreign = mint_token(sub="intruder", org=ORG_ALVESTA, unit="alv-soc", scopes=ALL_SCOPES.split())
    ops = operations(app)
    assert ops
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for method, path in ops:
            for headers, status in (({"Authorization": f"Bearer {foreign}"}, 403), ({}, 401)):
                r = await c.request(method, path, json={}, headers=headers)
                assert r.status_code == status, (method, path, r.status_code, r.text[:200])
                assert r.headers["content-type"] == PROBLEM_JSON

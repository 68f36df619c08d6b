"""The request owns its transaction and commits *before* the response is sent (ADR 0004):
a commit that fails is answered with a 500 problem, never with a 2xx; an answered 2xx is
already durable."""

from __future__ import annotations

import dataclasses

import httpx
from fastapi import APIRouter
from sqlalchemy import func, select

from services.directory.models import Unit
from shared.data.db import Database
from shared.data.migrations import upgrade
from shared.identity.auth import mint_token
from shared.service import load_spec
from shared.web.app import DbSession, create_app
from tests.conftest import ORG_VAXJO, make_settings

router = APIRouter()
FIXED_ID = "00000000-0000-4000-8000-000000000001"


@router.post("/v1/test-write")
async def write(session: DbSession) -> dict[str, str]:
    # Added but not flushed: the INSERT runs at commit, after this function returned.
    session.add(
        Unit(
            id=FIXED_ID,
            owner_orgnr=ORG_VAXJO,
            name="x",
            kind="boendestod",
            kommunkoder=["0780"],
            status="active",
        )
    )
    return {"id": FIXED_ID}


async def test_a_failed_commit_is_never_answered_with_success(db_url: str) -> None:
    spec = load_spec("directory")
    await upgrade(spec.migrations_dir, db_url)
    app = create_app(
        dataclasses.replace(spec, routers=[*spec.routers, router]),
        make_settings(service="directory", orgnr=ORG_VAXJO, db_url=db_url),
    )
    db = Database(db_url)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    # Every operation of a service is behind its authentication, this test's own included.
    token = mint_token(sub="tester", org=ORG_VAXJO, scopes=["directory:write"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=headers
    ) as client:
        first = await client.post("/v1/test-write")
        assert first.status_code == 200
        # Durable when answered: a separate connection sees it at once.
        async with db.sessionmaker() as s:
            assert await s.scalar(select(func.count()).select_from(Unit)) == 1
        # The same primary key again: the commit fails after the handler returned.
        second = await client.post("/v1/test-write")
    assert second.status_code == 500
    assert second.headers["content-type"] == "application/problem+json"
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Unit)) == 1
    await db.dispose()

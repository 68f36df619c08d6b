"""A NUL character (U+0000) in any field is refused at the edge of every service, on SQLite
and PostgreSQL: 422 problem+json naming the field and the rule ``nul_character``, and
nothing stored. (PostgreSQL cannot store NUL in text: the consent's ``form_note`` with one
answered 500; SQLite stored it.)"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select

from services.consent.schemas import ConsentCreate
from services.directory.schemas import UnitCreate
from services.notify.schemas import SubscriptionCreate
from services.referral.schemas import ReferralCreate
from shared.data import migrations
from shared.identity.auth import mint_token
from shared.service import ServiceSpec, load_spec
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from tests.conftest import ORG_VAXJO, DatabaseFactory, make_settings
from vardkedja.federation import ALL_SCOPES

NUL = "\x00"
UNIT = "vx-soc-vuxna"


def example(model: type[BaseModel]) -> dict[str, Any]:
    """The first documented example of a request body (a valid request)."""
    examples: list[dict[str, Any]] = model.model_json_schema()["examples"]
    return copy.deepcopy(examples[0])


# service: (path of a creating operation, its valid body, a free-text field of it)
CREATES: dict[str, tuple[str, dict[str, Any], str]] = {
    "directory": ("/v1/units", example(UnitCreate), "mission"),
    "consent": (
        "/v1/consents",
        {**example(ConsentCreate), "form": "oral", "signed_form_reference": None},
        "form_note",
    ),
    "referral": ("/v1/referrals", example(ReferralCreate), "summary"),
    "notify": (
        "/v1/webhook-subscriptions",
        {**example(SubscriptionCreate), "unit_id": UNIT},
        "url",
    ),
}


def auth() -> dict[str, str]:
    token = mint_token(
        sub="tester",
        org=ORG_VAXJO,
        unit=UNIT,
        scopes=ALL_SCOPES.split(),
        roles=["member_admin"],
    )
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def service_app(name: str, databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    """Växjö kommun's app of service ``name`` on a fresh, migrated database."""
    spec = load_spec(name)
    url = await databases.new(name)
    await migrations.upgrade(spec.migrations_dir, url)
    app = create_app(spec, make_settings(service=name, orgnr=ORG_VAXJO, db_url=url))
    try:
        yield app
    finally:
        await app.state.ctx.db.dispose()


async def send(app: FastAPI, method: str, target: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, target, **kwargs)


async def row_counts(app: FastAPI) -> dict[str, int]:
    """Rows in every table of the service (its own and the shared outbox, audit, ...)."""
    spec: ServiceSpec = app.state.ctx.spec
    async with app.state.ctx.db.sessionmaker() as session:
        return {
            table.name: (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
            for table in spec.metadata.sorted_tables
        }


def assert_refused(response: httpx.Response, *fields: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert [(e["field"], e["rule"]) for e in problem["errors"]] == [
        (f, "nul_character") for f in fields
    ]
    assert NUL not in str(problem["errors"])


class TestNulInFreeText:
    @pytest.mark.parametrize("name", list(CREATES))
    async def test_a_nul_in_a_free_text_field_is_refused_and_nothing_stored(
        self, databases: DatabaseFactory, name: str
    ) -> None:
        path, body, field = CREATES[name]
        body = {**body, field: f"{body.get(field) or 'Muntligt samtycke'}{NUL}inte lagrat"}
        async with service_app(name, databases) as app:
            before = await row_counts(app)
            response = await send(app, "POST", path, json=body, headers=auth())
            assert_refused(response, field)
            assert await row_counts(app) == before

    async def test_nested_fields_are_named_by_their_path(self, databases: DatabaseFactory) -> None:
        path, body, _ = CREATES["consent"]
        body = {**body, "parties": [{"orgnr": ORG_VAXJO, "unit_id": f"a{NUL}"}]}
        async with service_app("consent", databases) as app:
            response = await send(app, "POST", path, json=body, headers=auth())
        assert_refused(response, "parties.0.unit_id")


class TestNulInParameters:
    @pytest.mark.parametrize(
        ("target", "field"),
        [("/v1/units?cursor=a%00b", "cursor"), ("/v1/units/a%00b", "unit_id")],
    )
    async def test_query_and_path_parameters(
        self, databases: DatabaseFactory, target: str, field: str
    ) -> None:
        async with service_app("directory", databases) as app:
            response = await send(app, "GET", target, headers=auth())
        assert_refused(response, field)

    async def test_the_caller_is_checked_first(self, databases: DatabaseFactory) -> None:
        async with service_app("directory", databases) as app:
            response = await send(app, "GET", "/v1/units?cursor=a%00b")
        assert response.status_code == 401

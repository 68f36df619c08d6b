"""Issue 19's smaller findings in the consent service: ``POST /v1/decisions`` tells why not
only to callers who may see the person's records, and an allowance inside a temporary lift
of a block holds no longer than the lift."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import ORG_REGION
from tests.helpers.asgi import app_client
from tests.integration.consent.helpers import (
    SPEC,
    auth,
    build,
    consent_body,
    new_person,
    question,
    today,
)

READ_ONLY = ["consent:read"]


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SPEC.migrations_dir, db_url, build) as c:
        yield c


async def ask(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    response = await client.post("/v1/decisions", json=body, headers=auth(**kw))
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=auth())
    assert response.status_code in (200, 201), response.text
    out: dict[str, Any] = response.json()
    return out


def refusal(person: str) -> dict[str, Any]:
    return {
        "person": {"personnummer": person},
        "refused_on": today().isoformat(),
        "parties": [{"orgnr": ORG_REGION}],
    }


def block(person: str) -> dict[str, Any]:
    return {"person": {"personnummer": person}, "blocked": {"orgnr": ORG_REGION}}


class TestDecisionsTellWhyNotOnlyWithConsentPerson:
    async def test_consent_read_alone_cannot_tell_a_refusal_a_block_or_a_miss_from_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        nothing, refused, blocked, expired = (new_person() for _ in range(4))
        await post(client, "/v1/refusals", refusal(refused))
        await post(client, "/v1/blocks", block(blocked))
        await post(
            client,
            "/v1/consents",
            consent_body(expired, categories=["plan"]),  # misses needs_summary
        )
        answers = [
            await ask(client, question(p), scopes=READ_ONLY)
            for p in (nothing, refused, blocked, expired)
        ]
        for answer in answers:
            answer.pop("decided_at")
        assert answers == [answers[0]] * 4
        assert answers[0]["verdict"] == "denied"
        assert answers[0]["allowed"] is False
        assert answers[0]["basis"]["kind"] == "none"
        assert [r["code"] for r in answers[0]["reasons"]] == ["not_allowed"]

    async def test_consent_person_gets_the_verdict_and_its_reasons(
        self, client: httpx.AsyncClient
    ) -> None:
        refused, blocked = new_person(), new_person()
        await post(client, "/v1/refusals", refusal(refused))
        await post(client, "/v1/blocks", block(blocked))
        answer = await ask(client, question(refused))
        assert (answer["verdict"], answer["reasons"][0]["code"]) == ("refused", "refused")
        answer = await ask(client, question(blocked))
        assert (answer["verdict"], answer["reasons"][0]["code"]) == ("denied", "blocked")

    async def test_an_allowance_is_told_to_consent_read(self, client: httpx.AsyncClient) -> None:
        person = new_person()
        consent = await post(client, "/v1/consents", consent_body(person))
        answer = await ask(client, question(person), scopes=READ_ONLY)
        assert answer["allowed"] is True
        assert answer["basis"]["consent_id"] == consent["id"]

    async def test_the_rule_is_in_the_operations_description(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()
        description = spec["paths"]["/v1/decisions"]["post"]["description"]
        assert "consent:person" in description
        assert "not_allowed" in description


class TestAnAllowanceInsideALiftEndsWithTheLift:
    async def test_valid_until_is_the_lifts_last_day_not_the_consents(
        self, client: httpx.AsyncClient
    ) -> None:
        person = new_person()
        await post(client, "/v1/consents", consent_body(person))  # 180 days
        blocked = await post(client, "/v1/blocks", block(person))
        ends_at = dt.datetime.combine(today() + dt.timedelta(days=3), dt.time(12), tzinfo=dt.UTC)
        await post(
            client,
            f"/v1/blocks/{blocked['id']}/lifts",
            {"ends_at": ends_at.isoformat(), "reason": "Personen vill att underlaget skickas."},
        )
        answer = await ask(client, question(person))
        assert answer["allowed"] is True
        assert answer["obligations"]["valid_until"] == ends_at.date().isoformat()

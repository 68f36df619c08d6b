"""``GET /v1/deadlines/count`` shows how the referral service counts a deadline: known
answers over Christmas and New Year 2026, midsommar and a change to summer time, by kind,
and the refusals (problem+json naming the field and the rule)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.identity.auth import mint_token
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import ORG_VAXJO, make_settings


def headers() -> dict[str, str]:
    """A reader's token, minted when the test runs (one minted at import would expire
    before the last tests of a long run)."""
    token = mint_token(sub="user-x", org=ORG_VAXJO, unit="vx-soc", scopes=["referral:read"])
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_spec("referral"), make_settings(service="referral", orgnr=ORG_VAXJO))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def count(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/deadlines/count", params=params, headers=headers())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def skipped(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["date"], s["reason"], s["name"]) for s in body["skipped"]]


class TestWorkingDays:
    async def test_christmas_2026(self, client: httpx.AsyncClient) -> None:
        body = await count(client, **{"from": "2026-12-23T10:00:00+01:00", "working_days": 2})
        assert body["due_on"] == "2026-12-29"
        assert body["due_at"] == "2026-12-29T23:59:00+01:00"
        assert skipped(body) == [
            ("2026-12-24", "eve", "Julafton"),
            ("2026-12-25", "public_holiday", "Juldagen"),
            ("2026-12-26", "public_holiday", "Annandag jul"),
            ("2026-12-27", "weekend", "söndag"),
        ]

    async def test_new_year_2027(self, client: httpx.AsyncClient) -> None:
        body = await count(client, **{"from": "2026-12-30T16:00:00+01:00", "working_days": 1})
        assert body["due_on"] == "2027-01-04"
        assert skipped(body) == [
            ("2026-12-31", "eve", "Nyårsafton"),
            ("2027-01-01", "public_holiday", "Nyårsdagen"),
            ("2027-01-02", "weekend", "lördag"),
            ("2027-01-03", "weekend", "söndag"),
        ]

    async def test_midsommar_2026(self, client: httpx.AsyncClient) -> None:
        body = await count(client, **{"from": "2026-06-18T09:00:00+02:00", "working_days": 1})
        assert body["due_on"] == "2026-06-22"
        assert body["due_at"] == "2026-06-22T23:59:00+02:00"
        assert [s[2] for s in skipped(body)] == ["Midsommarafton", "Midsommardagen", "söndag"]

    async def test_the_day_is_the_day_in_sweden(self, client: httpx.AsyncClient) -> None:
        # 23:30 UTC on 22 December is already the 23rd in Sweden.
        body = await count(client, **{"from": "2026-12-22T23:30:00Z", "working_days": 0})
        assert body["due_on"] == "2026-12-23"
        assert body["skipped"] == []

    async def test_across_the_change_to_summer_time(self, client: httpx.AsyncClient) -> None:
        # Långfredagen 2027 (winter time) to after Easter, when the clocks have gone
        # forward (28 March): the deadline's 23:59 has the summer offset.
        body = await count(client, **{"from": "2027-03-26T12:00:00+01:00", "working_days": 1})
        assert body["due_at"] == "2027-03-30T23:59:00+02:00"
        assert [s[2] for s in skipped(body)] == ["lördag", "Påskdagen", "Annandag påsk"]


class TestHours:
    async def test_hours_run_day_and_night_across_the_change(
        self, client: httpx.AsyncClient
    ) -> None:
        # 28 March 2027 02:00 CET becomes 03:00 CEST: 4 hours from 00:30 is 05:30 local.
        body = await count(client, **{"from": "2027-03-28T00:30:00+01:00", "hours": 4})
        assert body["due_at"] == "2027-03-28T05:30:00+02:00"
        assert body["skipped"] == []
        assert body["working_days"] is None

    async def test_julafton_is_not_skipped_in_hours(self, client: httpx.AsyncClient) -> None:
        body = await count(client, **{"from": "2026-12-24T22:00:00+01:00", "hours": 4})
        assert body["due_at"] == "2026-12-25T02:00:00+01:00"


class TestByKind:
    async def test_an_urgent_orosanmalan_is_due_in_four_hours(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await count(
            client,
            **{"from": "2026-12-24T20:00:00+01:00", "kind": "orosanmalan", "urgency": "urgent"},
        )
        assert (body["hours"], body["due_at"]) == (4, "2026-12-25T00:00:00+01:00")

    async def test_a_kontaktbegaran_counts_its_working_days(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await count(
            client, **{"from": "2026-12-23T10:00:00+01:00", "kind": "kontaktbegaran"}
        )
        assert (body["urgency"], body["working_days"], body["due_on"]) == (
            "normal",
            3,
            "2026-12-30",
        )


REFUSED = [
    ({"working_days": 2}, "from", "missing"),
    ({"from": "yesterday", "working_days": 2}, "from", "datetime_type"),
    ({"from": "2026-12-23T10:00:00", "working_days": 2}, "from", "timezone_aware"),
    ({"from": "2026-12-23T10:00:00Z", "working_days": -1}, "working_days", "greater_than_equal"),
    ({"from": "2026-12-23T10:00:00Z", "working_days": 100000}, "working_days", "less_than_equal"),
    ({"from": "2026-12-23T10:00:00Z", "hours": 100000}, "hours", "less_than_equal"),
    ({"from": "2026-12-23T10:00:00Z"}, "working_days", "one_of"),
    ({"from": "2026-12-23T10:00:00Z", "working_days": 1, "hours": 2}, "hours", "one_of"),
    ({"from": "2026-12-23T10:00:00Z", "kind": "brev"}, "kind", "enum"),
]


class TestRefusals:
    @pytest.mark.parametrize(("params", "field", "rule"), REFUSED)
    async def test_bad_input_names_the_field_and_rule(
        self, client: httpx.AsyncClient, params: dict[str, Any], field: str, rule: str
    ) -> None:
        r = await client.get("/v1/deadlines/count", params=params, headers=headers())
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [(field, rule)]

    async def test_a_token_is_needed(self, client: httpx.AsyncClient) -> None:
        r = await client.get(
            "/v1/deadlines/count", params={"from": "2026-12-23T10:00:00Z", "working_days": 1}
        )
        assert r.status_code == 401

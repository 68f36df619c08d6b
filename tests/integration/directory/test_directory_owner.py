"""The directory's owner API beyond creation: the full unit description, update with
If-Match, close/reopen/deactivate, review, parents, and bad input that stores nothing.
SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.directory.models import Unit
from shared.data.db import Database
from tests.conftest import ORG_REGION
from tests.helpers.directory import SPEC, auth
from tests.helpers.problems import problem

FULL: dict[str, Any] = {
    "name": "Socialtjänstens mottagning vuxna",
    "kind": "socialtjanstens_mottagning",
    "mission": "Tar emot ansökningar om stöd för vuxna med skadligt bruk eller beroende.",
    "target_groups": [{"description": "Vuxna med skadligt bruk", "age_min": 18}],
    "interventions": ["utredning_sol", "boendestod"],
    "kommunkoder": ["0780"],
    "contact_paths": [
        {"reason": "Ansökan om boendestöd", "channel": "inbox"},
        {"reason": "Rådgivning", "channel": "phone", "phone": "0470-41 00 00"},
        {
            "reason": "Funktionsbrevlåda",
            "channel": "functional_email",
            "email": "socialtjansten@vaxjo.se",
        },
    ],
    "opening_hours": {
        "weekly": [
            {"day": d, "opens": "08:00", "closes": "16:30"}
            for d in ("mon", "tue", "wed", "thu", "fri")
        ]
    },
    "referral_kinds": ["kontaktbegaran", "sip_kallelse"],
    "valid_from": "2026-01-01",
    "valid_to": "2027-12-31",
    "capacity": {"free_places": 3, "total_places": 12, "as_of": "2026-11-23T08:00:00+01:00"},
}


async def counts(db: Database) -> tuple[int, int]:
    """(units, outbox rows)."""
    async with db.sessionmaker() as s:
        units = await s.scalar(select(func.count()).select_from(Unit))
        events = await s.scalar(select(func.count()).select_from(SPEC.infra.outbox))
    return int(units or 0), int(events or 0)


async def create(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> httpx.Response:
    r = await client.post("/v1/units", json=body or FULL, headers=auth())
    assert r.status_code == 201, r.text
    return r


class TestFullDescription:
    async def test_every_field_round_trips(self, client: httpx.AsyncClient) -> None:
        created = (await create(client)).json()
        assert created["status"] == "active"
        assert created["mission"] == FULL["mission"]
        assert created["contact_paths"][1]["phone"] == "+46470410000"  # normalised
        assert created["opening_hours"]["weekly"][0]["opens"].startswith("08:00")
        assert created["valid_to"] == "2027-12-31"
        assert created["capacity"]["free_places"] == 3
        again = await client.get(f"/v1/units/{created['id']}", headers=auth())
        assert again.json() == created

    @pytest.mark.parametrize(
        ("change", "field", "rule"),
        [
            ({"kommunkoder": ["0000"]}, "kommunkoder.0", "unknown_kommunkod"),
            ({"interventions": ["trolldom"]}, "interventions.0", "enum"),
            ({"valid_from": "2027-01-01", "valid_to": "2026-01-01"}, "valid_to", "validity_order"),
            ({"kommunkoder": ["0780", "0780"]}, "kommunkoder", "unique"),
            (
                {"contact_paths": [{"reason": "Tel", "channel": "phone", "phone": "12ab"}]},
                "contact_paths.0.phone",
                None,
            ),
            (
                {
                    "contact_paths": [
                        {"reason": "Mejl", "channel": "functional_email", "email": "inte-en-adress"}
                    ]
                },
                "contact_paths.0.email",
                "email_format",
            ),
            (
                {"contact_paths": [{"reason": "Tel", "channel": "phone"}]},
                "contact_paths.0",
                "channel_value",
            ),
            (
                {"target_groups": [{"description": "Unga", "age_min": 25, "age_max": 13}]},
                "target_groups.0",
                "age_range",
            ),
            ({"referral_kinds": ["brevduva"]}, "referral_kinds.0", "enum"),
        ],
    )
    async def test_bad_input_names_field_and_rule_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        change: dict[str, Any],
        field: str,
        rule: str | None,
    ) -> None:
        body = {**copy.deepcopy(FULL), **change}
        r = await client.post("/v1/units", json=body, headers=auth())
        errors = problem(r, 422)["errors"]
        assert any(e["field"] == field for e in errors), errors
        if rule:
            assert any(e["rule"] == rule for e in errors), errors
        assert await counts(db) == (0, 0)


class TestUpdate:
    async def test_update_with_the_current_etag(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        created = await create(client)
        unit_id, etag = created.json()["id"], created.headers["ETag"]
        body = {**FULL, "name": "Mottagningen för vuxna"}
        r = await client.put(
            f"/v1/units/{unit_id}", json=body, headers={**auth(), "If-Match": etag}
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Mottagningen för vuxna"
        assert r.json()["version"] == 2
        assert r.headers["ETag"] == '"2"'
        assert await counts(db) == (1, 2)  # the change was broadcast too

    async def test_a_stale_etag_is_refused_and_nothing_changes(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        created = await create(client)
        unit_id = created.json()["id"]
        first = await client.put(
            f"/v1/units/{unit_id}",
            json={**FULL, "name": "Först"},
            headers={**auth(), "If-Match": '"1"'},
        )
        assert first.status_code == 200
        stale = await client.put(
            f"/v1/units/{unit_id}",
            json={**FULL, "name": "Sist"},
            headers={**auth(), "If-Match": '"1"'},
        )
        assert problem(stale, 412)["type"].endswith("unit-version-mismatch")
        assert stale.headers["ETag"] == '"2"'
        now = await client.get(f"/v1/units/{unit_id}", headers=auth())
        assert now.json()["name"] == "Först"
        assert await counts(db) == (1, 2)

    async def test_if_match_is_required(self, client: httpx.AsyncClient) -> None:
        unit_id = (await create(client)).json()["id"]
        r = await client.put(f"/v1/units/{unit_id}", json=FULL, headers=auth())
        assert problem(r, 428)["type"].endswith("precondition-required")
        bad = await client.put(
            f"/v1/units/{unit_id}", json=FULL, headers={**auth(), "If-Match": "version-1"}
        )
        assert problem(bad, 422)["errors"][0]["field"] == "If-Match"

    async def test_another_members_unit_cannot_be_changed(self, client: httpx.AsyncClient) -> None:
        unit_id = (await create(client)).json()["id"]
        # Region Kronoberg's token is refused at Växjö's instance altogether.
        r = await client.put(
            f"/v1/units/{unit_id}", json=FULL, headers={**auth(ORG_REGION), "If-Match": '"1"'}
        )
        assert problem(r, 403)["type"].endswith("forbidden")
        # An id that is not Växjö's own (e.g. from the replica) is not found.
        r = await client.put("/v1/units/not-ours", json=FULL, headers={**auth(), "If-Match": '"1"'})
        assert problem(r, 404)["type"].endswith("unit-not-found")


class TestStatus:
    async def test_close_reopen_deactivate(self, client: httpx.AsyncClient, db: Database) -> None:
        unit_id = (await create(client)).json()["id"]
        closed = await client.post(
            f"/v1/units/{unit_id}/close",
            json={"message": "Stängt v. 30, ring växeln."},
            headers=auth(),
        )
        assert closed.json()["status"] == "temporarily_closed"
        assert closed.json()["status_message"] == "Stängt v. 30, ring växeln."
        again = await client.post(
            f"/v1/units/{unit_id}/close", json={"message": "igen"}, headers=auth()
        )
        body = problem(again, 409)
        assert body["allowed"] == ["deactivate", "reopen"]
        reopened = await client.post(f"/v1/units/{unit_id}/reopen", headers=auth())
        assert reopened.json()["status"] == "active"
        assert reopened.json()["status_message"] is None
        inactive = await client.post(f"/v1/units/{unit_id}/deactivate", headers=auth())
        assert inactive.json()["status"] == "inactive"
        assert await counts(db) == (1, 4)  # every change is broadcast

    async def test_status_change_with_a_stale_if_match(self, client: httpx.AsyncClient) -> None:
        unit_id = (await create(client)).json()["id"]
        await client.post(f"/v1/units/{unit_id}/deactivate", headers=auth())
        r = await client.post(f"/v1/units/{unit_id}/reopen", headers={**auth(), "If-Match": '"1"'})
        assert r.status_code == 412

    async def test_review(self, client: httpx.AsyncClient) -> None:
        unit_id = (await create(client)).json()["id"]
        r = await client.post(
            f"/v1/units/{unit_id}/review",
            json={"reviewed_by": "Vårdkedjekoordinator"},
            headers=auth(),
        )
        assert r.status_code == 200
        assert r.json()["reviewed_by"] == "Vårdkedjekoordinator"
        assert r.json()["reviewed_at"] is not None


class TestParents:
    async def test_parent_must_be_an_own_unit_without_cycles(
        self, client: httpx.AsyncClient
    ) -> None:
        parent = (await create(client)).json()
        child = (await create(client, {**FULL, "parent_unit_id": parent["id"]})).json()
        assert child["parent_unit_id"] == parent["id"]
        unknown = await client.post(
            "/v1/units", json={**FULL, "parent_unit_id": "nope"}, headers=auth()
        )
        assert problem(unknown, 422)["errors"][0]["rule"] == "unknown_parent"
        cycle = await client.put(
            f"/v1/units/{parent['id']}",
            json={**FULL, "parent_unit_id": child["id"]},
            headers={**auth(), "If-Match": '"1"'},
        )
        assert problem(cycle, 422)["errors"][0]["rule"] == "parent_cycle"


class TestListOwn:
    async def test_cursor_pagination(self, client: httpx.AsyncClient) -> None:
        ids = {(await create(client)).json()["id"] for _ in range(5)}
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/units", params=params, headers=auth())).json()
            seen += [u["id"] for u in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))

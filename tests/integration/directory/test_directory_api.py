"""The directory service's HTTP API against a real database (SQLite and PostgreSQL).

The app is built with :func:`shared.web.app.create_app` exactly as in production and called
through ``httpx.ASGITransport`` (which does not run the lifespan, so migrations run first).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.directory.handlers import on_unit_changed
from services.directory.models import ReplicaUnit, Unit
from services.directory.replica import apply_unit_changed
from shared.data.db import Database
from shared.messaging.broker import Broker
from shared.messaging.events import CloudEvent, decode
from shared.messaging.events.payloads import UNIT_CHANGED_V1, UnitChangedV1
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.processes import free_port
from shared.web.errors import PROBLEM_JSON
from tests.conftest import (
    ORG_ALVESTA,
    ORG_REGION,
    ORG_VAXJO,
)
from tests.helpers.directory import SPEC, UNIT, auth, build
from tests.helpers.problems import field_rules, problem


async def count(db: Database, what: Any) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(what))).scalar_one())


async def stored(db: Database) -> tuple[int, int]:
    """(units, outbox rows) in the database."""
    return await count(db, Unit), await count(db, SPEC.infra.outbox)


class TestCreateUnit:
    async def test_created_with_etag_location_and_one_outbox_event(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.post("/v1/units", json=UNIT, headers=auth())

        assert response.status_code == 201, response.text
        body = response.json()
        unit_id = body["id"]
        assert body["owner_orgnr"] == ORG_VAXJO
        assert body["name"] == UNIT["name"]
        assert body["kind"] == UNIT["kind"]
        assert body["kommunkoder"] == ["0780"]
        assert body["status"] == "active"
        assert body["version"] == 1
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"] == f"/v1/units/{unit_id}"
        assert "idempotent-replayed" not in response.headers

        async with db.transaction() as session:
            units = (await session.execute(select(Unit))).scalars().all()
            outbox = (await session.execute(select(SPEC.infra.outbox))).all()
        assert [(u.id, u.owner_orgnr, u.name, u.version) for u in units] == [
            (unit_id, ORG_VAXJO, UNIT["name"], 1)
        ]
        assert len(outbox) == 1
        row = outbox[0]
        assert row.topic == "vardkedja.directory"
        assert row.key == unit_id
        assert row.event_type == UNIT_CHANGED_V1
        assert row.sent_at is None

        # The stored record is a valid CloudEvent from this member carrying the unit.
        event = decode(row.key.encode(), bytes(row.body), [(k, v.encode()) for k, v in row.headers])
        assert event.id == row.event_id
        assert event.type == UNIT_CHANGED_V1
        assert event.source == "urn:vardkedja:2120000647:directory"
        assert event.partitionkey == unit_id
        assert event.subject == unit_id
        assert event.aggversion == 1
        payload = UnitChangedV1.model_validate(event.data)
        assert payload.unit_id == unit_id
        assert payload.owner_orgnr == ORG_VAXJO
        assert payload.kommunkoder == ["0780"]
        assert payload.version == 1

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            pytest.param(
                {**UNIT, "kommunkoder": ["0000"]},
                {"kommunkoder.0": "unknown_kommunkod"},
                id="unknown-kommunkod",
            ),
            pytest.param(
                {k: v for k, v in UNIT.items() if k != "name"}, {"name": "missing"}, id="no-name"
            ),
            pytest.param({**UNIT, "kind": "nosuch"}, {"kind": "enum"}, id="unknown-kind"),
            pytest.param({**UNIT, "colour": "red"}, {"colour": "extra_forbidden"}, id="extra"),
            pytest.param({**UNIT, "kommunkoder": []}, {"kommunkoder": "too_short"}, id="empty"),
            pytest.param(
                {"kind": "nosuch", "kommunkoder": ["0780", "780"], "x": 1},
                {
                    "name": "missing",
                    "kind": "enum",
                    "kommunkoder.1": "length",
                    "x": "extra_forbidden",
                },
                id="several",
            ),
        ],
    )
    async def test_invalid_input_names_field_and_rule_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        body: dict[str, Any],
        expected: dict[str, str],
    ) -> None:
        response = await client.post("/v1/units", json=body, headers=auth())
        assert field_rules(problem(response, 422, "validation")) == expected
        assert await stored(db) == (0, 0)

    async def test_missing_token(self, client: httpx.AsyncClient, db: Database) -> None:
        response = await client.post("/v1/units", json=UNIT)
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert await stored(db) == (0, 0)

    async def test_invalid_token(self, client: httpx.AsyncClient, db: Database) -> None:
        response = await client.post(
            "/v1/units", json=UNIT, headers={"Authorization": "Bearer not.a.token"}
        )
        problem(response, 401, "unauthorized")
        assert await stored(db) == (0, 0)

    async def test_token_of_another_member(self, client: httpx.AsyncClient, db: Database) -> None:
        response = await client.post("/v1/units", json=UNIT, headers=auth(ORG_REGION))
        body = problem(response, 403, "forbidden")
        assert "another member" in body["detail"]
        assert await stored(db) == (0, 0)

    async def test_token_without_write_scope(self, client: httpx.AsyncClient, db: Database) -> None:
        response = await client.post(
            "/v1/units", json=UNIT, headers=auth(scopes=["directory:read"])
        )
        body = problem(response, 403, "forbidden")
        assert "directory:write" in body["detail"]
        assert 'scope="directory:write"' in response.headers["www-authenticate"]
        assert await stored(db) == (0, 0)


class TestCreateUnitIdempotency:
    async def test_same_key_and_body_replays_first_answer(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        headers = {**auth(), "Idempotency-Key": "create-unit-0001"}
        first = await client.post("/v1/units", json=UNIT, headers=headers)
        second = await client.post("/v1/units", json=UNIT, headers=headers)

        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert second.headers["etag"] == first.headers["etag"]
        assert second.headers["location"] == first.headers["location"]
        assert await stored(db) == (1, 1)

    async def test_same_key_other_body_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        headers = {**auth(), "Idempotency-Key": "create-unit-0002"}
        first = await client.post("/v1/units", json=UNIT, headers=headers)
        assert first.status_code == 201
        other = await client.post(
            "/v1/units", json={**UNIT, "name": "Annan enhet"}, headers=headers
        )

        body = problem(other, 422)
        assert body["type"].endswith("idempotency-key-reused")
        assert await stored(db) == (1, 1)

    async def test_key_is_per_caller(self, client: httpx.AsyncClient, db: Database) -> None:
        key = {"Idempotency-Key": "shared-key-0003"}
        a = await client.post("/v1/units", json=UNIT, headers={**auth(sub="a"), **key})
        b = await client.post("/v1/units", json=UNIT, headers={**auth(sub="b"), **key})
        assert a.status_code == b.status_code == 201
        assert a.json()["id"] != b.json()["id"]
        assert "idempotent-replayed" not in b.headers
        assert await stored(db) == (2, 2)

    @pytest.mark.parametrize(
        ("key", "rule"),
        [
            ("a b", "string_too_short"),
            ("with spaces in it", "string_pattern_mismatch"),
            ("x" * 256, "string_too_long"),
        ],
    )
    async def test_malformed_key(
        self, client: httpx.AsyncClient, db: Database, key: str, rule: str
    ) -> None:
        response = await client.post(
            "/v1/units", json=UNIT, headers={**auth(), "Idempotency-Key": key}
        )
        assert field_rules(problem(response, 422, "validation")) == {"Idempotency-Key": rule}
        assert key not in response.text
        assert await stored(db) == (0, 0)


class TestGetUnit:
    async def test_own_unit(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/v1/units", json=UNIT, headers=auth())
        unit_id = created.json()["id"]

        response = await client.get(f"/v1/units/{unit_id}", headers=auth(scopes=["directory:read"]))
        assert response.status_code == 200
        assert response.headers["etag"] == '"1"'
        assert response.json() == created.json()

    async def test_unknown_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/units/no-such-unit", headers=auth())
        body = problem(response, 404, "unit-not-found")
        assert body["instance"] == "/v1/units/no-such-unit"

    async def test_unit_of_another_owner_is_not_found(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        async with db.transaction() as session:
            session.add(Unit(id="u-alvesta", owner_orgnr=ORG_ALVESTA, name="X", kind="boendestod"))
        problem(await client.get("/v1/units/u-alvesta", headers=auth()), 404, "unit-not-found")

    async def test_needs_read_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/v1/units/no-such-unit", headers=auth(scopes=["directory:write"])
        )
        assert "directory:read" in problem(response, 403, "forbidden")["detail"]

    async def test_invalid_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/units/bad%20id", headers=auth())
        assert field_rules(problem(response, 422)) == {"unit_id": "string_pattern_mismatch"}


def unit_changed(
    unit_id: str,
    *,
    owner: str = ORG_ALVESTA,
    version: int = 1,
    name: str = "Boendestöd",
    kommunkoder: tuple[str, ...] = ("0764",),
    source_orgnr: str | None = None,
) -> tuple[CloudEvent, UnitChangedV1]:
    payload = UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=name,
        kind="boendestod",
        kommunkoder=list(kommunkoder),
        status="active",
        version=version,
        changed_at=dt.datetime(2026, 11, 23, 10, version, tzinfo=dt.UTC),
    )
    digits = (source_orgnr or owner).replace("-", "")
    event = CloudEvent(
        source=f"urn:vardkedja:{digits}:directory",
        type=UNIT_CHANGED_V1,
        aggversion=version,
        partitionkey=unit_id,
        data=payload.model_dump(mode="json"),
    )
    return event, payload


async def apply(db: Database, event: CloudEvent, payload: UnitChangedV1) -> bool:
    async with db.transaction() as session:
        return await apply_unit_changed(session=session, event=event, payload=payload)


async def replica(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/replica/units", params=params, headers=auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestListReplica:
    async def test_empty(self, client: httpx.AsyncClient) -> None:
        assert await replica(client) == {"items": [], "next_cursor": None}

    async def test_applied_unit_is_listed(self, client: httpx.AsyncClient, db: Database) -> None:
        assert await apply(db, *unit_changed("r-1", version=2, name="Boendestöd Alvesta"))
        page = await replica(client)
        assert page["next_cursor"] is None
        [item] = page["items"]
        assert item["unit_id"] == "r-1"
        assert item["owner_orgnr"] == ORG_ALVESTA
        assert item["name"] == "Boendestöd Alvesta"
        assert item["kommunkoder"] == ["0764"]
        assert item["version"] == 2
        assert dt.datetime.fromisoformat(item["changed_at"]) == dt.datetime(
            2026, 11, 23, 10, 2, tzinfo=dt.UTC
        )

        single = await client.get("/v1/replica/units/r-1", headers=auth())
        assert single.status_code == 200
        assert single.json() == item

    async def test_stale_version_does_not_roll_back(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        assert await apply(db, *unit_changed("r-1", version=3, name="Current"))
        assert not await apply(db, *unit_changed("r-1", version=2, name="Older"))
        assert not await apply(db, *unit_changed("r-1", version=3, name="Same version"))
        [item] = (await replica(client))["items"]
        assert (item["name"], item["version"]) == ("Current", 3)

        assert await apply(db, *unit_changed("r-1", version=4, name="Newer"))
        [item] = (await replica(client))["items"]
        assert (item["name"], item["version"]) == ("Newer", 4)

    async def test_filters(self, client: httpx.AsyncClient, db: Database) -> None:
        await apply(db, *unit_changed("a-alvesta", owner=ORG_ALVESTA, kommunkoder=("0764",)))
        await apply(
            db, *unit_changed("b-region", owner=ORG_REGION, kommunkoder=("0780", "0764", "0765"))
        )
        await apply(db, *unit_changed("c-vaxjo", owner=ORG_VAXJO, kommunkoder=("0780",)))

        def ids(page: dict[str, Any]) -> list[str]:
            return [i["unit_id"] for i in page["items"]]

        assert ids(await replica(client)) == ["a-alvesta", "b-region", "c-vaxjo"]
        assert ids(await replica(client, member=ORG_ALVESTA)) == ["a-alvesta"]
        # The orgnr is normalised: digits only is the same member.
        assert ids(await replica(client, member="2321000065")) == ["b-region"]
        assert ids(await replica(client, kommunkod="0780")) == ["b-region", "c-vaxjo"]
        assert ids(await replica(client, kommunkod="0764")) == ["a-alvesta", "b-region"]
        assert ids(await replica(client, member=ORG_VAXJO, kommunkod="0764")) == []
        assert ids(await replica(client, kommunkod="0764", limit=1)) == ["a-alvesta"]

    async def test_cursor_pagination(self, client: httpx.AsyncClient, db: Database) -> None:
        all_ids = [f"unit-{n}" for n in (5, 3, 1, 4, 2)]
        for unit_id in all_ids:
            await apply(db, *unit_changed(unit_id))

        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = await replica(client, **params)
            pages.append([i["unit_id"] for i in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10

        assert pages == [["unit-1", "unit-2"], ["unit-3", "unit-4"], ["unit-5"]]
        flat = [u for p in pages for u in p]
        assert len(flat) == len(set(flat)) == 5

    async def test_cursor_with_kommunkod_filter(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        for n in range(5):
            await apply(db, *unit_changed(f"k-{n}", kommunkoder=("0780",) if n % 2 else ("0764",)))
        first = await replica(client, kommunkod="0764", limit=2)
        assert [i["unit_id"] for i in first["items"]] == ["k-0", "k-2"]
        second = await replica(client, kommunkod="0764", limit=2, cursor=first["next_cursor"])
        assert [i["unit_id"] for i in second["items"]] == ["k-4"]
        assert second["next_cursor"] is None

    @pytest.mark.parametrize("cursor", ["abc", "_w==", "!!!!", "%%%"])
    async def test_invalid_cursor(
        self, client: httpx.AsyncClient, db: Database, cursor: str
    ) -> None:
        await apply(db, *unit_changed("r-1"))
        response = await client.get("/v1/replica/units", params={"cursor": cursor}, headers=auth())
        assert field_rules(problem(response, 422, "validation")) == {"cursor": "cursor"}

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"member": "212000-0648"}, {"member": "luhn"}),
            ({"member": "19121212-1212"}, {"member": "format"}),
            ({"kommunkod": "0000"}, {"kommunkod": "unknown_kommunkod"}),
            ({"limit": 0}, {"limit": "greater_than_equal"}),
            ({"limit": 501}, {"limit": "less_than_equal"}),
        ],
    )
    async def test_invalid_query(
        self, client: httpx.AsyncClient, params: dict[str, Any], expected: dict[str, str]
    ) -> None:
        response = await client.get("/v1/replica/units", params=params, headers=auth())
        assert field_rules(problem(response, 422, "validation")) == expected
        assert "19121212" not in response.text

    async def test_unknown_replica_unit(self, client: httpx.AsyncClient) -> None:
        problem(await client.get("/v1/replica/units/nope", headers=auth()), 404, "unit-not-found")

    async def test_needs_token(self, client: httpx.AsyncClient) -> None:
        problem(await client.get("/v1/replica/units"), 401, "unauthorized")


class TestOperations:
    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "service": "directory", "member": ORG_VAXJO}

    async def test_metrics(self, client: httpx.AsyncClient) -> None:
        await client.get("/v1/units/no-such-unit", headers=auth())
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "vk_http_requests_total" in response.text
        assert 'route="/v1/units/{unit_id}"' in response.text
        # Labels carry route templates, never concrete paths.
        assert "no-such-unit" not in response.text

    async def test_request_id_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Request-ID": "req-123"})
        assert response.headers["x-request-id"] == "req-123"

    async def test_ready_with_broker(self, db_url: str, db: Database, broker: Broker) -> None:
        app = build(db_url, bootstrap=broker.bootstrap)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                response = await c.get("/readyz")
        finally:
            await app.state.ctx.db.dispose()
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "database": True, "broker": True}

    async def test_not_ready_without_broker(self, db_url: str, db: Database) -> None:
        app = build(db_url, bootstrap=f"127.0.0.1:{free_port()}")
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                response = await c.get("/readyz")
        finally:
            await app.state.ctx.db.dispose()
        body = problem(response, 503, "not-ready")
        assert body["detail"] == "database=up, broker=down"


class TestOpenApi:
    async def test_every_v1_operation_is_documented(self, app: FastAPI) -> None:
        schema = app.openapi()
        assert "Problem" in schema["components"]["schemas"]
        assert "HTTPValidationError" not in schema["components"]["schemas"]
        operations = [
            (path, method, op)
            for path, item in schema["paths"].items()
            if path.startswith("/v1")
            for method, op in item.items()
        ]
        assert {(p, m) for p, m, _ in operations} == {
            ("/v1/units", "post"),
            ("/v1/units", "get"),
            ("/v1/units/stale", "get"),
            ("/v1/units/{unit_id}", "get"),
            ("/v1/units/{unit_id}", "put"),
            ("/v1/units/{unit_id}/close", "post"),
            ("/v1/units/{unit_id}/reopen", "post"),
            ("/v1/units/{unit_id}/deactivate", "post"),
            ("/v1/units/{unit_id}/review", "post"),
            ("/v1/replica/units", "get"),
            ("/v1/replica/units/{unit_id}", "get"),
            ("/v1/search", "get"),
            ("/v1/routing/resolve", "post"),
            ("/v1/units/import", "post"),
            ("/v1/units/export", "get"),
            ("/v1/overview/{orgnr}", "get"),
            ("/v1/member", "put"),
            ("/v1/members", "get"),
            ("/v1/members/{orgnr}", "get"),
        }
        for path, method, op in operations:
            where = f"{method.upper()} {path}"
            assert op.get("description"), where
            assert op.get("summary"), where
            for status in ("401", "403", "422"):
                content = op["responses"][status]["content"]
                assert PROBLEM_JSON in content, f"{where} {status}"
                assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert schema["info"]["x-member"]["orgnr"] == ORG_VAXJO

    async def test_create_unit_body_has_example(self, app: FastAPI) -> None:
        schema = app.openapi()
        request_body = schema["paths"]["/v1/units"]["post"]["requestBody"]
        ref = request_body["content"]["application/json"]["schema"]["$ref"]
        body_schema = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        [example] = body_schema["examples"]
        assert example["kommunkoder"] == ["0780"]
        assert set(example) <= set(body_schema["properties"])


def delivery(event: CloudEvent, payload: UnitChangedV1) -> Delivery:
    record = ReceivedRecord(
        topic="vardkedja.directory",
        partition=0,
        offset=0,
        key=event.partitionkey.encode() if event.partitionkey else None,
        value=b"{}",
        headers=[],
    )
    return Delivery(event, payload, record)


class TestUnitChangedHandler:
    async def test_rejects_unit_published_by_another_member(
        self, db: Database, app: FastAPI
    ) -> None:
        event, payload = unit_changed("r-forged", owner=ORG_ALVESTA, source_orgnr=ORG_VAXJO)
        with pytest.raises(Reject) as info:
            async with db.transaction() as session:
                await on_unit_changed(session, delivery(event, payload))
        assert info.value.rule == "sender_not_owner"
        assert await count(db, ReplicaUnit) == 0

    async def test_applies_unit_published_by_its_owner(self, db: Database, app: FastAPI) -> None:
        event, payload = unit_changed("r-own", owner=ORG_ALVESTA)
        async with db.transaction() as session:
            await on_unit_changed(session, delivery(event, payload))
        async with db.transaction() as session:
            row = await session.get(ReplicaUnit, "r-own")
        assert row is not None
        assert row.owner_orgnr == ORG_ALVESTA
        assert row.source_event_id == event.id

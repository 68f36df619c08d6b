"""A unit's HSA-id: set on create and update, validated, unique in the member's directory,
carried in the unit event to the replicas, listed and searched by. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy import select

from services.directory.models import ReplicaUnit
from services.directory.transfer_read import CSV_COLUMNS
from shared.data.db import Database
from shared.identity.auth import mint_token
from shared.messaging.events import decode
from shared.messaging.events.payloads import UnitChangedV1
from tests.conftest import ORG_VAXJO
from tests.helpers.directory import RW, SPEC, UNIT, auth
from tests.helpers.problems import field_rules, problem
from tests.integration.directory.test_directory_api import apply, replica, unit_changed
from tests.integration.directory.test_directory_search import ids, search, seed
from tests.integration.directory.test_directory_search import unit as search_unit

HSA = "SE2120000647-E000000000201"
REGION_ISSUED = "SE2321000065-E000000000301"  # issued by the region's catalogue, not Växjö's


async def create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post("/v1/units", json={**UNIT, **fields}, headers=auth())


class TestHsaIdOnCreate:
    async def test_stored_shown_and_carried_in_the_event(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await create(client, hsa_id=f" {HSA} ")
        assert response.status_code == 201, response.text
        unit_id = response.json()["id"]
        assert response.json()["hsa_id"] == HSA

        read = await client.get(f"/v1/units/{unit_id}", headers=auth())
        assert read.json()["hsa_id"] == HSA

        async with db.transaction() as session:
            [row] = (await session.execute(select(SPEC.infra.outbox))).all()
        event = decode(row.key.encode(), bytes(row.body), [(k, v.encode()) for k, v in row.headers])
        assert UnitChangedV1.model_validate(event.data).hsa_id == HSA

    async def test_a_prefix_of_another_organisation_is_accepted(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await create(client, hsa_id=REGION_ISSUED)
        assert response.status_code == 201, response.text
        assert response.json()["hsa_id"] == REGION_ISSUED

    async def test_optional(self, client: httpx.AsyncClient) -> None:
        response = await create(client)
        assert response.status_code == 201, response.text
        assert response.json()["hsa_id"] is None

    async def test_invalid_is_refused_naming_field_and_rule(
        self, client: httpx.AsyncClient
    ) -> None:
        cases = {
            "SE2120000648-E1": "hsa_prefix_luhn",
            "SE2120000647-" + "E" * 19: "length",
            "SE212000-0647-E1": "format",
            "E000000000201": "format",
        }
        for value, rule in cases.items():
            body = problem(await create(client, hsa_id=value), 422, "validation")
            assert field_rules(body) == {"hsa_id": rule}
            assert value not in str(body)

    async def test_unique_in_the_directory(self, client: httpx.AsyncClient) -> None:
        assert (await create(client, hsa_id=HSA)).status_code == 201
        body = problem(await create(client, hsa_id=HSA, name="Annan enhet"), 422)
        assert field_rules(body) == {"hsa_id": "hsa_id_in_use"}


class TestHsaIdOnUpdate:
    async def test_set_kept_and_cleared(self, client: httpx.AsyncClient) -> None:
        created = (await create(client)).json()
        other = (await create(client, hsa_id=REGION_ISSUED, name="Annan enhet")).json()

        version = created["version"]

        async def put(**fields: Any) -> httpx.Response:
            nonlocal version
            response = await client.put(
                f"/v1/units/{created['id']}",
                json={**UNIT, **fields},
                headers={**auth(), "If-Match": f'"{version}"'},
            )
            if response.status_code == 200:
                version = response.json()["version"]
            return response

        assert (await put(hsa_id=HSA)).json()["hsa_id"] == HSA
        assert (await put(hsa_id=HSA)).status_code == 200  # its own id is no conflict
        taken = problem(await put(hsa_id=other["hsa_id"]), 422)
        assert field_rules(taken) == {"hsa_id": "hsa_id_in_use"}
        assert (await put()).json()["hsa_id"] is None


class TestListByHsaId:
    async def test_own_units(self, client: httpx.AsyncClient) -> None:
        wanted = (await create(client, hsa_id=HSA)).json()["id"]
        await create(client, hsa_id=REGION_ISSUED, name="Annan enhet")
        await create(client, name="Utan HSA-id")

        page = await client.get("/v1/units", params={"hsa_id": HSA}, headers=auth())
        assert [u["id"] for u in page.json()["items"]] == [wanted]
        everything = await client.get("/v1/units", headers=auth())
        assert len(everything.json()["items"]) == 3

        bad = await client.get("/v1/units", params={"hsa_id": "x"}, headers=auth())
        assert field_rules(problem(bad, 422, "validation")) == {"hsa_id": "format"}


class TestReplica:
    async def test_carried_to_the_replica_and_filtered(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        event, payload = unit_changed("r-1")
        with_hsa = payload.model_copy(update={"hsa_id": REGION_ISSUED})
        event = event.model_copy(update={"data": with_hsa.model_dump(mode="json")})
        assert await apply(db, event, with_hsa)
        assert await apply(db, *unit_changed("r-2"))

        [item] = (await replica(client, hsa_id=REGION_ISSUED))["items"]
        assert (item["unit_id"], item["hsa_id"]) == ("r-1", REGION_ISSUED)
        async with db.transaction() as session:
            assert (await session.get(ReplicaUnit, "r-2")).hsa_id is None  # type: ignore[union-attr]

    async def test_an_event_from_before_the_field_is_valid(self) -> None:
        _, payload = unit_changed("r-1")
        old = payload.model_dump(mode="json")
        del old["hsa_id"]
        assert UnitChangedV1.model_validate(old).hsa_id is None


class TestSearch:
    async def test_filter_and_item(self, client: httpx.AsyncClient, db: Database) -> None:
        await seed(
            db,
            search_unit("a", "Boendestöd A").model_copy(update={"hsa_id": HSA}),
            search_unit("b", "Boendestöd B"),
        )
        page = await search(client, hsa_id=HSA)
        assert ids(page) == ["a"]
        assert page["items"][0]["hsa_id"] == HSA
        assert sorted(ids(await search(client, q="boendestöd"))) == ["a", "b"]


def unit_auth(unit: str) -> dict[str, str]:
    token = mint_token(sub="tester", org=ORG_VAXJO, unit=unit, scopes=RW)
    return {"Authorization": f"Bearer {token}"}


class TestUnitClaimByHsaId:
    """A unit's token may name the unit by its HSA-id: it changes that unit as its id would."""

    async def test_the_unit_named_by_hsa_id_changes_itself_only(
        self, client: httpx.AsyncClient
    ) -> None:
        mine = (await create(client, hsa_id=HSA)).json()
        other = (await create(client, name="Annan enhet")).json()

        async def put(unit: dict[str, Any], token_unit: str) -> httpx.Response:
            return await client.put(
                f"/v1/units/{unit['id']}",
                json={**UNIT, "hsa_id": unit["hsa_id"], "mission": "Ny"},
                headers={**unit_auth(token_unit), "If-Match": f'"{unit["version"]}"'},
            )

        assert (await put(mine, HSA)).status_code == 200
        problem(await put(other, HSA), 403)
        problem(await put(other, REGION_ISSUED), 403, "unknown-hsa-id")


class TestImportExport:
    """The CSV has an optional ``hsa_id`` column; a file may not give one HSA-id twice."""

    async def import_csv(self, client: httpx.AsyncClient, *rows: dict[str, str]) -> httpx.Response:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for cells in rows:
            writer.writerow([cells.get(c, "") for c in CSV_COLUMNS])
        return await client.post(
            "/v1/units/import",
            content=buffer.getvalue().encode(),
            headers={**auth(), "Content-Type": "text/csv"},
        )

    async def test_imported_and_exported(self, client: httpx.AsyncClient) -> None:
        r = await self.import_csv(
            client,
            {"name": "Boendestöd", "kind": "boendestod", "kommunkoder": "0780", "hsa_id": HSA},
        )
        assert r.status_code == 200, r.text
        page = await client.get("/v1/units", params={"hsa_id": HSA}, headers=auth())
        assert [u["name"] for u in page.json()["items"]] == ["Boendestöd"]

        exported = await client.get("/v1/units/export", params={"format": "csv"}, headers=auth())
        [record] = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        assert record["hsa_id"] == HSA

    async def test_the_same_hsa_id_twice_in_a_file_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        unit = {"kind": "boendestod", "kommunkoder": "0780", "hsa_id": HSA}
        r = await self.import_csv(client, {**unit, "name": "Enhet A"}, {**unit, "name": "Enhet B"})
        body = problem(r, 422)
        assert field_rules(body) == {"line 3: hsa_id": "duplicate_in_file"}

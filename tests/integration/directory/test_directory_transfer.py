"""Bulk import and export of the member's own units (CSV and YAML), all or nothing, against
a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import func, select

from services.directory.models import Unit
from services.directory.transfer_cells import parse_contact_paths, parse_opening_hours
from services.directory.transfer_read import CSV_COLUMNS
from services.directory.transfer_router import MAX_IMPORT_BYTES, overview_router, transfer_router
from shared.data.db import Database
from shared.web.app import create_app
from tests.conftest import ORG_VAXJO, make_settings
from tests.helpers.directory import SPEC, auth
from tests.helpers.problems import problem

# The export route must come before GET /v1/units/{unit_id}; once the spec includes the
# routers, its own order is what is tested.
ROUTERS = (
    SPEC.routers
    if transfer_router in SPEC.routers and overview_router in SPEC.routers
    else [transfer_router, *SPEC.routers, overview_router]
)
TRANSFER_SPEC = dataclasses.replace(SPEC, routers=ROUTERS)
CSV_TYPE = {"Content-Type": "text/csv"}
YAML_TYPE = {"Content-Type": "application/yaml"}

HEADER = ",".join(CSV_COLUMNS)
GOOD_CSV = (
    HEADER
    + "\n"
    + "Socialtjänstens mottagning vuxna,socialtjanstens_mottagning,"
    + '"Tar emot ansökningar, utreder och beslutar.",0780,utredning_sol;boendestod,'
    + "kontaktbegaran;sip_kallelse,"
    + '"Ansökan om boendestöd|inbox|;;Rådgivning|phone|0470-41 00 00",'
    + "mon-fri 08:00-16:30,2026-01-01,,VX-1\n"
    + "Boendestödet,boendestod,,0780; 0764,boendestod,,"
    + '"Handlingar|postal_address|c/o Socialtjänsten, Box 1222, 351 12 Växjö'
    + ';;Mejl|email|boendestod@vaxjo.se|vardagar",'
    + '"mon-thu 08:00-16:30; fri 08:00-15:00; closed_on_eves=false; '
    + '2026-12-23 08:00-12:00 note=Lillejulafton; note=Ring växeln\\; fråga efter oss",,,VX-2\n'
    + "Jourtelefonen,akutpsykiatri,,0780,,,Akut|phone|0470-58 60 00,always_open,,,\n"
)


@pytest.fixture
async def app(db_url: str, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(
        TRANSFER_SPEC, make_settings(service="directory", orgnr=ORG_VAXJO, db_url=db_url)
    )
    yield application
    await application.state.ctx.db.dispose()


async def counts(db: Database) -> tuple[int, int]:
    """(units, outbox rows)."""
    async with db.sessionmaker() as s:
        units = await s.scalar(select(func.count()).select_from(Unit))
        events = await s.scalar(select(func.count()).select_from(SPEC.infra.outbox))
    return int(units or 0), int(events or 0)


async def units(db: Database) -> dict[str, Unit]:
    async with db.sessionmaker() as s:
        return {u.name: u for u in (await s.execute(select(Unit))).scalars()}


async def import_csv(client: httpx.AsyncClient, text: str, **params: Any) -> httpx.Response:
    return await client.post(
        "/v1/units/import", content=text.encode(), headers={**auth(), **CSV_TYPE}, params=params
    )


async def import_ok(client: httpx.AsyncClient, text: str, **params: Any) -> dict[str, Any]:
    r = await import_csv(client, text, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def row(**cells: str) -> str:
    """One CSV data row in the order of CSV_COLUMNS (missing cells empty)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([cells.get(c, "") for c in CSV_COLUMNS])
    return buffer.getvalue()


GOOD_ROW = {"kind": "boendestod", "kommunkoder": "0780"}


class TestImportCsv:
    async def test_good_file_creates_units_and_announces_each(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        report = await import_ok(client, GOOD_CSV)

        assert (report["rows"], report["created"], report["updated"]) == (3, 3, 0)
        assert [i["line"] for i in report["items"]] == [2, 3, 4]
        assert [i["external_id"] for i in report["items"]] == ["VX-1", "VX-2", None]
        assert len(report["unit_ids"]) == 3
        assert await counts(db) == (3, 3)  # one UnitChanged event per unit on the outbox
        stored = await units(db)
        mottagning = stored["Socialtjänstens mottagning vuxna"]
        assert mottagning.owner_orgnr == ORG_VAXJO
        assert mottagning.mission == "Tar emot ansökningar, utreder och beslutar."
        assert mottagning.interventions == ["utredning_sol", "boendestod"]
        assert mottagning.contact_paths[1] == {
            "reason": "Rådgivning",
            "channel": "phone",
            "phone": "+46470410000",
            "email": None,
            "secure_mail": None,
            "postal": None,
            "note": None,
        }
        assert str(mottagning.valid_from) == "2026-01-01"
        boende = stored["Boendestödet"]
        assert boende.kommunkoder == ["0780", "0764"]
        assert boende.contact_paths[0]["postal"] == {
            "street": "Box 1222",
            "postcode": "351 12",
            "city": "Växjö",
            "care_of": "Socialtjänsten",
        }
        assert boende.contact_paths[1]["note"] == "vardagar"
        hours = boende.opening_hours
        assert hours is not None
        assert [i["day"] for i in hours["weekly"]] == ["mon", "tue", "wed", "thu", "fri"]
        assert hours["weekly"][4]["closes"].startswith("15:00")
        assert hours["closed_on_eves"] is False
        assert hours["closed_on_public_holidays"] is True
        assert hours["special_days"][0]["note"] == "Lillejulafton"
        assert hours["note"] == "Ring växeln; fråga efter oss"
        jour = stored["Jourtelefonen"].opening_hours
        assert jour is not None
        assert jour["always_open"] is True

    async def test_three_bad_rows_are_all_listed_and_nothing_is_stored(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = (
            HEADER
            + "\n"
            + row(name="Okänd kommun", kind="boendestod", kommunkoder="0000")
            + row(name="Fel telefon", contact_paths="Rådgivning|phone|12ab", **GOOD_ROW)
            + row(name="Fel insats", interventions="kbt;trolldom", **GOOD_ROW)
            + row(name="Bra rad", **GOOD_ROW)
        )
        r = await import_csv(client, text)

        body = problem(r, 422, "import-invalid")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("line 2: kommunkoder.0", "unknown_kommunkod"),
            ("line 3: contact_paths.0.phone", "phone_format"),
            ("line 4: interventions.1", "enum"),
        ]
        assert "header being line 1" in body["detail"]
        for value in ("0000", "12ab", "trolldom"):
            assert value not in r.text  # the problem never echoes the submitted values
        assert await counts(db) == (0, 0)

    async def test_duplicate_name_and_kind_in_one_file_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = (
            HEADER
            + "\n"
            + row(name="Boendestödet", **GOOD_ROW)
            + row(name="Boendestödet", kind="sysselsattning", kommunkoder="0780")
            + row(name="Boendestödet", **GOOD_ROW)
        )
        body = problem(await import_csv(client, text), 422, "import-invalid")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("line 4: name", "duplicate_in_file")
        ]
        assert "line 2" in body["errors"][0]["message"]
        assert await counts(db) == (0, 0)

    async def test_reimport_updates_by_name_and_kind_instead_of_duplicating(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        first = await import_ok(client, GOOD_CSV)
        changed = GOOD_CSV.replace("Tar emot ansökningar", "Tar emot alla ansökningar")

        second = await import_ok(client, changed)

        assert (second["created"], second["updated"], second["unchanged"]) == (0, 1, 2)
        assert second["unit_ids"] == first["unit_ids"]
        stored = await units(db)
        assert stored["Socialtjänstens mottagning vuxna"].version == 2
        assert stored["Socialtjänstens mottagning vuxna"].mission.startswith("Tar emot alla")
        assert stored["Boendestödet"].version == 1  # unchanged rows are left alone
        assert await counts(db) == (3, 4)  # only the change was announced

    async def test_reimporting_the_same_file_changes_nothing(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await import_ok(client, GOOD_CSV)
        again = await import_ok(client, GOOD_CSV)
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
        assert {u.version for u in (await units(db)).values()} == {1}
        assert await counts(db) == (3, 3)

    async def test_csv_update_keeps_the_fields_csv_cannot_carry(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        body = {
            "name": "Boendestödet",
            "kind": "boendestod",
            "kommunkoder": ["0780"],
            "target_groups": [{"description": "Vuxna med skadligt bruk", "age_min": 18}],
            "capacity": {"free_places": 2, "as_of": "2026-11-23T08:00:00+01:00"},
        }
        created = await client.post("/v1/units", json=body, headers=auth())
        assert created.status_code == 201, created.text

        report = await import_ok(
            client, HEADER + "\n" + row(name="Boendestödet", mission="Nytt uppdrag", **GOOD_ROW)
        )

        assert report["updated"] == 1
        unit = (await units(db))["Boendestödet"]
        assert unit.mission == "Nytt uppdrag"
        assert unit.target_groups[0]["description"] == "Vuxna med skadligt bruk"
        assert unit.capacity is not None
        assert unit.capacity["free_places"] == 2

    async def test_columns_left_out_are_kept_and_empty_cells_clear(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await import_ok(client, GOOD_CSV)
        name = "Socialtjänstens mottagning vuxna"

        report = await import_ok(
            client, f"name,kind,kommunkoder\n{name},socialtjanstens_mottagning,0780;0764\n"
        )

        assert report["updated"] == 1
        unit = (await units(db))[name]
        assert unit.kommunkoder == ["0780", "0764"]
        assert len(unit.contact_paths) == 2  # no contact_paths column: kept
        assert unit.mission.startswith("Tar emot")
        cleared = await import_ok(
            client,
            f"name,kind,kommunkoder,contact_paths,mission\n"
            f"{name},socialtjanstens_mottagning,0780;0764,,\n",
        )
        assert cleared["updated"] == 1
        unit = (await units(db))[name]
        assert unit.contact_paths == []
        assert unit.mission == ""
        assert unit.opening_hours is not None  # still not in the header

    async def test_dry_run_reports_and_stores_nothing(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        report = await import_ok(client, GOOD_CSV, dry_run="true")
        assert report["dry_run"] is True
        assert report["created"] == 3
        assert [i["unit_id"] for i in report["items"]] == [None, None, None]
        assert await counts(db) == (0, 0)

        await import_ok(client, GOOD_CSV)
        changed = GOOD_CSV.replace("Tar emot ansökningar", "Tar emot alla ansökningar")
        dry = await import_ok(client, changed, dry_run="true")
        assert (dry["updated"], dry["unchanged"]) == (1, 2)
        assert {u.version for u in (await units(db)).values()} == {1}
        assert await counts(db) == (3, 3)

    async def test_a_dry_run_refuses_a_bad_file_like_a_real_import(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = HEADER + "\n" + row(name="X", kind="boendestod", kommunkoder="0000")
        body = problem(await import_csv(client, text, dry_run="true"), 422)
        assert {e["field"] for e in body["errors"]} == {"line 2: name", "line 2: kommunkoder.0"}
        assert await counts(db) == (0, 0)

    async def test_semicolon_separated_file_with_bom_from_a_swedish_excel(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = (
            "\ufeffname;kind;kommunkoder;contact_paths;opening_hours\r\n"
            'Boendestödet;boendestod;"0780;0764";Ansökan|inbox|;mån-fre 08:00-16:30\r\n'
        )
        report = await import_ok(client, text)
        assert report["created"] == 1
        unit = (await units(db))["Boendestödet"]
        assert unit.kommunkoder == ["0780", "0764"]
        assert unit.opening_hours is not None
        assert len(unit.opening_hours["weekly"]) == 5

    async def test_header_and_syntax_problems(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        body = problem(await import_csv(client, "name,colour\nX,red\n"), 422)
        assert {(e["field"], e["rule"]) for e in body["errors"]} == {
            ("line 1: column 2", "unknown_column"),
            ("line 1: kind", "missing_column"),
            ("line 1: kommunkoder", "missing_column"),
        }
        text = (
            HEADER
            + "\n"
            + row(name="Öppettider", opening_hours="mon-fri 8-16", **GOOD_ROW)
            + row(name="Kontaktväg", contact_paths="bara en orsak", **GOOD_ROW)
            + row(name="Inkorg", contact_paths="Ansökan|inbox|något", **GOOD_ROW)
            + row(name="Post", contact_paths="Post|postal|Box 1", **GOOD_ROW)
        )
        body = problem(await import_csv(client, text), 422)
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("line 2: opening_hours", "opening_hours_syntax"),
            ("line 3: contact_paths.0", "contact_path_syntax"),
            ("line 4: contact_paths.0", "channel_value"),
            ("line 5: contact_paths.0.postal", "postal_syntax"),
        ]
        assert await counts(db) == (0, 0)

    async def test_not_utf8(self, client: httpx.AsyncClient) -> None:
        text = HEADER + "\n" + row(name="Växjö", **GOOD_ROW)
        r = await client.post(
            "/v1/units/import", content=text.encode("cp1252"), headers={**auth(), **CSV_TYPE}
        )
        assert problem(r, 422)["errors"][0]["rule"] == "encoding"


class TestImportNul:
    async def test_a_nul_in_a_csv_file_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = HEADER + "\n" + row(name="Boende\x00stödet", **GOOD_ROW)
        body = problem(await import_csv(client, text), 422)
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [("body", "nul_character")]
        assert await counts(db) == (0, 0)

    async def test_a_nul_written_as_a_yaml_escape_is_refused(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = (
            "- {name: Bra, kind: boendestod, kommunkoder: ['0780']}\n"
            '- {name: "Boende\\0stödet", kind: boendestod, kommunkoder: ["0780"]}\n'
        )
        r = await client.post(
            "/v1/units/import", content=text.encode(), headers={**auth(), **YAML_TYPE}
        )
        body = problem(r, 422, "import-invalid")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("line 2: name", "nul_character")
        ]
        assert await counts(db) == (0, 0)


class TestImportYaml:
    async def test_yaml_list_of_units(self, client: httpx.AsyncClient, db: Database) -> None:
        text = """
- name: Socialtjänstens mottagning vuxna
  kind: socialtjanstens_mottagning
  external_id: VX-1
  kommunkoder: [0780, 0764]
  target_groups:
    - {description: Vuxna med skadligt bruk, age_min: 18}
  contact_paths:
    - {reason: Ansökan om boendestöd, channel: inbox}
    - {reason: Rådgivning, channel: phone, phone: 0470-41 00 00}
  opening_hours:
    weekly:
      - {day: mon, opens: 08:00, closes: 16:30}
  valid_from: 2026-01-01
- name: Boendestödet
  kind: boendestod
  kommunkoder: ["0780"]
"""
        r = await client.post(
            "/v1/units/import", content=text.encode(), headers={**auth(), **YAML_TYPE}
        )
        assert r.status_code == 200, r.text
        assert r.json()["created"] == 2
        assert r.json()["items"][0]["external_id"] == "VX-1"
        assert await counts(db) == (2, 2)
        unit = (await units(db))["Socialtjänstens mottagning vuxna"]
        assert unit.kommunkoder == ["0780", "0764"]  # YAML 1.2 numbers: 0764 stays text
        assert unit.opening_hours is not None
        assert unit.opening_hours["weekly"][0]["closes"].startswith("16:30")  # not 990 s
        assert unit.target_groups[0]["age_min"] == 18

    async def test_bad_items_are_numbered_from_one(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = (
            "- {name: Bra, kind: boendestod, kommunkoder: ['0780']}\n"
            "- {name: Dålig, kind: x}\n"
            "- 42\n"
        )
        r = await client.post(
            "/v1/units/import",
            content=text.encode(),
            headers={**auth(), "Content-Type": "application/x-yaml"},
        )
        body = problem(r, 422, "import-invalid")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("line 2: kind", "enum"),
            ("line 2: kommunkoder", "missing"),
            ("line 3: item", "model_type"),
        ]
        assert "YAML list" in body["detail"]
        assert await counts(db) == (0, 0)

    async def test_malformed_yaml_and_aliases(self, client: httpx.AsyncClient) -> None:
        for text, rule in [
            ("- name: [unclosed\n", "yaml_syntax"),
            ("- &a {name: A, kind: boendestod, kommunkoder: ['0780']}\n- *a\n", "yaml_alias"),
            ("name: not a list\n", "yaml_list"),
            ("null\n", "yaml_list"),  # the documented body is a list: none is written []
            ("# nothing\n", "yaml_list"),
        ]:
            r = await client.post(
                "/v1/units/import", content=text.encode(), headers={**auth(), **YAML_TYPE}
            )
            body = problem(r, 422)
            assert body["errors"][0]["rule"] == rule
            assert "unclosed" not in r.text


class TestImportLimits:
    async def test_oversized_body_is_refused_with_413(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        text = HEADER + "\n" + row(name="Boendestödet", **GOOD_ROW)
        big = text + "#" * (MAX_IMPORT_BYTES + 1 - len(text.encode()))
        r = await import_csv(client, big)
        problem(r, 413, "payload-too-large")
        assert await counts(db) == (0, 0)

    async def test_oversized_stream_without_content_length(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(6):
                yield b"x" * (1024 * 1024)

        r = await client.post("/v1/units/import", content=chunks(), headers={**auth(), **CSV_TYPE})
        problem(r, 413, "payload-too-large")

    @pytest.mark.parametrize(
        "content_type", ["application/json", "text/plain", "text/csv; charset=latin-1", None]
    )
    async def test_unsupported_content_type_is_refused_with_415(
        self, client: httpx.AsyncClient, db: Database, content_type: str | None
    ) -> None:
        headers = auth() | ({"Content-Type": content_type} if content_type else {})
        r = await client.post("/v1/units/import", content=GOOD_CSV.encode(), headers=headers)
        problem(r, 415, "unsupported-media-type")
        assert await counts(db) == (0, 0)

    async def test_scopes(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/units/import", content=GOOD_CSV.encode(), headers=CSV_TYPE)
        problem(r, 401)
        r = await client.post(
            "/v1/units/import",
            content=GOOD_CSV.encode(),
            headers={**auth(scopes=["directory:read"]), **CSV_TYPE},
        )
        problem(r, 403)
        r = await client.get("/v1/units/export", headers=auth(scopes=["directory:write"]))
        problem(r, 403)


FULL_UNIT: dict[str, Any] = {
    "name": "Beroendemottagningen | Växjö; vuxna",
    "kind": "beroendemottagning",
    "mission": "Utreder och behandlar.\nTvå rader; med semikolon.",
    "target_groups": [{"description": "Vuxna", "age_min": 18}],
    "interventions": ["abstinensbehandling", "kbt"],
    "kommunkoder": ["0780", "0764"],
    "contact_paths": [
        {"reason": "Remiss; vårdkedjan", "channel": "inbox"},
        {
            "reason": "Rådgivning | läkare",
            "channel": "phone",
            "phone": "08-123 456 78",
            "note": "vardagar 8\\10; ej lunch",
        },
        {
            "reason": "Post",
            "channel": "postal_address",
            "postal": {
                "street": "Box 1, plan 2",
                "postcode": "35112",
                "city": "Växjö",
                "care_of": "Kansliet",
            },
        },
        {
            "reason": "Säker post",
            "channel": "secure_mail",
            "secure_mail": "beroende@sakerpost.regionkronoberg.se",
        },
    ],
    "opening_hours": {
        "weekly": [
            {"day": "mon", "opens": "08:00", "closes": "12:00"},
            {"day": "mon", "opens": "13:00", "closes": "16:30"},
            {"day": "tue", "opens": "08:00", "closes": "12:00"},
            {"day": "tue", "opens": "13:00", "closes": "16:30"},
            {"day": "thu", "opens": "08:00", "closes": "16:30"},
            {"day": "sat", "opens": "22:00", "closes": "24:00"},
        ],
        "closed_on_public_holidays": False,
        "special_days": [
            {
                "date": "2026-12-23",
                "intervals": [{"opens": "08:00", "closes": "12:00"}],
                "note": "Lillejul; kort dag",
            },
            {"date": "2026-09-04", "closed": True},
        ],
        "note": "Ring växeln först",
    },
    "referral_kinds": ["vardkedjeremiss"],
    "valid_from": "2026-01-01",
    "valid_to": "2027-12-31",
    "capacity": {"free_places": 3, "total_places": 12, "as_of": "2026-11-23T08:00:00+01:00"},
}
PLAIN_UNITS: list[dict[str, Any]] = [
    {
        "name": "Jouren",
        "kind": "akutpsykiatri",
        "kommunkoder": ["0780"],
        "opening_hours": {"always_open": True, "note": "Dygnet runt"},
    },
    {
        "name": "Boendestödet",
        "kind": "boendestod",
        "kommunkoder": ["0780"],
        "opening_hours": {"closed_on_eves": False},
    },
    {"name": "Åbo", "kind": "boendestod", "kommunkoder": ["0780"]},
]


class TestExportRoundTrip:
    async def seed(self, client: httpx.AsyncClient) -> None:
        for body in [FULL_UNIT, *PLAIN_UNITS]:
            r = await client.post("/v1/units", json=body, headers=auth())
            assert r.status_code == 201, r.text
        # One with a version above 1 and a status import must not touch.
        unit_id = r.json()["id"]
        r = await client.post(f"/v1/units/{unit_id}/deactivate", headers=auth())
        assert r.status_code == 200

    @pytest.mark.parametrize("fmt", ["csv", "yaml"])
    async def test_importing_the_export_changes_nothing(
        self, client: httpx.AsyncClient, db: Database, fmt: str
    ) -> None:
        await self.seed(client)
        before = {n: (u.version, u.status) for n, u in (await units(db)).items()}
        events = (await counts(db))[1]

        r = await client.get("/v1/units/export", params={"format": fmt}, headers=auth())
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == (
            f'attachment; filename="enheter-{ORG_VAXJO}.{fmt}"'
        )
        media = "text/csv" if fmt == "csv" else "application/yaml"
        assert r.headers["content-type"].startswith(media)
        back = await client.post(
            "/v1/units/import",
            content=r.content,
            headers={**auth(), "Content-Type": media},
        )

        assert back.status_code == 200, back.text
        report = back.json()
        assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 4)
        assert {n: (u.version, u.status) for n, u in (await units(db)).items()} == before
        assert (await counts(db))[1] == events

    async def test_csv_export_is_one_row_per_unit_in_swedish_order(
        self, client: httpx.AsyncClient
    ) -> None:
        await self.seed(client)
        r = await client.get("/v1/units/export", headers=auth())
        text = r.content.decode("utf-8")
        assert text.startswith("\ufeff")
        rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
        assert [r["name"] for r in rows] == [
            "Beroendemottagningen | Växjö; vuxna",
            "Boendestödet",
            "Jouren",
            "Åbo",
        ]
        full = rows[0]
        assert full["kommunkoder"] == "0780;0764"
        assert full["contact_paths"].split(";;")[0] == "Remiss\\; vårdkedjan|inbox|"
        assert (
            "Post|postal_address|c/o Kansliet, Box 1, plan 2, 351 12 Växjö" in full["contact_paths"]
        )
        assert full["opening_hours"] == (
            "mon-tue 08:00-12:00,13:00-16:30; thu 08:00-16:30; sat 22:00-24:00; "
            "closed_on_public_holidays=false; 2026-09-04 closed; "
            "2026-12-23 08:00-12:00 note=Lillejul\\; kort dag; note=Ring växeln först"
        )
        assert rows[1]["opening_hours"] == "closed_on_eves=false"
        assert rows[2]["opening_hours"] == "always_open; note=Dygnet runt"
        assert rows[3]["opening_hours"] == ""

    async def test_yaml_export_carries_every_field(self, client: httpx.AsyncClient) -> None:
        await self.seed(client)
        r = await client.get("/v1/units/export", params={"format": "yaml"}, headers=auth())
        items = yaml.safe_load(r.text)
        assert items[0]["name"] == FULL_UNIT["name"]
        assert items[0]["target_groups"] == [{"description": "Vuxna", "age_min": 18}]
        assert items[0]["capacity"]["free_places"] == 3
        assert "status" not in items[0]
        assert "id" not in items[0]


class TestCompactSyntax:
    """The CSV cells' compact syntax on its own (no database)."""

    def test_contact_paths(self) -> None:
        paths, problems = parse_contact_paths(
            "A\\|B|inbox;; Tel | phone | 0470-41 00 00 | note\\;x ;;Mejl|email|a@b.se"
        )
        assert problems == []
        assert paths == [
            {"reason": "A|B", "channel": "inbox"},
            {"reason": "Tel", "channel": "phone", "phone": "0470-41 00 00", "note": "note;x"},
            {"reason": "Mejl", "channel": "functional_email", "email": "a@b.se"},
        ]

    def test_opening_hours(self) -> None:
        hours, problems = parse_opening_hours(
            "mon,wed-thu 8:00-12:00,13:00-24:00; always_open; closed_on_eves=FALSE; "
            "2026-09-04 closed note=Personaldag"
        )
        assert problems == []
        assert hours is not None
        assert [(i["day"], i["opens"], i["closes"]) for i in hours["weekly"]] == [
            (d, o, c)
            for d in ("mon", "wed", "thu")
            for o, c in (("08:00", "12:00"), ("13:00", "24:00"))
        ]
        assert hours["always_open"] is True
        assert hours["closed_on_eves"] is False
        assert hours["special_days"] == [
            {"date": "2026-09-04", "closed": True, "note": "Personaldag"}
        ]
        assert parse_opening_hours("  ") == (None, [])
        _, problems = parse_opening_hours("fri-mon 08:00-16:00; sön; 2026-01-01 open")
        assert [m for _, _, m in problems] == [
            "entry 1: write weekly hours as e.g. 'mon-fri 08:00-16:30'",
            "entry 2: write weekly hours as e.g. 'mon-fri 08:00-16:30'",
            "entry 3: write a special day as 'YYYY-MM-DD closed' or 'YYYY-MM-DD 10:00-14:00'",
        ]

"""The printable "Kontaktvägar" overview of a member, built from the replica, as HTML, PDF
and CSV (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.directory import replica
from services.directory.models import ReplicaUnit
from services.directory.overview import build_overview
from services.directory.overview_render import CSV_COLUMNS, render_pdf
from services.directory.transfer_router import overview_router, transfer_router
from shared.data.db import Database, utcnow
from shared.domain.calendar import to_local
from shared.domain.swedish import format_phone_national, swedish_sort_key
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import UNIT_CHANGED_V1, UnitChangedV1
from shared.web.app import create_app
from shared.web.errors import PROBLEM_BASE, PROBLEM_JSON
from shared.web.pdf import pdf_safe
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, make_settings
from tests.helpers.directory import SPEC, auth

ROUTERS = (
    SPEC.routers
    if transfer_router in SPEC.routers and overview_router in SPEC.routers
    else [transfer_router, *SPEC.routers, overview_router]
)
OVERVIEW_SPEC = dataclasses.replace(SPEC, routers=ROUTERS)
WEEKDAYS = {
    "weekly": [
        {"day": d, "opens": "08:00", "closes": "16:30"} for d in ("mon", "tue", "wed", "thu", "fri")
    ]
}


@pytest.fixture
async def app(db_url: str, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(
        OVERVIEW_SPEC, make_settings(service="directory", orgnr=ORG_VAXJO, db_url=db_url)
    )
    yield application
    await application.state.ctx.db.dispose()


def changed(unit_id: str, owner: str, name: str, **fields: Any) -> tuple[CloudEvent, UnitChangedV1]:
    payload = UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=name,
        kind=fields.pop("kind", "boendestod"),
        kommunkoder=fields.pop("kommunkoder", ["0780"]),
        status=fields.pop("status", "active"),
        version=1,
        changed_at=dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC),
        **fields,
    )
    event = CloudEvent(
        source=f"urn:vardkedja:{owner.replace('-', '')}:directory",
        type=UNIT_CHANGED_V1,
        aggversion=1,
        partitionkey=unit_id,
        data=payload.model_dump(mode="json"),
    )
    return event, payload


async def seed(db: Database, *units: tuple[CloudEvent, UnitChangedV1]) -> None:
    async with db.transaction() as session:
        for event, payload in units:
            assert await replica.apply_unit_changed(session=session, event=event, payload=payload)


def path(reason: str, channel: str = "inbox", **value: Any) -> dict[str, Any]:
    return {"reason": reason, "channel": channel, **value}


RECENTLY = utcnow() - dt.timedelta(days=10)
LONG_AGO = utcnow() - dt.timedelta(days=400)
TODAY = to_local(utcnow()).date()


async def seed_two_members(db: Database) -> None:
    await seed(
        db,
        changed(
            "vx-mottagning",
            ORG_VAXJO,
            "Socialtjänstens mottagning vuxna",
            kind="socialtjanstens_mottagning",
            mission="Tar emot ansökningar <script>alert(1)</script>",
            kommunkoder=["0780", "0764"],
            contact_paths=[
                path("Ansökan om boendestöd"),
                path("Rådgivning", "phone", phone="+46470410000", note="vardagar 8–10"),
                path("Återfallsprevention", "functional_email", email="mottagning@vaxjo.se"),
            ],
            opening_hours=WEEKDAYS,
            reviewed_at=RECENTLY,
        ),
        changed(
            "vx-boende",
            ORG_VAXJO,
            "Boendestödet",
            status="temporarily_closed",
            status_message="Stängt v. 30, ring växeln.",
            contact_paths=[
                path("  rådgivning ", "phone", phone="+46701234567"),
                path("Z-läkemedel, frågor om", "secure_mail", secure_mail="boende@sakerpost.se"),
                path(
                    "Äldre med beroende",
                    "postal_address",
                    postal={"street": "Box 1222", "postcode": "351 12", "city": "Växjö"},
                ),
            ],
            reviewed_at=LONG_AGO,
        ),
        changed(
            "vx-nedlagd",
            ORG_VAXJO,
            "Den nedlagda mottagningen",
            status="inactive",
            contact_paths=[path("Ansökan om boendestöd")],
        ),
        changed(
            "vx-upphord",
            ORG_VAXJO,
            "Den upphörda mottagningen",
            valid_to=TODAY - dt.timedelta(days=1),
            contact_paths=[path("Ansökan om boendestöd")],
        ),
        changed(
            "al-boende",
            ORG_ALVESTA,
            "Alvestas boendestöd",
            kommunkoder=["0764"],
            contact_paths=[path("Ansökan om boendestöd"), path("Alvestas egen orsak")],
        ),
    )


# (reason, unit) pairs and channels expected for Växjö, in Swedish order of the reasons.
EXPECTED_REASONS = [
    "Ansökan om boendestöd",
    "Rådgivning",
    "Z-läkemedel, frågor om",
    "Återfallsprevention",
    "Äldre med beroende",
]


def h2(html: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", html)


class TestHtml:
    async def test_lists_the_members_contactable_units_grouped_by_reason(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed_two_members(db)

        r = await client.get(f"/v1/overview/{ORG_VAXJO}", headers=auth())

        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert "content-disposition" not in r.headers
        html = r.text
        assert "Växjö kommun (212000-0647)" in html
        assert f"Genererad {TODAY.isoformat()}" in html
        # Swedish order, case and whitespace ignored in grouping ("  rådgivning " = "Rådgivning").
        assert h2(html) == EXPECTED_REASONS
        assert "Socialtjänstens mottagning vuxna" in html
        assert "Boendestödet" in html
        assert "tillfälligt stängd" in html
        assert "Stängt v. 30, ring växeln." in html
        for absent in ("Den nedlagda", "Den upphörda", "Alvesta", "Alvestas egen orsak"):
            assert absent not in html.replace("Alvesta, Växjö", "")
        assert "0470-41 00 00" in html
        assert "070-123 45 67" in html
        assert "+46470410000" not in html
        assert "Box 1222, 351 12 Växjö" in html
        assert "Inkorg i vårdkedjan" in html
        assert "Mån–Fre 08:00–16:30" in html
        assert "Alvesta, Växjö" in html  # kommuner by name
        assert '<p class="kind">Socialtjänstens mottagning</p>' in html  # kind labels
        assert '<p class="kind">Boendestöd</p>' in html
        assert f"ej granskad sedan {to_local(LONG_AGO).date().isoformat()}".capitalize() in html
        assert "&lt;script&gt;" in html  # autoescaped
        assert "<script>" not in html

    async def test_rådgivning_lists_both_units_under_one_heading(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed_two_members(db)
        html = (await client.get(f"/v1/overview/{ORG_VAXJO}", headers=auth())).text
        section = html.split("<h2>Rådgivning</h2>")[1].split("<h2>")[0]
        assert "Socialtjänstens mottagning vuxna" in section
        assert section.index("Boendestödet") < section.index("Socialtjänstens")

    async def test_any_member_can_be_printed(self, client: httpx.AsyncClient, db: Database) -> None:
        await seed_two_members(db)
        r = await client.get(f"/v1/overview/{ORG_ALVESTA.replace('-', '')}", headers=auth())
        assert r.status_code == 200, r.text
        assert h2(r.text) == ["Alvestas egen orsak", "Ansökan om boendestöd"]
        assert "Socialtjänstens mottagning" not in r.text
        assert f"{ORG_ALVESTA} ({ORG_ALVESTA})" in r.text  # other members: by orgnr only


class TestPdf:
    async def test_pdf_download(self, client: httpx.AsyncClient, db: Database) -> None:
        await seed_two_members(db)

        r = await client.get(f"/v1/overview/{ORG_VAXJO}", params={"format": "pdf"}, headers=auth())

        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"] == (
            f'attachment; filename="kontaktvagar-{ORG_VAXJO}.pdf"'
        )
        assert r.content.startswith(b"%PDF")
        n = pages(r.content)
        assert n >= 1
        text = pdf_text(r.content)
        for expected in ["Återfallsprevention", "Äldre med beroende", "Boendestödet", "Växjö"]:
            assert expected in text
        assert "Telefon: 0470-41 00 00 (vardagar 8–10)" in text
        assert "Boendestödet – tillfälligt stängd" in text
        assert f"Sida 1 av {n}" in text
        assert f"Sida {n} av {n}" in text
        assert "Den nedlagda" not in text

    async def test_many_units_span_pages_numbered_n_of_m(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed(
            db,
            *(
                changed(
                    f"vx-{i:02d}",
                    ORG_VAXJO,
                    f"Mottagning {i:02d} för vuxna i Växjö",
                    mission="Tar emot och utreder. " * 8,
                    contact_paths=[
                        path(f"Orsak {i % 4}"),
                        path("Rådgivning", "phone", phone="+46470410000"),
                    ],
                    opening_hours=WEEKDAYS,
                )
                for i in range(40)
            ),
        )
        r = await client.get(f"/v1/overview/{ORG_VAXJO}", params={"format": "pdf"}, headers=auth())
        n = pages(r.content)
        assert n > 1
        text = pdf_text(r.content)
        assert f"Sida 2 av {n}" in text
        assert text.count("Mottagning 07 för vuxna i Växjö") == 2  # under two reasons


class TestCsv:
    async def test_one_row_per_reason_unit_and_channel(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await seed_two_members(db)

        r = await client.get(f"/v1/overview/{ORG_VAXJO}", params={"format": "csv"}, headers=auth())

        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == (
            f'attachment; filename="kontaktvagar-{ORG_VAXJO}.csv"'
        )
        assert r.content.startswith(b"\xef\xbb\xbf")  # BOM for Excel
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert [(row[0], row[1], row[3]) for row in rows[1:]] == [
            ("Ansökan om boendestöd", "Socialtjänstens mottagning vuxna", "Vårdkedjan"),
            ("Rådgivning", "Boendestödet (tillfälligt stängd)", "Telefon"),
            ("Rådgivning", "Socialtjänstens mottagning vuxna", "Telefon"),
            ("Z-läkemedel, frågor om", "Boendestödet (tillfälligt stängd)", "Säker e-post"),
            (
                "Återfallsprevention",
                "Socialtjänstens mottagning vuxna",
                "Funktionsbrevlåda (e-post)",
            ),
            ("Äldre med beroende", "Boendestödet (tillfälligt stängd)", "Postadress"),
        ]
        by_unit = {(row[0], row[1]): row for row in rows[1:]}
        mottagning = by_unit[("Rådgivning", "Socialtjänstens mottagning vuxna")]
        assert mottagning[2] == "Växjö kommun"
        assert mottagning[4] == "0470-41 00 00 (vardagar 8–10)"
        assert mottagning[5] == "Alvesta, Växjö"
        assert mottagning[6].startswith("Mån–Fre 08:00–16:30")


class TestRefusals:
    async def test_unknown_member_is_404(self, client: httpx.AsyncClient, db: Database) -> None:
        await seed_two_members(db)
        r = await client.get(f"/v1/overview/{ORG_REGION}", headers=auth())
        assert r.status_code == 404
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["type"] == PROBLEM_BASE + "member-not-in-replica"

    @pytest.mark.parametrize("orgnr", ["123", "212000-0648", "abcdefghij"])
    async def test_invalid_orgnr_is_422(self, client: httpx.AsyncClient, orgnr: str) -> None:
        r = await client.get(f"/v1/overview/{orgnr}", headers=auth())
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["errors"][0]["field"] == "orgnr"
        assert orgnr not in str(r.json()["errors"])

    async def test_unknown_format_is_422(self, client: httpx.AsyncClient) -> None:
        r = await client.get(f"/v1/overview/{ORG_VAXJO}", params={"format": "docx"}, headers=auth())
        assert r.status_code == 422

    async def test_no_token_is_401_and_scope_is_needed(self, client: httpx.AsyncClient) -> None:
        r = await client.get(f"/v1/overview/{ORG_VAXJO}")
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM_JSON
        r = await client.get(f"/v1/overview/{ORG_VAXJO}", headers=auth(scopes=["directory:write"]))
        assert r.status_code == 403


class TestBuildingBlocks:
    """The overview's pieces on their own (no database)."""

    @pytest.mark.parametrize(
        ("e164", "national"),
        [
            ("+46470410000", "0470-41 00 00"),
            ("+46701234567", "070-123 45 67"),
            ("+46812345678", "08-123 456 78"),
            ("+4681234567", "08-123 45 67"),
            ("+46317654321", "031-765 43 21"),
            ("+46101234567", "010-123 45 67"),
            ("+4620123456", "020-12 34 56"),
            ("+46771123456", "0771-12 34 56"),
            ("11414", "114 14"),
            ("1177", "1177"),
            ("+4512345678", "+4512345678"),
        ],
    )
    def test_phone_in_national_format(self, e164: str, national: str) -> None:
        assert format_phone_national(e164) == national

    def test_swedish_order(self) -> None:
        words = ["Öga", "ärende", "Zebra", "Ålder", "apa", "Éclair", "Ärende b", "Beta", "ängel"]
        assert sorted(words, key=swedish_sort_key) == [
            "apa",
            "Beta",
            "Éclair",
            "Zebra",
            "Ålder",
            "ängel",
            "ärende",
            "Ärende b",
            "Öga",
        ]

    def test_pdf_survives_text_outside_latin_1(self) -> None:
        assert pdf_safe("Łódź – “citat” ≥ 3 漢\x07") == "Lódz – “citat” >= 3 ? "

        def unit(name: str, n: int) -> ReplicaUnit:
            return ReplicaUnit(
                unit_id=name,
                owner_orgnr=ORG_VAXJO,
                name=name,
                kind="boendestod",
                mission="Åtgärder för äldre och öppenvård",
                kommunkoder=["0780"],
                contact_paths=[path(f"Orsak {i} åäö 漢字 Łódź") for i in range(n)],
                opening_hours=None,
                status="active",
                version=1,
            )

        small = build_overview([unit("Åbo", 1)], ORG_VAXJO, "Växjö kommun", TODAY)
        large = build_overview([unit("Åbo", 30)], ORG_VAXJO, "Växjö kommun", TODAY)
        small_pdf, large_pdf = render_pdf(small), render_pdf(large)
        assert small_pdf.startswith(b"%PDF")
        assert pages(large_pdf) > pages(small_pdf)
        assert "Orsak 0 åäö ?? Lódz" in pdf_text(small_pdf)


def pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def pdf_text(pdf: bytes) -> str:
    """A simple text extraction: the strings shown by each text object of every content
    stream, decoded from the core fonts' WinAnsi (cp1252), one text object a line."""
    lines = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue  # not a compressed content stream
        for block in re.findall(rb"\bBT\b(.*?)\bET\b", content, re.DOTALL):
            parts = re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", block)
            if parts:
                shown = b"".join(re.sub(rb"\\(.)", rb"\1", p) for p in parts)
                lines.append(shown.decode("cp1252"))
    return "\n".join(lines)

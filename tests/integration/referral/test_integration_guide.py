"""The integration guide's worked requests work as written: `docs/integration/
fhir-first-referral.md` run step by step against two members' real services, through the
region's and the kommun's FHIR facades and their consent services."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from services.fhir.app import create_fhir_app
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.guide import run, steps_of
from tests.integration.consent.helpers import new_person

from .conftest import CONSENT_RW, REGION_BEROENDE, RW, VAXJO_SOC, Member, Pair, auth

GUIDE = Path(__file__).parents[3] / "docs" / "integration" / "fhir-first-referral.md"


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def facade(member: Member) -> httpx.ASGITransport:
    app = create_fhir_app(
        member=member.orgnr,
        transports={
            "referral": httpx.ASGITransport(app=member.referral_app),
            "consent": httpx.ASGITransport(app=member.consent_app),
        },
    )
    return httpx.ASGITransport(app=app)


async def test_the_first_referral_through_fhir_works_as_written(members: Pair) -> None:
    hosts = {
        "region-fhir": facade(members.region),
        "kommun-fhir": facade(members.vaxjo),
        "region-consent": httpx.ASGITransport(app=members.region.consent_app),
        "kommun-consent": httpx.ASGITransport(app=members.vaxjo.consent_app),
    }

    async def send(
        method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> httpx.Response:
        transport = hosts[urlsplit(url).hostname or ""]
        async with httpx.AsyncClient(transport=transport) as c:
            return await c.request(method, url, headers=headers, content=body)

    today = dt.date.today()
    values = {
        "region_fhir": "http://region-fhir/fhir/R4",
        "kommun_fhir": "http://kommun-fhir/fhir/R4",
        "region_consent": "http://region-consent",
        "kommun_consent": "http://kommun-consent",
        "region_token": token(auth(ORG_REGION, REGION_BEROENDE, [*CONSENT_RW, *RW])),
        "kommun_token": token(auth(ORG_VAXJO, VAXJO_SOC, ["consent:read", *RW])),
        "region_orgnr": ORG_REGION,
        "kommun_orgnr": ORG_VAXJO,
        "region_unit": REGION_BEROENDE,
        "kommun_unit": VAXJO_SOC,
        "person": new_person(),
        "today": today.isoformat(),
        "in_90_days": (today + dt.timedelta(days=90)).isoformat(),
    }
    kept = await run(GUIDE.read_text(encoding="utf-8"), send, values)
    assert kept["task_id"]
    assert kept["consent_id"]
    # Every step of the guide ran (the runner found them all).
    assert len(steps_of(GUIDE.read_text(encoding="utf-8"))) == 10

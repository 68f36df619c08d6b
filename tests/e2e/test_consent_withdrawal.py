"""Issue 4's done-when over the real broker, every process separate: Växjö kommun's case
system records a written SIP consent naming Region Kronoberg and Alvesta kommun, both get
a copy and the region's receive-time check says "allowed"; Växjö withdraws it, both other
members are told, and the region's check says "denied". Runs on SQLite and, when
reachable, on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import SERVICES
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.processes import free_port
from tests.conftest import (
    ORG_ALVESTA,
    ORG_REGION,
    ORG_VAXJO,
    DatabaseFactory,
    broker_client_env,
)
from tests.helpers.harness import eventually
from vardkedja.federation import Federation, Member

pytestmark = pytest.mark.e2e

MEMBERS = (
    (ORG_VAXJO, "Växjö kommun", "kommun"),
    (ORG_REGION, "Region Kronoberg", "region"),
    (ORG_ALVESTA, "Alvesta kommun", "kommun"),
)
PERSON = "19121212-1212"


def _member(orgnr: str, name: str, kind: str) -> Member:
    # Only the consent service runs: its port is port_base + its offset.
    return Member(orgnr, name, kind, free_port() - SERVICES.index("consent"))


@pytest.fixture
async def federation(
    broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    members = [_member(*m) for m in MEMBERS]
    urls = {}
    if databases.backend == "postgres":
        for m in members:
            urls[(m.orgnr, "consent")] = await databases.new()
    fed = Federation(
        members=members,
        services=["consent"],
        data_dir=tmp_path / "var",
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=20,
        broker_env=broker_client_env(broker.bootstrap),
        database_url_for=urls,
        extra_env={
            "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000",
            "VK_CONSENT__EXPIRY_CHECK_INTERVAL_S": "3600",
        },
    )
    try:
        await asyncio.to_thread(fed.start)
        await fed.wait_ready(timeout=120)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


def _auth(org: str, *scopes: str) -> dict[str, str]:
    token = mint_token(sub="e2e-handlaggare", org=org, unit="mottagning", scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


def _url(member: Member, path: str) -> str:
    return f"http://127.0.0.1:{member.port('consent')}{path}"


async def test_a_withdrawal_reaches_both_other_members(federation: Federation) -> None:
    vaxjo, region, alvesta = federation.members
    today = dt.datetime.now(dt.UTC).date()
    consent = {
        "person": {"personnummer": PERSON},
        "form": "written",
        "signed_form_reference": "Treserva dok 2026-4711",
        "purposes": ["sip"],
        "parties": [{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}, {"orgnr": ORG_ALVESTA}],
        "categories": ["needs_summary", "plan"],
        "valid_from": today.isoformat(),
        "valid_to": (today + dt.timedelta(days=180)).isoformat(),
        "person_informed": True,
    }
    receive_check = {
        "person": {"personnummer": PERSON},
        "sender": {"orgnr": ORG_VAXJO},
        "recipient": {"orgnr": ORG_REGION},
        "purpose": "sip",
        "categories": ["plan"],
    }
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(
            _url(vaxjo, "/v1/consents"), json=consent, headers=_auth(ORG_VAXJO, "consent:write")
        )
        assert created.status_code == 201, created.text
        consent_id = created.json()["id"]

        async def copy_at(member: Member, status: str) -> bool:
            r = await client.get(
                _url(member, f"/v1/consent-copies/{consent_id}"),
                headers=_auth(member.orgnr, "consent:read"),
            )
            if r.status_code == 404:
                return False
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return bool(body["status"] == status)

        for member in (region, alvesta):
            await eventually(
                lambda m=member: copy_at(m, "active"), within=60, what=f"a copy at {member.name}"
            )
        allowed = await client.post(
            _url(region, "/v1/decisions"),
            json=receive_check,
            headers=_auth(ORG_REGION, "consent:read"),
        )
        assert allowed.json()["verdict"] == "allowed", allowed.text
        assert allowed.json()["basis"]["consent_id"] == consent_id

        withdrawn = await client.post(
            _url(vaxjo, f"/v1/consents/{consent_id}/withdraw"),
            json={"reason": "Personen återkallar samtycket.", "withdrawn_by": {"kind": "person"}},
            headers=_auth(ORG_VAXJO, "consent:write"),
        )
        assert withdrawn.status_code == 200, withdrawn.text
        # Effective at once at the recording member.
        own = await client.post(
            _url(vaxjo, "/v1/decisions"),
            json=receive_check,
            headers=_auth(ORG_VAXJO, "consent:read"),
        )
        assert own.json()["verdict"] == "denied"

        for member in (region, alvesta):
            await eventually(
                lambda m=member: copy_at(m, "withdrawn"),
                within=60,
                what=f"the withdrawal at {member.name}",
            )
        # Why it is denied is told only to a caller entitled to the person's consents.
        denied = await client.post(
            _url(region, "/v1/decisions"),
            json=receive_check,
            headers=_auth(ORG_REGION, "consent:read", "consent:person"),
        )
        assert denied.json()["verdict"] == "denied"
        assert denied.json()["reasons"][0]["code"] == "consent_withdrawn"

        # The person can get the audit extract at Växjö; the region's decisions are in its own.
        extract = await client.post(
            _url(region, "/v1/persons/audit-extract"),
            json={"personnummer": PERSON},
            headers=_auth(ORG_REGION, "consent:person"),
        )
        entries = extract.json()["entries"]
        decisions = [e["outcome"] for e in entries if e["action"] == "consent.decision"]
        assert decisions == ["allowed", "denied"]
        assert any(e["action"] == "consent_copy.read" for e in entries)

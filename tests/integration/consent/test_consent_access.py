"""Who may see what: tenant isolation and scopes on every endpoint, an audit record for
every read and decision, audit fail-closed, and the person search that never puts a
personnummer in a URL or a log line."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.consent.models import Block, Consent, LegalBasisUse, Refusal
from shared.data.db import Database
from shared.web.errors import PROBLEM_BASE, PROBLEM_JSON
from shared.web.observability import JsonFormatter, configure_logging
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.integration.consent.helpers import (
    OUTBOX,
    audit_of,
    auth,
    build,
    consent_body,
    count,
    question,
    today,
)

ID = "00000000-0000-0000-0000-000000000001"


def routes(pnr: str) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, scope needed) of every operation."""
    person = {"personnummer": pnr}
    return [
        ("POST", "/v1/consents", consent_body(pnr), "consent:write"),
        ("GET", f"/v1/consents/{ID}", None, "consent:read"),
        ("POST", f"/v1/consents/{ID}/withdraw", {"reason": "x"}, "consent:write"),
        ("GET", f"/v1/consent-copies/{ID}", None, "consent:read"),
        (
            "POST",
            "/v1/refusals",
            {
                "person": person,
                "refused_on": today().isoformat(),
                "parties": [{"orgnr": ORG_REGION}],
            },
            "consent:write",
        ),
        ("GET", f"/v1/refusals/{ID}", None, "consent:read"),
        ("POST", f"/v1/refusals/{ID}/revoke", {"reason": "x"}, "consent:write"),
        (
            "POST",
            "/v1/blocks",
            {"person": person, "blocked": {"orgnr": ORG_REGION}},
            "consent:write",
        ),
        ("GET", f"/v1/blocks/{ID}", None, "consent:read"),
        (
            "POST",
            f"/v1/blocks/{ID}/lifts",
            {"ends_at": "2099-01-01T00:00:00Z", "reason": "x"},
            "consent:write",
        ),
        ("POST", f"/v1/blocks/{ID}/remove", None, "consent:write"),
        ("POST", "/v1/decisions", question(pnr), "consent:read"),
        ("GET", "/v1/legal-bases", None, "consent:read"),
        ("POST", "/v1/persons/search", person, "consent:person"),
        ("POST", "/v1/persons/audit-extract", person, "consent:person"),
    ]


async def stored(db: Database) -> int:
    total = 0
    for what in (Consent, Refusal, Block, LegalBasisUse, OUTBOX):
        total += await count(db, what)
    return total


class TestTenantIsolation:
    async def test_every_operation_refuses_another_members_token(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        for method, path, body, _scope in routes(person):
            response = await client.request(method, path, json=body, headers=auth(org=ORG_REGION))
            assert response.status_code == 403, (method, path, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
        assert await stored(db) == 0

    async def test_every_operation_needs_its_scope(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        for method, path, body, scope in routes(person):
            others = [s for s in ("consent:read", "consent:write", "consent:person") if s != scope]
            response = await client.request(method, path, json=body, headers=auth(scopes=others))
            assert response.status_code == 403, (method, path)
            assert scope in response.json()["detail"]
            anonymous = await client.request(method, path, json=body)
            assert anonymous.status_code == 401, (method, path)
        assert await stored(db) == 0

    async def test_another_member_cannot_read_this_members_consent(
        self, client: httpx.AsyncClient, db_url: str, person: str
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        # The region's own instance (here on the same database) does not show it either.
        region = build(db_url, ORG_REGION)
        transport = httpx.ASGITransport(app=region)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
            response = await other.get(
                f"/v1/consents/{created['id']}", headers=auth(org=ORG_REGION)
            )
            assert response.status_code == 404
            assert response.json()["type"] == PROBLEM_BASE + "consent-not-found"
            search = await other.post(
                "/v1/persons/search", json={"personnummer": person}, headers=auth(org=ORG_REGION)
            )
            assert search.json()["consents"] == []
        await region.state.ctx.db.dispose()


class TestAuditOfEveryAccess:
    async def test_every_read_and_decision_is_audited_with_who_and_which_unit(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        headers = auth(sub="handlaggare-9", unit="vuxenenheten")
        consent = (
            await client.post("/v1/consents", json=consent_body(person), headers=headers)
        ).json()
        refusal = (
            await client.post(
                "/v1/refusals",
                json={
                    "person": {"personnummer": person},
                    "refused_on": today().isoformat(),
                    "parties": [{"orgnr": ORG_REGION}],
                    "purposes": ["kontaktbegaran"],
                },
                headers=headers,
            )
        ).json()
        block = (
            await client.post(
                "/v1/blocks",
                json={
                    "person": {"personnummer": person},
                    "blocked": {"orgnr": ORG_REGION, "unit_id": "akutpsyk"},
                },
                headers=headers,
            )
        ).json()
        for path in (
            f"/v1/consents/{consent['id']}",
            f"/v1/refusals/{refusal['id']}",
            f"/v1/blocks/{block['id']}",
        ):
            assert (await client.get(path, headers=headers)).status_code == 200
        await client.post("/v1/decisions", json=question(person), headers=headers)
        await client.post("/v1/persons/search", json={"personnummer": person}, headers=headers)
        await client.post(
            "/v1/persons/audit-extract", json={"personnummer": person}, headers=headers
        )

        records = await audit_of(db, person)
        assert [r.action for r in records] == [
            "consent.record",
            "refusal.record",
            "block.record",
            "consent.read",
            "refusal.read",
            "block.read",
            "consent.decision",
            "person.search",
            "person.audit_extract",
        ]
        assert {(r.actor_sub, r.actor_unit, r.actor_org, r.service) for r in records} == {
            ("handlaggare-9", "vuxenenheten", ORG_VAXJO, "consent")
        }


class TestAuditFailClosed:
    async def test_no_access_and_nothing_stored_when_the_audit_cannot_be_written(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        consent = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        before = await stored(db)
        async with BrokenAudit(db):
            for method, path, body in (
                ("GET", f"/v1/consents/{consent['id']}", None),
                ("POST", "/v1/consents", consent_body(person, purposes=["vardkedjeremiss"])),
                ("POST", f"/v1/consents/{consent['id']}/withdraw", {"reason": "x"}),
                ("POST", "/v1/decisions", question(person)),
                (
                    "POST",
                    "/v1/decisions",
                    question(
                        person,
                        legal_basis={
                            "basis": "nodsituation",
                            "justification": "Akut.",
                        },
                        purpose="vardkedjeremiss",
                    ),
                ),
                ("POST", "/v1/persons/search", {"personnummer": person}),
            ):
                response = await client.request(method, path, json=body, headers=auth())
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["type"] == PROBLEM_BASE + "audit-unavailable"
                assert person not in response.text
        assert await stored(db) == before
        still = await client.get(f"/v1/consents/{consent['id']}", headers=auth())
        assert still.json()["status"] == "active"


class BrokenAudit:
    """Renames the audit table for the duration (works on SQLite and PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __aenter__(self) -> None:
        async with self.db.transaction() as session:
            await session.execute(text("ALTER TABLE audit_record RENAME TO audit_record_x"))

    async def __aexit__(self, *exc: object) -> None:
        async with self.db.transaction() as session:
            await session.execute(text("ALTER TABLE audit_record_x RENAME TO audit_record"))


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Any:
    """The production logging set-up at its most talkative (VK_LOG_LEVEL=DEBUG), captured."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(service="consent", member=ORG_VAXJO, level="DEBUG")
    root.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("aiokafka", "uvicorn.access", "sqlalchemy.engine", "aiosqlite"):
            logging.getLogger(name).setLevel(logging.NOTSET)


class TestPersonSearch:
    async def test_everything_held_with_its_history_and_no_personnummer_in_urls_or_logs(
        self,
        client: httpx.AsyncClient,
        person: str,
        caplog: pytest.LogCaptureFixture,
        debug_logging: Any,
    ) -> None:
        urls: list[str] = []

        async def remember(request: httpx.Request) -> None:
            urls.append(str(request.url))

        client.event_hooks["request"].append(remember)
        consent = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        await client.post(
            f"/v1/consents/{consent['id']}/withdraw", json={"reason": "Återkallat."}, headers=auth()
        )
        await client.post(
            "/v1/refusals",
            json={
                "person": {"personnummer": person},
                "refused_on": today().isoformat(),
                "parties": [{"orgnr": ORG_REGION}],
            },
            headers=auth(),
        )
        block = (
            await client.post(
                "/v1/blocks",
                json={"person": {"personnummer": person}, "blocked": {"orgnr": ORG_REGION}},
                headers=auth(),
            )
        ).json()
        ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        await client.post(
            f"/v1/blocks/{block['id']}/lifts",
            json={"ends_at": ends, "reason": "SIP-möte."},
            headers=auth(),
        )
        await client.post("/v1/decisions", json=question(person), headers=auth())
        # A search in the 10-digit form with a hyphen finds the same person.
        short = f"{person[2:8]}-{person[8:]}"
        response = await client.post(
            "/v1/persons/search", json={"personnummer": short}, headers=auth()
        )

        assert response.status_code == 200, response.text
        found = response.json()
        assert [c["status"] for c in found["consents"]] == ["withdrawn"]
        assert len(found["refusals"]) == 1
        assert [len(b["lifts"]) for b in found["blocks"]] == [1]
        assert [(h["subject_type"], h["action"]) for h in found["history"]] == [
            ("consent", "recorded"),
            ("consent", "withdrawn"),
            ("refusal", "recorded"),
            ("block", "recorded"),
            ("block", "lifted"),
        ]
        assert all(person not in str(h["details"]) for h in found["history"])

        forms = {person, person[2:], short, f"{person[:8]}-{person[8:]}"}
        assert urls
        assert all(not any(f in u for f in forms) for u in urls)
        assert any(r.name == "vardkedja.http" for r in caplog.records), "requests were logged"
        formatter = JsonFormatter("consent", ORG_VAXJO)
        for record in caplog.records:
            line = formatter.format(record) + repr(record.__dict__)
            assert not any(f in line for f in forms), line

    async def test_an_invalid_personnummer_is_refused_without_echoing_it(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/v1/persons/search", json={"personnummer": "19121212-1213"}, headers=auth()
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "personnummer"
        assert "1213" not in response.text

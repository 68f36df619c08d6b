"""The audit log: every access to personal data is recorded, or the access fails.

Audit writing is broken on purpose by renaming ``audit_record`` (``ALTER TABLE ... RENAME``
works on SQLite and PostgreSQL alike); the access must then fail and take every other write
of its transaction with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select, text

from shared.data import migrations
from shared.data.db import Database, utcnow
from shared.identity.audit import Auditor, AuditUnavailable, Outcome, refused_resource
from shared.identity.auth import Caller, CurrentCaller, ensure_unit, mint_token, require_scopes
from shared.identity.identifiers import Personnummer
from shared.service import ServiceSpec, load_spec
from shared.web.app import Ctx, DbSession, create_app
from shared.web.errors import PROBLEM_BASE, PROBLEM_JSON, Forbidden, NotFound, ServiceUnavailable
from shared.web.observability import request_id_var
from tests.conftest import ORG_VAXJO, make_settings

SPEC = load_spec("consent")
AUDIT = SPEC.infra.audit
IDEM = SPEC.infra.idempotency
PERSON = "191212121212"
CALLER = Caller(
    sub="handlaggare-7",
    org=ORG_VAXJO,
    unit="unit-42",
    scopes=frozenset({"consent:read"}),
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    await migrations.upgrade(SPEC.migrations_dir, db_url)
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def auditor() -> Auditor:
    return Auditor("consent", SPEC.infra)


async def break_audit(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("ALTER TABLE audit_record RENAME TO audit_record_x"))


async def repair_audit(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("ALTER TABLE audit_record_x RENAME TO audit_record"))


async def audit_rows(db: Database) -> list[Any]:
    async with db.transaction() as session:
        return list((await session.execute(select(AUDIT).order_by(AUDIT.c.id))).all())


async def other_rows(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(IDEM))).scalar_one())


def other_write() -> Any:
    """An unrelated write standing for the access's own effect."""
    return IDEM.insert().values(
        caller=f"{ORG_VAXJO}:tester",
        key=uuid.uuid4().hex,
        request_hash="0" * 64,
        status_code=200,
        response_body=b"{}",
        response_headers={},
        created_at=utcnow(),
    )


class TestRecordAccess:
    async def test_writes_every_field(self, db: Database, auditor: Auditor) -> None:
        token = request_id_var.set("req-abc-123")
        try:
            before = dt.datetime.now(dt.UTC)
            async with db.transaction() as session:
                await auditor.record_access(
                    session,
                    CALLER,
                    action="consent.read",
                    person_id=PERSON,
                    purpose="samordnad_vardplanering",
                    resource_type="consent",
                    resource_id="c-1",
                )
            after = dt.datetime.now(dt.UTC)
        finally:
            request_id_var.reset(token)

        [row] = await audit_rows(db)
        assert row.service == "consent"
        assert row.actor_sub == "handlaggare-7"
        assert row.actor_org == ORG_VAXJO
        assert row.actor_unit == "unit-42"
        assert row.action == "consent.read"
        assert row.person_id == PERSON
        assert row.purpose == "samordnad_vardplanering"
        assert row.outcome == "allowed"
        assert row.resource_type == "consent"
        assert row.resource_id == "c-1"
        assert row.request_id == "req-abc-123"
        assert row.occurred_at.utcoffset() == dt.timedelta(0)
        assert before <= row.occurred_at <= after

    async def test_optional_fields_and_outcome(self, db: Database, auditor: Auditor) -> None:
        assert request_id_var.get() is None
        async with db.transaction() as session:
            await auditor.record_access(
                session,
                Caller(sub="system", org=ORG_VAXJO),
                action="person.search",
                person_id=None,
                outcome=Outcome.NOT_FOUND,
            )
        [row] = await audit_rows(db)
        assert (row.actor_unit, row.person_id, row.purpose, row.request_id) == (
            None,
            None,
            None,
            None,
        )
        assert row.outcome == "not_found"

    async def test_rolls_back_with_its_transaction(self, db: Database, auditor: Auditor) -> None:
        # The record belongs to the access: if the access's transaction fails, so does it.
        # Auditing first matters: on SQLite a SAVEPOINT opening the transaction would commit.
        async def access_then_fail() -> None:
            async with db.transaction() as session:
                await auditor.record_access(
                    session, CALLER, action="consent.read", person_id=PERSON
                )
                raise RuntimeError("the access failed after auditing")

        with pytest.raises(RuntimeError):
            await access_then_fail()
        assert await audit_rows(db) == []

    async def test_fail_closed(self, db: Database, auditor: Auditor) -> None:
        await break_audit(db)

        async def write_then_audit() -> None:
            async with db.transaction() as session:
                await session.execute(other_write())
                await auditor.record_access(
                    session, CALLER, action="consent.read", person_id=PERSON
                )

        with pytest.raises(AuditUnavailable) as info:
            await write_then_audit()
        assert isinstance(info.value, ServiceUnavailable)
        assert info.value.status == 503
        assert PERSON not in str(info.value)
        # Nothing of the access is stored.
        assert await other_rows(db) == 0
        await repair_audit(db)
        assert await audit_rows(db) == []

    async def test_works_again_once_repaired(self, db: Database, auditor: Auditor) -> None:
        await break_audit(db)
        with pytest.raises(AuditUnavailable):
            async with db.transaction() as session:
                await auditor.record_access(
                    session, CALLER, action="consent.read", person_id=PERSON
                )
        await repair_audit(db)
        async with db.transaction() as session:
            await session.execute(other_write())
            await auditor.record_access(session, CALLER, action="consent.read", person_id=PERSON)
        assert await other_rows(db) == 1
        assert len(await audit_rows(db)) == 1


class TestRecordDenied:
    async def test_survives_the_requests_rollback(self, db: Database, auditor: Auditor) -> None:
        async def refused_request() -> None:
            async with db.transaction() as session:
                await session.execute(select(IDEM))  # the request read, then was refused
                await auditor.record_denied(
                    db, CALLER, action="consent.read", person_id=PERSON, purpose="nyfikenhet"
                )
                raise Forbidden("no sharing decision")

        with pytest.raises(Forbidden):
            await refused_request()
        [row] = await audit_rows(db)
        assert row.outcome == "denied"
        assert row.action == "consent.read"
        assert row.person_id == PERSON
        assert row.purpose == "nyfikenhet"
        assert row.actor_sub == CALLER.sub

    async def test_fail_closed(self, db: Database, auditor: Auditor) -> None:
        await break_audit(db)
        with pytest.raises(AuditUnavailable):
            await auditor.record_denied(db, CALLER, action="consent.read", person_id=PERSON)
        await repair_audit(db)
        assert await audit_rows(db) == []


# --- over HTTP: a route of a service built with create_app ----------------------------------


class Lookup(BaseModel):
    personnummer: Personnummer


router = APIRouter()


@router.post("/v1/test-personal")
async def read_personal(
    body: Lookup, caller: CurrentCaller, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    await session.execute(other_write())
    await ctx.auditor.record_access(
        session, caller, action="person.search", person_id=body.personnummer, purpose="test"
    )
    return {"status": "read"}


@router.get("/v1/test-cases/{case_id}", name="test.case.read")
async def read_case(
    case_id: str, caller: Annotated[Caller, Depends(require_scopes("consent:read"))]
) -> dict[str, str]:
    ensure_unit(caller, "unit-owner")
    if case_id == "missing":
        raise NotFound("no such case")
    return {"case": case_id}


@pytest.fixture
async def app(db: Database) -> AsyncIterator[FastAPI]:
    spec: ServiceSpec = dataclasses.replace(SPEC, routers=[router])
    application = create_app(spec, make_settings(service="consent", orgnr=ORG_VAXJO, db_url=db.url))
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c


def headers(
    scopes: tuple[str, ...] = ("consent:read",),
    unit: str | None = None,
    roles: tuple[str, ...] = (),
) -> dict[str, str]:
    token = mint_token(sub="tester", org=ORG_VAXJO, scopes=scopes, unit=unit, roles=roles)
    return {"Authorization": f"Bearer {token}", "X-Request-ID": "req-http-1"}


class TestAuditedRoute:
    async def test_audited_access_stores_both(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.post(
            "/v1/test-personal", json={"personnummer": "19121212-1212"}, headers=headers()
        )
        assert response.status_code == 200
        assert response.json() == {"status": "read"}
        assert await other_rows(db) == 1
        [row] = await audit_rows(db)
        assert (row.actor_sub, row.actor_org, row.action, row.person_id) == (
            "tester",
            ORG_VAXJO,
            "person.search",
            PERSON,
        )
        assert row.request_id == "req-http-1"
        assert row.outcome == "allowed"

    async def test_unauditable_access_fails_and_stores_nothing(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await break_audit(db)
        response = await client.post(
            "/v1/test-personal", json={"personnummer": "19121212-1212"}, headers=headers()
        )
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["type"] == PROBLEM_BASE + "audit-unavailable"
        assert body["status"] == 503
        assert "19121212" not in response.text
        assert await other_rows(db) == 0
        await repair_audit(db)
        assert await audit_rows(db) == []


def test_a_refused_resource_is_the_innermost_id_of_its_path() -> None:
    params = {"plan_id": "p-1", "action_id": "a-2"}
    assert refused_resource("/v1/plans/{plan_id}/actions/{action_id}/transitions", params) == (
        "actions",
        "a-2",
    )
    assert refused_resource("/v1/referrals", {}) == ("/v1/referrals", None)
    long_id = {"subscription_id": "x" * 100}
    kind, rid = refused_resource("/v1/webhook-subscriptions/{subscription_id}", long_id)
    assert (kind, rid) == ("webhook-subscriptions", "x" * 64)


class TestRefusedRequests:
    """A refused request of a known caller is audited (ADR 0010), fail-closed."""

    async def test_another_units_case_is_refused_and_audited(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.get("/v1/test-cases/c-1", headers=headers(unit="unit-other"))
        assert response.status_code == 403
        [row] = await audit_rows(db)
        assert (row.actor_sub, row.actor_org, row.actor_unit) == (
            "tester",
            ORG_VAXJO,
            "unit-other",
        )
        assert (row.action, row.outcome) == ("test.case.read", "denied")
        assert (row.resource_type, row.resource_id) == ("test-cases", "c-1")
        assert row.person_id is None
        assert row.request_id == "req-http-1"

    async def test_a_missing_scope_is_audited_and_keeps_its_challenge(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.get(
            "/v1/test-cases/c-1", headers=headers(scopes=("directory:read",), unit="unit-owner")
        )
        assert response.status_code == 403
        assert "insufficient_scope" in response.headers["www-authenticate"]
        [row] = await audit_rows(db)
        assert row.outcome == "denied"

    async def test_what_cannot_be_found_is_audited_as_not_found(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.get("/v1/test-cases/missing", headers=headers(unit="unit-owner"))
        assert response.status_code == 404
        [row] = await audit_rows(db)
        assert (row.outcome, row.resource_id) == ("not_found", "missing")

    async def test_allowed_and_anonymous_requests_leave_no_refusal(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        assert (
            await client.get("/v1/test-cases/c-1", headers=headers(unit="unit-owner"))
        ).json() == {"case": "c-1"}
        # No token: nobody to record (counted in the request metrics instead).
        assert (await client.get("/v1/test-cases/c-1")).status_code == 401
        assert await audit_rows(db) == []

    async def test_an_unauditable_refusal_answers_503(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await break_audit(db)
        response = await client.get("/v1/test-cases/c-1", headers=headers(unit="unit-other"))
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == PROBLEM_BASE + "audit-unavailable"
        assert response.json()["instance"] == "/v1/test-cases/c-1"
        await repair_audit(db)
        assert await audit_rows(db) == []

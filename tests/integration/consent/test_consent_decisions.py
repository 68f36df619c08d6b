"""The decision API against a real database: the done-when scenario (a written SIP consent
covering Region Kronoberg and Växjö kommun gives "allowed" exactly within its scope and
time), refusals, blocks and lifts, legal bases, and an audit record for every decision."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from services.consent.models import LegalBasisUse
from shared.data.db import Database
from shared.web.errors import PROBLEM_JSON
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.integration.consent.helpers import (
    audit_of,
    auth,
    build,
    consent_body,
    count,
    new_person,
    question,
    today,
)

NOW = dt.datetime.now(dt.UTC)


async def ask(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    response = await client.post("/v1/decisions", json=body, headers=auth(**kw))
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


async def record(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/consents", json=body, headers=auth())
    assert response.status_code == 201, response.text
    consent_id: str = response.json()["id"]
    return consent_id


def at(days: int) -> str:
    return (NOW + dt.timedelta(days=days)).isoformat()


class TestWithinScopeAndTime:
    async def test_allowed_exactly_within_the_consent(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        consent_id = await record(client, consent_body(person))

        allowed = await ask(client, question(person))
        assert allowed["verdict"] == "allowed"
        assert allowed["allowed"] is True
        assert allowed["basis"] == {
            "kind": "consent",
            "consent_id": consent_id,
            "legal_basis": None,
            "legal_basis_use_id": None,
        }
        assert allowed["obligations"] == {
            "categories": ["needs_summary", "plan"],
            "valid_until": (today() + dt.timedelta(days=180)).isoformat(),
        }
        # The receive-time direction (the region shares back) is covered too.
        back = question(person, sender={"orgnr": ORG_REGION}, recipient={"orgnr": ORG_VAXJO})
        assert (await ask(client, back))["allowed"]

        outside = {
            "another purpose": question(person, purpose="vardkedjeremiss"),
            "another category": question(person, categories=["plan", "diagnoses"]),
            "another member": question(person, recipient={"orgnr": ORG_ALVESTA}),
            "after the end": question(person, at=at(181)),
            "before the start": question(person, at=at(-1)),
            "another person": question(new_person()),
        }
        codes = {}
        for name, body in outside.items():
            answer = await ask(client, body)
            assert answer["verdict"] == "denied", name
            assert answer["obligations"] is None
            assert answer["basis"]["kind"] == "none"
            codes[name] = answer["reasons"][0]["code"]
        assert codes == {
            "another purpose": "purpose_not_covered",
            "another category": "categories_not_covered",
            "another member": "party_not_covered",
            "after the end": "consent_expired",
            "before the start": "consent_not_yet_valid",
            "another person": "no_consent",
        }

        audit = await audit_of(db, person)
        decisions = [r for r in audit if r.action == "consent.decision"]
        assert len(decisions) == 7  # one per decision about this person
        assert [r.outcome for r in decisions] == ["allowed", "allowed", *["denied"] * 5]
        assert all(r.purpose for r in decisions)

    async def test_a_unit_party_covers_only_that_unit(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        await record(
            client,
            consent_body(
                person,
                parties=[{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION, "unit_id": "beroende"}],
            ),
        )
        unit = question(person, recipient={"orgnr": ORG_REGION, "unit_id": "beroende"})
        other = question(person, recipient={"orgnr": ORG_REGION, "unit_id": "psykos"})
        whole = question(person)
        assert (await ask(client, unit))["allowed"]
        assert not (await ask(client, other))["allowed"]
        assert not (await ask(client, whole))["allowed"]

    async def test_withdrawal_is_effective_at_once(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        consent_id = await record(client, consent_body(person))
        assert (await ask(client, question(person)))["allowed"]
        await client.post(
            f"/v1/consents/{consent_id}/withdraw", json={"reason": "Återkallat."}, headers=auth()
        )
        answer = await ask(client, question(person))
        assert answer["verdict"] == "denied"
        assert answer["reasons"][0]["code"] == "consent_withdrawn"

    async def test_protected_identity_never_shares_contact_details(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        body = consent_body(person, person={"personnummer": person, "protected_identity": True})
        await record(client, body)
        contact = question(person, categories=["contact_details"])
        answer = await ask(client, contact)
        assert answer["reasons"][0]["code"] == "protected_identity"
        assert (await ask(client, question(person)))["allowed"]


class TestRefusalsAndBlocks:
    async def test_a_refusal_answers_refused(self, client: httpx.AsyncClient, person: str) -> None:
        await client.post(
            "/v1/refusals",
            json={
                "person": {"personnummer": person},
                "refused_on": today().isoformat(),
                "parties": [{"orgnr": ORG_REGION}],
            },
            headers=auth(),
        )
        answer = await ask(client, question(person))
        assert answer["verdict"] == "refused"
        assert answer["allowed"] is False
        assert answer["reasons"][0]["code"] == "refused"

    async def test_a_block_denies_despite_consent_until_lifted(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        await record(client, consent_body(person))
        block = await client.post(
            "/v1/blocks",
            json={"person": {"personnummer": person}, "blocked": {"orgnr": ORG_REGION}},
            headers=auth(),
        )
        denied = await ask(client, question(person))
        assert denied["reasons"][0]["code"] == "blocked"

        await client.post(
            f"/v1/blocks/{block.json()['id']}/lifts",
            json={"ends_at": at(2), "reason": "Personen vill att underlaget skickas."},
            headers=auth(),
        )
        assert (await ask(client, question(person)))["allowed"]
        assert not (await ask(client, question(person, at=at(3))))["allowed"]


LVM = {"basis": "lvm_anmalan", "justification": "Anmälan enligt 6 § LVM efter akut intag."}
# Rules of the request's schema (the ground of an OSL basis among them), not of the decision.
IN_THE_SCHEMA = {"string_too_short", "missing", "not_applicable"}


class TestLegalBases:
    async def test_a_legal_basis_allows_without_consent_and_is_kept_with_its_justification(
        self, db_url: str, db: Database, person: str
    ) -> None:
        # The region reports to the kommun: ask the region's own consent service.
        region = build(db_url, ORG_REGION)
        transport = httpx.ASGITransport(app=region)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = question(
                person,
                sender={"orgnr": ORG_REGION, "unit_id": "beroende"},
                recipient={"orgnr": ORG_VAXJO},
                purpose="lvm_anmalan",
                categories=["needs_summary"],
                legal_basis=LVM,
            )
            answer = await ask(client, body, org=ORG_REGION)
        await region.state.ctx.db.dispose()
        assert answer["verdict"] == "allowed"
        assert answer["basis"]["kind"] == "legal_basis"
        assert answer["basis"]["legal_basis"] == "lvm_anmalan"
        assert answer["obligations"]["valid_until"] == NOW.date().isoformat()
        async with db.transaction() as session:
            [use] = (await session.execute(select(LegalBasisUse))).scalars().all()
        assert use.id == answer["basis"]["legal_basis_use_id"]
        assert use.justification == LVM["justification"]
        [audited] = await audit_of(db, person)
        assert (audited.resource_type, audited.resource_id) == ("legal_basis_use", use.id)

    @pytest.mark.parametrize(
        ("basis", "field", "rule"),
        [
            (
                {"basis": "lvm_anmalan", "justification": "x"},
                "legal_basis.basis",
                "purpose_not_covered",
            ),
            (
                {"basis": "osl_26_9", "justification": "Behövs för SIP."},
                "legal_basis.ground",
                "missing",
            ),
            (
                {"basis": "osl_26_9", "ground": "under_18", "justification": "Behövs."},
                "legal_basis.ground",
                "not_under_18",
            ),
            (
                {"basis": "osl_25_12", "ground": "persistent_misuse", "justification": "Behövs."},
                "legal_basis.basis",
                "wrong_direction",
            ),
            (
                {"basis": "nodsituation", "ground": "under_18", "justification": "Akut."},
                "legal_basis.ground",
                "not_applicable",
            ),
            (
                {"basis": "nodsituation", "justification": ""},
                "legal_basis.justification",
                "string_too_short",
            ),
        ],
    )
    async def test_a_basis_that_cannot_apply_is_refused_audited_and_not_kept(
        self,
        client: httpx.AsyncClient,
        db: Database,
        person: str,
        basis: dict[str, Any],
        field: str,
        rule: str,
    ) -> None:
        # Växjö (a kommun) sends to the region for a SIP; the person is an adult.
        response = await client.post(
            "/v1/decisions", json=question(person, legal_basis=basis), headers=auth()
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert (field, rule) in [(e["field"], e["rule"]) for e in response.json()["errors"]]
        assert await count(db, LegalBasisUse) == 0
        if rule in IN_THE_SCHEMA:  # refused before the service is reached: nothing read
            assert await audit_of(db, person) == []
        else:
            [denied] = await audit_of(db, person)
            assert (denied.action, denied.outcome) == ("consent.decision", "denied")

    async def test_osl_for_a_child_and_a_block_it_does_not_override(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        child = new_person(born=today() - dt.timedelta(days=365 * 15))
        body = question(
            child,
            legal_basis={
                "basis": "osl_26_9",
                "ground": "under_18",
                "justification": "Barnets vård.",
            },
        )
        assert (await ask(client, body))["allowed"]
        await client.post(
            "/v1/blocks",
            json={"person": {"personnummer": child}, "blocked": {"orgnr": ORG_REGION}},
            headers=auth(),
        )
        answer = await ask(client, body)
        assert answer["reasons"][0]["code"] == "blocked"
        assert await count(db, LegalBasisUse) == 2  # both uses are kept, with their verdicts

    async def test_the_table_of_legal_bases(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/legal-bases", headers=auth(scopes=["consent:read"]))
        table = {b["basis"]: b for b in response.json()}
        # A report under a duty to report covers its own kind only (issue 22).
        assert table["lvm_anmalan"]["purposes"] == ["lvm_anmalan"]
        assert table["osl_25_12"]["needs_ground"] is True
        assert table["nodsituation"]["overrides_block"] is True


class TestQuestionsThisMemberCannotAnswer:
    async def test_sharing_between_two_other_members(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        body = question(person, sender={"orgnr": ORG_ALVESTA})
        response = await client.post("/v1/decisions", json=body, headers=auth())
        assert response.status_code == 422
        assert response.json()["errors"][0]["rule"] == "own_member_not_involved"

    async def test_a_time_without_zone(self, client: httpx.AsyncClient, person: str) -> None:
        body = question(person, at="2026-12-01T10:00:00")
        response = await client.post("/v1/decisions", json=body, headers=auth())
        assert response.status_code == 422
        assert response.json()["errors"][0] == {
            "field": "at",
            "rule": "timezone_aware",
            "message": "Input should have timezone info",
        }


class TestDecisionCost:
    async def test_a_decision_is_a_few_indexed_lookups_however_many_consents_exist(
        self, client: httpx.AsyncClient, app: Any, db_url: str, person: str
    ) -> None:
        """Not a timing test: it counts the statements of one decision and, on SQLite, checks
        that each lookup searches an index instead of scanning the table."""
        for _ in range(30):
            await record(client, consent_body(new_person()))
        await record(client, consent_body(person))
        await client.post(
            "/v1/blocks",
            json={"person": {"personnummer": person}, "blocked": {"orgnr": ORG_ALVESTA}},
            headers=auth(),
        )
        statements: list[tuple[str, Any]] = []

        def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            statements.append((statement, params))

        engine = app.state.ctx.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", remember)
        try:
            assert (await ask(client, question(person)))["allowed"]
        finally:
            event.remove(engine, "before_cursor_execute", remember)

        selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
        # One statement reads the person's consents, copies, refusals, blocks and lifts.
        assert len(selects) == 1
        statement, params = selects[0]
        read = re.findall(r"(?:FROM|JOIN) (\w+)", statement)
        assert read == ["consent", "consent_copy", "refusal", "block", "block_lift"]
        writes = [s.split()[2] for s, _ in statements if s.lstrip().upper().startswith("INSERT")]
        assert writes == ["audit_record"]
        if db_url.startswith("sqlite"):
            async with app.state.ctx.db.engine.connect() as conn:
                plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                details = [str(row[-1]) for row in plan]
            searched = [d.split()[1] for d in details if d.startswith("SEARCH")]
            assert searched == read, details
            assert all("USING INDEX" in d for d in details if d.startswith("SEARCH")), details
            assert not [d for d in details if d.startswith("SCAN")], details

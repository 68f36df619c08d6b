"""Recording and withdrawing consents, refusals and blocks through the API, on SQLite and
PostgreSQL: what is stored, what is sent to the parties, and bad input refused with a
problem naming the field and rule while nothing is stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.consent.models import Block, ChangeLogEntry, Consent, Refusal
from shared.data.db import Database
from shared.messaging.events import topics
from shared.messaging.events.payloads import CONSENT_ENDED_V1, CONSENT_RECORDED_V1
from shared.web.errors import PROBLEM_BASE, PROBLEM_JSON
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import (
    OUTBOX,
    audit_of,
    auth,
    consent_body,
    count,
    today,
)


def problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug
    return body


def rules_of(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["rule"] for e in body["errors"]}


async def outbox_events(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, type, payload) of every outbox row, in order."""
    async with db.transaction() as session:
        rows = (await session.execute(select(OUTBOX).order_by(OUTBOX.c.seq))).all()
    out = []
    for r in rows:
        headers = dict(r.headers)
        out.append((r.topic, headers["ce_type"], outbox_data(r)))
    return out


class TestRecordConsent:
    async def test_a_written_sip_consent_is_stored_sent_to_both_parties_and_audited(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        response = await client.post(
            "/v1/consents", json=consent_body(person), headers=auth(unit="mottagning-vuxna")
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/consents/{body['id']}"
        assert body["status"] == "active"
        assert body["owner_orgnr"] == ORG_VAXJO
        assert body["person"] == {"personnummer": person, "protected_identity": False}
        assert body["recorded_by"] == {
            "org": ORG_VAXJO,
            "unit_id": "mottagning-vuxna",
            "user": "handlaggare-1",
        }
        assert body["parties"] == [
            {"orgnr": ORG_VAXJO, "unit_id": None},
            {"orgnr": ORG_REGION, "unit_id": None},
        ]
        assert body["version"] == 1

        events = await outbox_events(db)
        assert [(t, ty) for t, ty, _ in events] == [
            (topics.inbound(ORG_VAXJO), CONSENT_RECORDED_V1),
            (topics.inbound(ORG_REGION), CONSENT_RECORDED_V1),
        ]
        payload = events[1][2]
        assert payload["personnummer"] == person
        # Only what a party needs: no giver, no form reference, no recording user.
        assert "signed_form_reference" not in payload
        assert "given_by_kind" not in payload
        assert "handlaggare-1" not in json.dumps(payload)

        [record] = await audit_of(db, person)
        assert (record.action, record.resource_id, record.outcome) == (
            "consent.record",
            body["id"],
            "allowed",
        )
        history = await count(db, ChangeLogEntry, ChangeLogEntry.subject_id == body["id"])
        assert history == 1

    async def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        headers = {**auth(), "Idempotency-Key": "case-4711-consent"}
        first = await client.post("/v1/consents", json=consent_body(person), headers=headers)
        again = await client.post("/v1/consents", json=consent_body(person), headers=headers)

        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await count(db, Consent) == 1
        assert [r.action for r in await audit_of(db, person)] == [
            "consent.record",
            "consent.record.replay",
        ]

    async def test_an_oral_consent_by_a_guardian_with_reference(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        body = consent_body(
            person,
            form="oral",
            signed_form_reference=None,
            form_note="Muntligt samtycke vid hembesök 2026-11-20, två handläggare närvarande.",
            given_by={"kind": "guardian", "name": "Vårdnadshavare", "reference": "Dom T 123-26"},
        )
        response = await client.post("/v1/consents", json=body, headers=auth())
        assert response.status_code == 201, response.text
        assert response.json()["given_by"]["kind"] == "guardian"

    async def test_superseding_ends_the_old_consent_and_tells_its_parties(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        old = (await client.post("/v1/consents", json=consent_body(person), headers=auth())).json()
        new = await client.post(
            "/v1/consents",
            json=consent_body(person, categories=["needs_summary"], supersedes=old["id"]),
            headers=auth(),
        )
        assert new.status_code == 201, new.text

        old_now = (await client.get(f"/v1/consents/{old['id']}", headers=auth())).json()
        assert old_now["status"] == "superseded"
        assert old_now["superseded_by"] == new.json()["id"]
        ended = [p for _, ty, p in await outbox_events(db) if ty == CONSENT_ENDED_V1]
        assert {(p["consent_id"], p["reason"]) for p in ended} == {(old["id"], "superseded")}
        assert len(ended) == 2  # one per party

    async def test_an_active_refusal_of_the_same_parties_is_a_conflict(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        refusal = await client.post(
            "/v1/refusals",
            json={
                "person": {"personnummer": person},
                "refused_on": today().isoformat(),
                "parties": [{"orgnr": ORG_REGION}],
                "purposes": ["sip"],
            },
            headers=auth(),
        )
        assert refusal.status_code == 201, refusal.text
        response = await client.post("/v1/consents", json=consent_body(person), headers=auth())
        problem(response, 409, "refusal-in-force")
        assert await count(db, Consent) == 0

        # Another purpose is not refused: refusing a SIP is not refusing everything.
        other = consent_body(person, purposes=["vardkedjeremiss"])
        assert (await client.post("/v1/consents", json=other, headers=auth())).status_code == 201

        revoked = await client.post(
            f"/v1/refusals/{refusal.json()['id']}/revoke",
            json={"reason": "Personen har ändrat sig."},
            headers=auth(),
        )
        assert revoked.json()["status"] == "revoked"
        response = await client.post("/v1/consents", json=consent_body(person), headers=auth())
        assert response.status_code == 201


def _days(n: int) -> str:
    return (today() + dt.timedelta(days=n)).isoformat()


BAD_CONSENTS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "invalid personnummer",
        {"person": {"personnummer": "19121212-1213"}},
        "person.personnummer",
        "luhn",
    ),
    (
        "end before start",
        {"valid_from": _days(10), "valid_to": _days(5)},
        "valid_to",
        "end_before_start",
    ),
    ("beyond the maximum", {"valid_to": _days(400)}, "valid_to", "beyond_max_validity"),
    ("no end date", {"valid_to": None}, "valid_to", "date_type"),
    ("ended already", {"valid_from": _days(-30), "valid_to": _days(-1)}, "valid_to", "in_the_past"),
    (
        "unknown party",
        {"parties": [{"orgnr": ORG_VAXJO}, {"orgnr": "556016-0680"}]},
        "parties.1.orgnr",
        "unknown_party",
    ),
    ("no parties", {"parties": []}, "parties", "too_short"),
    ("only the own member", {"parties": [{"orgnr": ORG_VAXJO}]}, "parties", "no_other_member"),
    (
        "own member missing",
        {"parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_ALVESTA}]},
        "parties",
        "owner_not_party",
    ),
    (
        "bad orgnr",
        {"parties": [{"orgnr": ORG_VAXJO}, {"orgnr": "232100-0066"}]},
        "parties.1.orgnr",
        "luhn",
    ),
    ("unknown purpose", {"purposes": ["marknadsforing"]}, "purposes.0", "enum"),
    ("no categories", {"categories": []}, "categories", "too_short"),
    (
        "written without form",
        {"signed_form_reference": None},
        "signed_form_reference",
        "required_for_written",
    ),
    ("oral without note", {"form": "oral"}, "form_note", "required_for_oral"),
    ("person not informed", {"person_informed": False}, "person_informed", "must_be_confirmed"),
    (
        "representative without reference",
        {"given_by": {"kind": "god_man"}},
        "given_by.reference",
        "required_for_representative",
    ),
    (
        "unknown superseded consent",
        {"supersedes": "no-such-consent"},
        "supersedes",
        "unknown_consent",
    ),
]


class TestBadInput:
    @pytest.mark.parametrize(
        ("case", "change", "field", "rule"), BAD_CONSENTS, ids=[c[0] for c in BAD_CONSENTS]
    )
    async def test_refused_with_the_field_and_rule_and_nothing_stored(
        self,
        client: httpx.AsyncClient,
        db: Database,
        person: str,
        case: str,
        change: dict[str, Any],
        field: str,
        rule: str,
    ) -> None:
        body = consent_body(person, **change)
        if case == "oral without note":
            body["signed_form_reference"] = None
        response = await client.post("/v1/consents", json=body, headers=auth())

        details = problem(response, 422, "validation")
        assert rules_of(details).get(field) == rule, details
        assert "19121212" not in response.text
        assert person not in response.text
        assert await count(db, Consent) == 0
        assert await count(db, OUTBOX) == 0
        assert await count(db, ChangeLogEntry) == 0

    async def test_every_problem_is_named_at_once(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        body = consent_body(
            person, valid_to=_days(500), signed_form_reference=None, person_informed=False
        )
        details = problem(await client.post("/v1/consents", json=body, headers=auth()), 422)
        assert rules_of(details) == {
            "valid_to": "beyond_max_validity",
            "signed_form_reference": "required_for_written",
            "person_informed": "must_be_confirmed",
        }


class TestWithdraw:
    async def test_withdrawal_is_immediate_tells_every_party_and_a_second_one_is_a_conflict(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        body = consent_body(
            person, parties=[{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}, {"orgnr": ORG_ALVESTA}]
        )
        created = (await client.post("/v1/consents", json=body, headers=auth())).json()
        withdraw = {
            "reason": "Personen vill inte längre delta i SIP.",
            "withdrawn_by": {"kind": "person"},
        }
        response = await client.post(
            f"/v1/consents/{created['id']}/withdraw", json=withdraw, headers=auth()
        )

        assert response.status_code == 200, response.text
        out = response.json()
        assert out["status"] == "withdrawn"
        assert out["withdrawal"]["reason"] == withdraw["reason"]
        assert out["withdrawal"]["recorded_by_user"] == "handlaggare-1"
        assert out["version"] == 2
        ended = [(t, p) for t, ty, p in await outbox_events(db) if ty == CONSENT_ENDED_V1]
        assert {t for t, _ in ended} == {
            topics.inbound(ORG_VAXJO),
            topics.inbound(ORG_REGION),
            topics.inbound(ORG_ALVESTA),
        }
        assert all(p["reason"] == "withdrawn" and p["version"] == 2 for _, p in ended)
        assert all(withdraw["reason"] not in json.dumps(p) for _, p in ended)

        again = await client.post(
            f"/v1/consents/{created['id']}/withdraw", json=withdraw, headers=auth()
        )
        problem(again, 409, "consent-not-active")
        assert len([1 for _, ty, _ in await outbox_events(db) if ty == CONSENT_ENDED_V1]) == 3

    async def test_a_representative_withdrawing_needs_a_reference(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        response = await client.post(
            f"/v1/consents/{created['id']}/withdraw",
            json={"reason": "Förvaltaren återkallar.", "withdrawn_by": {"kind": "forvaltare"}},
            headers=auth(),
        )
        assert rules_of(problem(response, 422)) == {
            "withdrawn_by.reference": "required_for_representative"
        }

    async def test_an_unknown_consent_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/consents/00000000-0000-0000-0000-000000000000/withdraw",
            json={"reason": "x"},
            headers=auth(),
        )
        problem(response, 404, "consent-not-found")


class TestBlocks:
    async def test_a_block_is_lifted_for_at_most_seven_days_with_a_reason(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        block = await client.post(
            "/v1/blocks",
            json={
                "person": {"personnummer": person},
                "blocked": {"orgnr": ORG_REGION, "unit_id": "psykiatri-vaxjo"},
            },
            headers=auth(),
        )
        assert block.status_code == 201, block.text
        block_id = block.json()["id"]
        now = dt.datetime.now(dt.UTC)

        too_long = await client.post(
            f"/v1/blocks/{block_id}/lifts",
            json={"ends_at": (now + dt.timedelta(days=7, minutes=5)).isoformat(), "reason": "x"},
            headers=auth(),
        )
        assert rules_of(problem(too_long, 422)) == {"ends_at": "beyond_max_lift"}
        naive = await client.post(
            f"/v1/blocks/{block_id}/lifts",
            json={"ends_at": "2030-01-01T00:00:00", "reason": "x"},
            headers=auth(),
        )
        assert rules_of(problem(naive, 422)) == {"ends_at": "timezone_aware"}

        lifted = await client.post(
            f"/v1/blocks/{block_id}/lifts",
            json={"ends_at": (now + dt.timedelta(days=6)).isoformat(), "reason": "Remissmöte."},
            headers=auth(),
        )
        assert lifted.status_code == 201, lifted.text
        assert [x["reason"] for x in lifted.json()["lifts"]] == ["Remissmöte."]

        removed = await client.post(f"/v1/blocks/{block_id}/remove", headers=auth())
        assert removed.json()["status"] == "removed"
        problem(await client.post(f"/v1/blocks/{block_id}/remove", headers=auth()), 409)
        assert await count(db, Block) == 1
        actions = [r.action for r in await audit_of(db, person)]
        assert actions == ["block.record", "block.lift", "block.remove"]

    async def test_blocking_the_whole_own_member_is_refused(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        response = await client.post(
            "/v1/blocks",
            json={"person": {"personnummer": person}, "blocked": {"orgnr": ORG_VAXJO}},
            headers=auth(),
        )
        assert rules_of(problem(response, 422)) == {"blocked.unit_id": "own_member"}
        assert await count(db, Block) == 0


class TestRefusals:
    async def test_a_refusal_of_one_member_for_every_purpose(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        response = await client.post(
            "/v1/refusals",
            json={
                "person": {"personnummer": person},
                "refused_on": today().isoformat(),
                "parties": [{"orgnr": ORG_REGION}],
            },
            headers=auth(),
        )
        assert response.status_code == 201, response.text
        assert response.json()["purposes"] == []
        read = await client.get(f"/v1/refusals/{response.json()['id']}", headers=auth())
        assert read.json()["parties"] == [{"orgnr": ORG_REGION, "unit_id": None}]
        assert await count(db, Refusal) == 1

    async def test_a_refusal_in_the_future_is_refused(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        response = await client.post(
            "/v1/refusals",
            json={
                "person": {"personnummer": person},
                "refused_on": _days(3),
                "parties": [{"orgnr": ORG_REGION}],
            },
            headers=auth(),
        )
        assert rules_of(problem(response, 422)) == {"refused_on": "in_the_future"}


class TestConcurrentWithdrawal:
    async def test_two_withdrawals_at_once_end_it_once(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        body = {"reason": "Återkallat."}
        path = f"/v1/consents/{created['id']}/withdraw"
        answers = await asyncio.gather(
            *(client.post(path, json=body, headers=auth()) for _ in range(3))
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
        assert all(
            a.headers["content-type"] == PROBLEM_JSON for a in answers if a.status_code == 409
        )
        ended = [1 for _, ty, _ in await outbox_events(db) if ty == CONSENT_ENDED_V1]
        assert len(ended) == 2  # one per party, once


class TestEtags:
    async def test_withdrawal_with_if_match_refuses_a_stale_version(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await client.post("/v1/consents", json=consent_body(person), headers=auth())
        assert created.headers["etag"] == '"1"'
        path = f"/v1/consents/{created.json()['id']}"
        assert (await client.get(path, headers=auth())).headers["etag"] == '"1"'
        body = {"reason": "Återkallat."}

        bad = await client.post(
            f"{path}/withdraw", json=body, headers={**auth(), "If-Match": "yesterday"}
        )
        assert rules_of(problem(bad, 422)) == {"If-Match": "etag"}
        stale = await client.post(
            f"{path}/withdraw", json=body, headers={**auth(), "If-Match": '"0"'}
        )
        problem(stale, 412, "consent-version-mismatch")
        assert stale.headers["etag"] == '"1"'
        assert await count(db, OUTBOX) == 2  # only the recorded events

        done = await client.post(
            f"{path}/withdraw", json=body, headers={**auth(), "If-Match": '"1"'}
        )
        assert done.status_code == 200
        assert done.headers["etag"] == '"2"'


class TestRefusalAfterConsent:
    async def test_a_refusal_over_an_active_consent_asks_for_the_withdrawal_first(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        consent = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        refusal = {
            "person": {"personnummer": person},
            "refused_on": today().isoformat(),
            "parties": [{"orgnr": ORG_REGION, "unit_id": "psykiatri"}],
        }
        response = await client.post("/v1/refusals", json=refusal, headers=auth())
        details = problem(response, 409, "consent-in-force")
        assert consent["id"] in details["detail"]
        assert await count(db, Refusal) == 0

        await client.post(
            f"/v1/consents/{consent['id']}/withdraw", json={"reason": "Ångrar sig."}, headers=auth()
        )
        assert (await client.post("/v1/refusals", json=refusal, headers=auth())).status_code == 201


class TestRecordedBy:
    async def test_a_case_system_names_the_user_and_unit_a_unit_token_only_its_own(
        self, client: httpx.AsyncClient, person: str
    ) -> None:
        system = auth(sub="treserva-integration", unit=None)
        body = consent_body(person, recorded_by={"user": "hl-77", "unit_id": "vuxenenheten"})
        created = await client.post("/v1/consents", json=body, headers=system)
        assert created.json()["recorded_by"] == {
            "org": ORG_VAXJO,
            "unit_id": "vuxenenheten",
            "user": "hl-77",
        }
        other_unit = consent_body(
            person, purposes=["vardkedjeremiss"], recorded_by={"unit_id": "barn-och-unga"}
        )
        response = await client.post("/v1/consents", json=other_unit, headers=auth(unit="vuxen"))
        problem(response, 403, "forbidden")

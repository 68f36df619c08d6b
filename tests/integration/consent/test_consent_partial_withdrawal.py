"""Withdrawing some of a consent's purposes (issue 21), on SQLite and PostgreSQL: the person
declines joint planning (SIP) and keeps the kontaktbegäran. The consent stays in force for
the rest; decisions refuse the withdrawn purpose and allow the kept one; every party is told
(``consent.narrowed``) and its copy follows, only forward, only from the owner; bad input
answers 422 naming the field and rule, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.consent.models import ChangeLogEntry, Consent
from shared.data.db import Database
from shared.messaging.events import CATALOGUE, topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    CONSENT_NARROWED_V1,
    CONSENT_RECORDED_V1,
)
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.outbox import Outbox
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.integration.consent.helpers import (
    OUTBOX,
    SPEC,
    audit_of,
    auth,
    consent_body,
    count,
    question,
    settings_for,
)
from tests.integration.consent.test_consent_copies import (
    apply,
    copies,
    region,
    region_client,
    sent_to,
    tombstones,
)
from tests.integration.consent.test_consent_records import outbox_events, problem, rules_of

__all__ = ["region", "region_client"]

REASON = "Personen avstår från SIP men vill ha kontakt med socialtjänsten."
SIP_ONLY = {"reason": REASON, "withdrawn_by": {"kind": "person"}, "purposes": ["sip"]}


def joint(person: str, **over: Any) -> dict[str, Any]:
    """A consent to SIP and to kontaktbegäran between Växjö, the region and Alvesta."""
    return consent_body(
        person,
        purposes=["sip", "kontaktbegaran", "vardkedjesamordning"],
        parties=[{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}, {"orgnr": ORG_ALVESTA}],
        **over,
    )


def kontakt(person: str) -> dict[str, Any]:
    """A decision request: the region asks Växjö for a kontaktbegäran."""
    return question(person, purpose="kontaktbegaran", categories=["needs_summary"])


async def record(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/consents", json=body, headers=auth())
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def decide(client: httpx.AsyncClient, body: dict[str, Any], org: str) -> dict[str, Any]:
    r = await client.post("/v1/decisions", json=body, headers=auth(org=org))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


class TestWithdrawingSomePurposes:
    async def test_the_consent_stays_in_force_for_the_rest_and_every_party_is_told(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        r = await client.post(
            f"/v1/consents/{created['id']}/withdraw",
            json=SIP_ONLY,
            headers={**auth(), "If-Match": '"1"'},
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert r.headers["etag"] == '"2"'
        assert (out["status"], out["version"], out["withdrawal"]) == ("active", 2, None)
        assert out["purposes"] == ["kontaktbegaran", "vardkedjesamordning"]
        assert out["withdrawn_purposes"] == ["sip"]
        [w] = out["purpose_withdrawals"]
        assert (w["purposes"], w["reason"], w["by_kind"]) == (["sip"], REASON, "person")
        assert (w["recorded_by_user"], w["recorded_by_unit"]) == (
            "handlaggare-1",
            "mottagning-vuxna",
        )
        # Read again, the same.
        again = (await client.get(f"/v1/consents/{created['id']}", headers=auth())).json()
        assert again["purposes"] == out["purposes"]
        assert again["purpose_withdrawals"] == out["purpose_withdrawals"]

        narrowed = [(t, p) for t, ty, p in await outbox_events(db) if ty == CONSENT_NARROWED_V1]
        assert {t for t, _ in narrowed} == {
            topics.inbound(ORG_VAXJO),
            topics.inbound(ORG_REGION),
            topics.inbound(ORG_ALVESTA),
        }
        for _, p in narrowed:
            assert p["purposes"] == ["kontaktbegaran", "vardkedjesamordning"]
            assert (p["withdrawn_purposes"], p["version"]) == (["sip"], 2)
            assert REASON not in json.dumps(p)
            assert person not in json.dumps(p)
        assert not [1 for _, ty, _ in await outbox_events(db) if ty == CONSENT_ENDED_V1]

        # Effective at once here: SIP refused as withdrawn, the kontaktbegäran still allowed.
        sip = await decide(client, question(person), ORG_VAXJO)
        assert (sip["verdict"], sip["reasons"][0]["code"]) == ("denied", "purpose_withdrawn")
        kept = await decide(client, kontakt(person), ORG_VAXJO)
        assert (kept["verdict"], kept["basis"]["consent_id"]) == ("allowed", created["id"])

        # Audited as a withdrawal, and in the person's history with what was withdrawn.
        assert [a.action for a in await audit_of(db, person)] == [
            "consent.record",
            "consent.withdraw",
            "consent.read",
            "consent.decision",
            "consent.decision",
        ]
        async with db.transaction() as session:
            entries = list(
                (
                    await session.execute(select(ChangeLogEntry).order_by(ChangeLogEntry.id))
                ).scalars()
            )
        assert [e.action for e in entries] == ["recorded", "purposes_withdrawn"]
        assert entries[1].details == {
            "version": 2,
            "purposes": ["sip"],
            "kept": ["kontaktbegaran", "vardkedjesamordning"],
        }

    async def test_purposes_are_withdrawn_one_step_after_another_and_the_last_ends_it(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        path = f"/v1/consents/{created['id']}/withdraw"
        first = await client.post(path, json=SIP_ONLY, headers=auth())
        assert first.json()["purposes"] == ["kontaktbegaran", "vardkedjesamordning"]
        second = await client.post(
            path,
            json={
                "reason": "Inte heller samordning.",
                "purposes": ["vardkedjesamordning", "vardkedjesamordning"],
            },
            headers=auth(),
        )
        assert second.status_code == 200, second.text
        assert (second.json()["purposes"], second.json()["withdrawn_purposes"]) == (
            ["kontaktbegaran"],
            ["sip", "vardkedjesamordning"],
        )
        narrowed = [p for _, ty, p in await outbox_events(db) if ty == CONSENT_NARROWED_V1]
        assert [p["version"] for p in narrowed] == [2, 2, 2, 3, 3, 3]
        assert narrowed[-1]["withdrawn_purposes"] == ["sip", "vardkedjesamordning"]

        # Naming every purpose still in force is a withdrawal of the whole consent.
        last = await client.post(
            path,
            json={"reason": "Återkallar allt.", "purposes": ["kontaktbegaran"]},
            headers=auth(),
        )
        assert last.status_code == 200, last.text
        body = last.json()
        assert (body["status"], body["version"]) == ("withdrawn", 4)
        assert body["withdrawal"]["reason"] == "Återkallar allt."
        assert len(body["purpose_withdrawals"]) == 2
        ended = [p for _, ty, p in await outbox_events(db) if ty == CONSENT_ENDED_V1]
        assert [(p["reason"], p["version"]) for p in ended] == [("withdrawn", 4)] * 3
        denied = await decide(client, kontakt(person), ORG_VAXJO)
        assert denied["reasons"][0]["code"] == "consent_withdrawn"
        problem(await client.post(path, json=SIP_ONLY, headers=auth()), 409, "consent-not-active")

    async def test_a_stale_if_match_is_refused_and_nothing_changes(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        path = f"/v1/consents/{created['id']}/withdraw"
        assert (await client.post(path, json=SIP_ONLY, headers=auth())).status_code == 200
        before = await count(db, OUTBOX)
        body = {"reason": "Inte heller samordning.", "purposes": ["vardkedjesamordning"]}
        stale = await client.post(path, json=body, headers={**auth(), "If-Match": '"1"'})
        problem(stale, 412, "consent-version-mismatch")
        assert stale.headers["etag"] == '"2"'
        assert await count(db, OUTBOX) == before


class TestBadInput:
    async def test_an_unknown_purpose_names_the_field_and_nothing_is_stored(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        before = await count(db, OUTBOX)
        r = await client.post(
            f"/v1/consents/{created['id']}/withdraw",
            json={**SIP_ONLY, "purposes": ["sip", "gemensam_planering"]},
            headers=auth(),
        )
        details = problem(r, 422, "validation")
        assert list(rules_of(details)) == ["purposes.1"]
        assert await count(db, OUTBOX) == before
        await self._unchanged(db, created["id"])

    async def test_a_purpose_the_consent_does_not_have_in_force(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        path = f"/v1/consents/{created['id']}/withdraw"
        assert (await client.post(path, json=SIP_ONLY, headers=auth())).status_code == 200
        before = await count(db, OUTBOX)
        r = await client.post(
            path,
            json={
                "reason": REASON,
                "withdrawn_by": {"kind": "god_man"},
                "purposes": ["kontaktbegaran", "vardkedjeremiss", "sip"],
            },
            headers=auth(),
        )
        assert rules_of(problem(r, 422, "validation")) == {
            "withdrawn_by.reference": "required_for_representative",
            "purposes.1": "not_in_consent",
            "purposes.2": "already_withdrawn",
        }
        assert await count(db, OUTBOX) == before
        consent = await self._unchanged(db, created["id"], version=2)
        assert consent.purposes == ["kontaktbegaran", "vardkedjesamordning"]

    async def test_an_empty_list_is_refused(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        r = await client.post(
            f"/v1/consents/{created['id']}/withdraw",
            json={**SIP_ONLY, "purposes": []},
            headers=auth(),
        )
        assert list(rules_of(problem(r, 422, "validation"))) == ["purposes"]
        await self._unchanged(db, created["id"])

    @staticmethod
    async def _unchanged(db: Database, consent_id: str, *, version: int = 1) -> Consent:
        async with db.transaction() as session:
            consent = await session.get(Consent, consent_id)
        assert consent is not None
        assert (consent.status, consent.version) == ("active", version)
        return consent


class TestCopiesFollow:
    async def test_the_copy_is_narrowed_and_decides_as_the_owner_does(
        self,
        client: httpx.AsyncClient,
        region: FastAPI,
        region_client: httpx.AsyncClient,
        db: Database,
        person: str,
    ) -> None:
        created = await record(client, joint(person))
        [recorded] = await sent_to(db, ORG_REGION)
        await apply(region, [recorded])
        await client.post(f"/v1/consents/{created['id']}/withdraw", json=SIP_ONLY, headers=auth())
        [_, narrowed] = await sent_to(db, ORG_REGION)
        assert narrowed.event.type == CONSENT_NARROWED_V1
        await apply(region, [narrowed])

        [copy] = await copies(db)
        assert (copy.status, copy.version) == ("active", 2)
        assert (copy.purposes, copy.withdrawn_purposes) == (
            ["kontaktbegaran", "vardkedjesamordning"],
            ["sip"],
        )
        shown = (
            await region_client.get(
                f"/v1/consent-copies/{created['id']}", headers=auth(org=ORG_REGION)
            )
        ).json()
        assert shown["withdrawn_purposes"] == ["sip"]
        sip = await decide(region_client, question(person), ORG_REGION)
        assert sip["reasons"][0]["code"] == "purpose_withdrawn"
        kept = await decide(region_client, kontakt(person), ORG_REGION)
        assert (kept["verdict"], kept["basis"]["consent_id"]) == ("allowed", created["id"])

        # Redelivered, alone or after the older recorded event: nothing moves back.
        await apply(region, [recorded, narrowed])
        [copy] = await copies(db)
        assert (copy.version, copy.purposes) == (2, ["kontaktbegaran", "vardkedjesamordning"])
        found = (
            await region_client.post(
                "/v1/persons/search", json={"personnummer": person}, headers=auth(org=ORG_REGION)
            )
        ).json()
        assert [h["action"] for h in found["history"]] == ["copy_received", "copy_narrowed"]

    async def test_a_narrowing_before_its_copy_narrows_the_copy_when_it_comes(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        await client.post(f"/v1/consents/{created['id']}/withdraw", json=SIP_ONLY, headers=auth())
        recorded, narrowed = await sent_to(db, ORG_REGION)
        await apply(region, [narrowed, narrowed])
        assert await copies(db) == []
        [tombstone] = await tombstones(db)
        assert (tombstone.reason, tombstone.version, tombstone.withdrawn_purposes) == (
            "narrowed",
            2,
            ["sip"],
        )
        await apply(region, [recorded, narrowed, recorded])
        [copy] = await copies(db)
        assert (copy.status, copy.version, copy.purposes) == (
            "active",
            2,
            ["kontaktbegaran", "vardkedjesamordning"],
        )
        assert await tombstones(db) == []

    async def test_an_end_after_a_narrowing_wins_in_any_order(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        path = f"/v1/consents/{created['id']}/withdraw"
        await client.post(path, json=SIP_ONLY, headers=auth())
        await client.post(path, json={"reason": "Allt."}, headers=auth())
        recorded, narrowed, ended = await sent_to(db, ORG_REGION)
        assert (narrowed.event.type, ended.event.type) == (CONSENT_NARROWED_V1, CONSENT_ENDED_V1)
        # The end first, then the narrowing (older), then the copy.
        await apply(region, [ended, narrowed])
        [tombstone] = await tombstones(db)
        assert (tombstone.reason, tombstone.version, tombstone.purposes) == ("withdrawn", 3, None)
        await apply(region, [recorded, narrowed])
        [copy] = await copies(db)
        assert (copy.status, copy.version) == ("withdrawn", 3)

    async def test_a_narrowing_from_another_member_than_the_owner_is_refused(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        await apply(region, await sent_to(db, ORG_REGION))
        forger = Outbox(settings_for("sqlite+aiosqlite://", ORG_ALVESTA), SPEC.infra)
        payload = CATALOGUE.kinds[CONSENT_NARROWED_V1].model.model_validate(
            {
                "consent_id": created["id"],
                "owner_orgnr": ORG_ALVESTA,
                "parties": [{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}, {"orgnr": ORG_ALVESTA}],
                "purposes": ["vardkedjesamordning"],
                "withdrawn_purposes": ["sip", "kontaktbegaran"],
                "narrowed_at": "2026-12-07T10:00:00Z",
                "version": 99,
            }
        )
        event = forger.event(CONSENT_NARROWED_V1, payload, key=created["id"])
        record_ = ReceivedRecord(topics.inbound(ORG_REGION), 0, 0, b"k", b"{}", [])
        with pytest.raises(Reject) as info:
            await apply(region, [Delivery(event, payload, record_)])
        assert info.value.rule == "not_owner"
        [copy] = await copies(db)
        assert (copy.version, copy.purposes) == (
            1,
            ["sip", "kontaktbegaran", "vardkedjesamordning"],
        )

    async def test_the_recording_member_skips_its_own_narrowing(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        created = await record(client, joint(person))
        await client.post(f"/v1/consents/{created['id']}/withdraw", json=SIP_ONLY, headers=auth())
        own = await sent_to(db, ORG_VAXJO)
        assert [d.event.type for d in own] == [CONSENT_RECORDED_V1, CONSENT_NARROWED_V1]
        await apply(app, own)
        assert await copies(db) == []
        assert await tombstones(db) == []

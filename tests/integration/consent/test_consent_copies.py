"""Copies at the parties and the end of a consent, through the worker's own handlers fed
with the events the recording member's outbox holds: a party keeps a copy (under its own
person key, without the personnummer), uses it at receive time, marks it withdrawn or
expired when told, and refuses events it must not apply."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from services.consent import records
from services.consent.handlers import consumers, periodic
from services.consent.models import Consent, ConsentCopy, ConsentTombstone
from shared.config import ConsentSettings
from shared.data.db import Database
from shared.data.work import Work
from shared.messaging.events import CATALOGUE, topics
from shared.messaging.events.payloads import CONSENT_ENDED_V1, CONSENT_RECORDED_V1
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.outbox import Outbox
from shared.web.app import create_app
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.signed import opened
from tests.integration.consent.helpers import (
    OUTBOX,
    SPEC,
    auth,
    consent_body,
    new_person,
    question,
    settings_for,
    today,
)


def app_of(db_url: str, orgnr: str, secret: str) -> FastAPI:
    settings = settings_for(db_url, orgnr).model_copy(
        update={"consent": ConsentSettings(person_key_secret=secret)}
    )
    return create_app(SPEC, settings)


@pytest.fixture
async def region(db_url: str) -> AsyncIterator[FastAPI]:
    """Region Kronoberg's consent service, with a person-key secret of its own."""
    application = app_of(db_url, ORG_REGION, "region-kronoberg-secret")
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def region_client(region: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=region)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def sent_to(db: Database, orgnr: str, *, after: int = 0) -> list[Delivery]:
    """The events in the outbox for member ``orgnr``'s inbound topic, as received there."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(OUTBOX)
                .where(OUTBOX.c.topic == topics.inbound(orgnr), OUTBOX.c.seq > after)
                .order_by(OUTBOX.c.seq)
            )
        ).all()
    out = []
    for i, r in enumerate(rows):
        headers = [(k, v.encode()) for k, v in r.headers]
        key = r.key.encode() if r.key else None
        event = opened(r.topic, key, bytes(r.body), headers)
        _type, payload = CATALOGUE.resolve(event)
        record = ReceivedRecord(r.topic, 0, i, key, bytes(r.body), headers)
        out.append(Delivery(event, payload, record))
    return out


async def apply(app: FastAPI, deliveries: list[Delivery]) -> None:
    """Runs each delivery through the member's inbound handlers, one transaction each."""
    ctx = app.state.ctx
    [inbound, _audit, _directory] = consumers(ctx)
    for d in deliveries:
        async with ctx.db.transaction() as session:
            await inbound.handlers[d.event.type](session, d)


async def copies(db: Database) -> list[ConsentCopy]:
    async with db.transaction() as session:
        return list((await session.execute(select(ConsentCopy))).scalars())


class TestCopies:
    async def test_a_party_keeps_a_minimal_copy_and_uses_it_when_a_referral_arrives(
        self,
        client: httpx.AsyncClient,
        region: FastAPI,
        region_client: httpx.AsyncClient,
        db: Database,
        person: str,
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        await apply(region, await sent_to(db, ORG_REGION))

        [copy] = await copies(db)
        assert copy.consent_id == created["id"]
        assert copy.owner_orgnr == ORG_VAXJO
        assert copy.status == "active"
        # The region keeps its own key of the person (its own secret), never the number.
        assert copy.person_key != (await _own_consent(db)).person_key
        assert person not in str({c.name: getattr(copy, c.name) for c in copy.__table__.c})

        shown = await region_client.get(
            f"/v1/consent-copies/{created['id']}", headers=auth(org=ORG_REGION)
        )
        assert shown.status_code == 200, shown.text
        assert shown.json()["purposes"] == ["sip"]
        assert "personnummer" not in shown.text

        # The receive-time check at the region: may Växjö share this with us?
        receive = question(person)
        answer = (
            await region_client.post("/v1/decisions", json=receive, headers=auth(org=ORG_REGION))
        ).json()
        assert answer["verdict"] == "allowed"
        assert answer["basis"]["consent_id"] == created["id"]

        found = (
            await region_client.post(
                "/v1/persons/search", json={"personnummer": person}, headers=auth(org=ORG_REGION)
            )
        ).json()
        assert [c["consent_id"] for c in found["copies"]] == [created["id"]]
        assert [h["action"] for h in found["history"]] == ["copy_received"]

        # Reading the copy is in the person's audit extract at the region, though the copy
        # (and so its audit record) holds no personnummer.
        extract = (
            await region_client.post(
                "/v1/persons/audit-extract",
                json={"personnummer": person},
                headers=auth(org=ORG_REGION),
            )
        ).json()
        # (This test's two members share one database: keep the region's own accesses.)
        assert [e["action"] for e in extract["entries"] if e["actor_org"] == ORG_REGION] == [
            "consent_copy.read",
            "consent.decision",
            "person.search",
        ]

    async def test_withdrawal_reaches_the_copy_and_a_late_duplicate_does_not_revive_it(
        self,
        client: httpx.AsyncClient,
        region: FastAPI,
        region_client: httpx.AsyncClient,
        db: Database,
        person: str,
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        recorded = await sent_to(db, ORG_REGION)
        await apply(region, recorded)
        await client.post(
            f"/v1/consents/{created['id']}/withdraw", json={"reason": "Återkallat."}, headers=auth()
        )
        ended = [d for d in await sent_to(db, ORG_REGION) if d.event.type == CONSENT_ENDED_V1]
        await apply(region, ended)

        [copy] = await copies(db)
        assert (copy.status, copy.end_reason, copy.version) == ("withdrawn", "withdrawn", 2)
        answer = (
            await region_client.post(
                "/v1/decisions", json=question(person), headers=auth(org=ORG_REGION)
            )
        ).json()
        assert answer["verdict"] == "denied"
        assert answer["reasons"][0]["code"] == "consent_withdrawn"

        await apply(region, recorded)  # redelivered long after: older version, ignored
        [copy] = await copies(db)
        assert copy.status == "withdrawn"

    async def test_a_superseded_consent_is_replaced_at_the_party(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database, person: str
    ) -> None:
        old = (await client.post("/v1/consents", json=consent_body(person), headers=auth())).json()
        new = await client.post(
            "/v1/consents",
            json=consent_body(person, categories=["plan"], supersedes=old["id"]),
            headers=auth(),
        )
        await apply(region, await sent_to(db, ORG_REGION))
        by_id = {c.consent_id: c for c in await copies(db)}
        assert (by_id[old["id"]].status, by_id[old["id"]].end_reason) == (
            "superseded",
            "superseded",
        )
        assert by_id[new.json()["id"]].status == "active"

    async def test_the_recording_member_skips_its_own_events(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        await client.post("/v1/consents", json=consent_body(person), headers=auth())
        own = await sent_to(db, ORG_VAXJO)
        assert [d.event.type for d in own] == [CONSENT_RECORDED_V1]
        await apply(app, own)
        assert await copies(db) == []

    async def test_a_member_not_named_refuses_the_copy(
        self, client: httpx.AsyncClient, db_url: str, db: Database, person: str
    ) -> None:
        await client.post("/v1/consents", json=consent_body(person), headers=auth())
        alvesta = app_of(db_url, ORG_ALVESTA, "alvesta-kommun-secret")
        [to_region] = await sent_to(db, ORG_REGION)
        with pytest.raises(Reject) as info:
            await apply(alvesta, [to_region])
        assert info.value.rule == "not_a_party"
        await alvesta.state.ctx.db.dispose()

    async def test_a_consent_sent_by_another_member_than_its_owner_is_refused(
        self, region: FastAPI, person: str
    ) -> None:
        forger = Outbox(settings_for("sqlite+aiosqlite://", ORG_ALVESTA), SPEC.infra)
        payload: dict[str, Any] = {
            "consent_id": "00000000-0000-0000-0000-00000000f00d",
            "owner_orgnr": ORG_VAXJO,
            "personnummer": person,
            "parties": [{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}],
            "purposes": ["sip"],
            "categories": ["plan"],
            "valid_from": today().isoformat(),
            "valid_to": today().isoformat(),
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
            "version": 1,
        }
        model = CATALOGUE.kinds[CONSENT_RECORDED_V1].model.model_validate(payload)
        event = forger.event(CONSENT_RECORDED_V1, model, key="k")
        record = ReceivedRecord(topics.inbound(ORG_REGION), 0, 0, b"k", b"{}", [])
        with pytest.raises(Reject) as info:
            await apply(region, [Delivery(event, model, record)])
        assert info.value.rule == "sender_not_owner"


class TestAnEndBeforeItsCopy:
    """The end of a consent can reach a party before the copy it ends (a resent record
    falls behind a later one of its key, ADR 0005): the party keeps a tombstone and stores
    the copy ended when it comes (ADR 0016)."""

    async def test_a_withdrawal_that_arrives_first_ends_the_copy_when_it_comes(
        self,
        client: httpx.AsyncClient,
        region: FastAPI,
        region_client: httpx.AsyncClient,
        db: Database,
        person: str,
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        await client.post(
            f"/v1/consents/{created['id']}/withdraw", json={"reason": "Återkallat."}, headers=auth()
        )
        recorded, ended = await sent_to(db, ORG_REGION)
        assert (recorded.event.type, ended.event.type) == (CONSENT_RECORDED_V1, CONSENT_ENDED_V1)

        await apply(region, [ended, ended])  # the end first, and again
        assert await copies(db) == []
        [tombstone] = await tombstones(db)
        assert (tombstone.consent_id, tombstone.reason, tombstone.version) == (
            created["id"],
            "withdrawn",
            2,
        )
        await apply(region, [recorded])

        [copy] = await copies(db)
        assert (copy.status, copy.end_reason, copy.version) == ("withdrawn", "withdrawn", 2)
        assert copy.ended_at is not None
        assert await tombstones(db) == []
        answer = (
            await region_client.post(
                "/v1/decisions", json=question(person), headers=auth(org=ORG_REGION)
            )
        ).json()
        assert answer["verdict"] == "denied"
        assert answer["reasons"][0]["code"] == "consent_withdrawn"
        found = (
            await region_client.post(
                "/v1/persons/search", json={"personnummer": person}, headers=auth(org=ORG_REGION)
            )
        ).json()
        assert [h["action"] for h in found["history"]] == ["copy_received", "copy_withdrawn"]

        # Both delivered again, in either order: nothing changes.
        await apply(region, [recorded, ended, recorded])
        [copy] = await copies(db)
        assert (copy.status, copy.version) == ("withdrawn", 2)
        assert await tombstones(db) == []

    async def test_a_superseded_consent_whose_end_comes_first_is_stored_superseded(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database, person: str
    ) -> None:
        old = (await client.post("/v1/consents", json=consent_body(person), headers=auth())).json()
        new = (
            await client.post(
                "/v1/consents",
                json=consent_body(person, categories=["plan"], supersedes=old["id"]),
                headers=auth(),
            )
        ).json()
        events = await sent_to(db, ORG_REGION)
        await apply(region, events[::-1])
        by_id = {c.consent_id: c for c in await copies(db)}
        assert (by_id[old["id"]].status, by_id[old["id"]].version) == ("superseded", 2)
        assert by_id[new["id"]].status == "active"
        assert await tombstones(db) == []

    async def test_an_end_for_a_member_it_does_not_name_is_refused(
        self, client: httpx.AsyncClient, db_url: str, db: Database, person: str
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        await client.post(
            f"/v1/consents/{created['id']}/withdraw", json={"reason": "Återkallat."}, headers=auth()
        )
        ended = [d for d in await sent_to(db, ORG_REGION) if d.event.type == CONSENT_ENDED_V1]
        alvesta = app_of(db_url, ORG_ALVESTA, "alvesta-kommun-secret")
        try:
            with pytest.raises(Reject) as info:
                await apply(alvesta, ended)
        finally:
            await alvesta.state.ctx.db.dispose()
        assert info.value.rule == "not_a_party"
        assert await tombstones(db) == []

    async def test_a_tombstone_whose_copy_never_came_is_pruned_after_the_inbox_retention(
        self, client: httpx.AsyncClient, region: FastAPI, db: Database
    ) -> None:
        for pnr in (new_person(), new_person()):
            created = (
                await client.post("/v1/consents", json=consent_body(pnr), headers=auth())
            ).json()
            await client.post(
                f"/v1/consents/{created['id']}/withdraw",
                json={"reason": "Återkallat."},
                headers=auth(),
            )
        ended = [d for d in await sent_to(db, ORG_REGION) if d.event.type == CONSENT_ENDED_V1]
        await apply(region, ended)
        old, fresh = sorted(await tombstones(db), key=lambda t: t.consent_id)
        days = region.state.ctx.settings.kafka.inbox_retention_days
        async with db.transaction() as session:
            await session.execute(
                update(ConsentTombstone)
                .where(ConsentTombstone.consent_id == old.consent_id)
                .values(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days, hours=1))
            )
        jobs = {j.name: j for j in periodic(region.state.ctx)}
        await jobs["consent-tombstones"].run()
        assert [t.consent_id for t in await tombstones(db)] == [fresh.consent_id]


async def tombstones(db: Database) -> list[ConsentTombstone]:
    async with db.transaction() as session:
        return list((await session.execute(select(ConsentTombstone))).scalars())


async def _own_consent(db: Database) -> Consent:
    async with db.transaction() as session:
        return (await session.execute(select(Consent))).scalars().one()


class TestExpiry:
    async def test_an_expired_consent_tells_its_parties_like_a_withdrawal(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        created = (
            await client.post("/v1/consents", json=consent_body(person), headers=auth())
        ).json()
        ctx = app.state.ctx
        end = dt.date.fromisoformat(created["valid_to"])
        async with ctx.db.transaction() as session:
            on_last_day = await records.expire_due(
                Work(session, ctx.outbox, ctx.settings), today=end
            )
        async with ctx.db.transaction() as session:
            day_after = await records.expire_due(
                Work(session, ctx.outbox, ctx.settings), today=end + dt.timedelta(days=1)
            )
        assert (on_last_day, day_after) == (0, 1)

        consent = await _own_consent(db)
        assert (consent.status, consent.version) == ("expired", 2)
        ended = [d for d in await sent_to(db, ORG_REGION) if d.event.type == CONSENT_ENDED_V1]
        assert [(d.payload.reason, d.payload.version) for d in ended] == [("expired", 2)]  # type: ignore[attr-defined]
        assert (await client.get(f"/v1/consents/{created['id']}", headers=auth())).json()[
            "status"
        ] == "expired"

    async def test_the_workers_periodic_check_runs(self, app: FastAPI, db: Database) -> None:
        jobs = {j.name: j for j in periodic(app.state.ctx)}
        assert sorted(jobs) == ["consent-expiry", "consent-tombstones"]
        job = jobs["consent-expiry"]
        await job.run()  # nothing is due: it finishes without touching anything
        async with db.transaction() as session:
            assert (await session.execute(select(OUTBOX))).first() is None

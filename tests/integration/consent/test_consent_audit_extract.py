"""The person's audit extract (loggutdrag): the consent service's own records plus the
records the member's other services send as events on its internal topic (ADR 0011),
as JSON and as a printable page. The other services' auditor writes that event in the
same transaction as the record, so neither exists without the other."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from services.consent.handlers import consumers
from services.consent.models import AuditCopy
from shared.data.db import Database
from shared.identity.audit import Auditor, AuditUnavailable
from shared.identity.auth import Caller
from shared.messaging.events import CATALOGUE, topics
from shared.messaging.events.payloads import AUDIT_RECORDED_V1
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.outbox import Outbox
from tests.conftest import ORG_REGION, ORG_VAXJO, make_settings
from tests.helpers.signed import opened
from tests.integration.consent.helpers import OUTBOX, SPEC, auth, question

NURSE = Caller(sub="ssk-12", org=ORG_VAXJO, unit="hemtjanst-norr")


def referral_auditor(orgnr: str = ORG_VAXJO) -> Auditor:
    """The auditor the member's referral service gets from ``build_context``. Its tables
    here are the consent database's own (the same shared infrastructure tables)."""
    settings = make_settings(service="referral", orgnr=orgnr)
    return Auditor("referral", SPEC.infra, outbox=Outbox(settings, SPEC.infra), orgnr=orgnr)


async def internal_events(db: Database) -> list[Delivery]:
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(OUTBOX)
                .where(OUTBOX.c.event_type == AUDIT_RECORDED_V1)
                .order_by(OUTBOX.c.seq)
            )
        ).all()
    out = []
    for r in rows:
        headers = [(k, v.encode()) for k, v in r.headers]
        event = opened(r.topic, r.key.encode(), bytes(r.body), headers)
        out.append(
            Delivery(
                event,
                CATALOGUE.resolve(event)[1],
                ReceivedRecord(r.topic, 0, r.seq, r.key.encode(), bytes(r.body), headers),
            )
        )
    return out


async def deliver(app: FastAPI, deliveries: list[Delivery]) -> None:
    ctx = app.state.ctx
    [_inbound, audit] = consumers(ctx)
    for d in deliveries:
        async with ctx.db.transaction() as session:
            await audit.handlers[d.event.type](session, d)


class TestOtherServicesSendTheirRecords:
    async def test_the_record_and_its_event_are_written_together(
        self, db: Database, person: str
    ) -> None:
        auditor = referral_auditor()
        async with db.transaction() as session:
            await auditor.record_access(
                session,
                NURSE,
                action="referral.read",
                person_id=person,
                purpose="vardkedjeremiss",
                resource_type="referral",
                resource_id="r-1",
            )
            await auditor.record_access(session, NURSE, action="attachment.list", person_id=None)
        [delivery] = await internal_events(db)
        assert delivery.record.topic == topics.internal(ORG_VAXJO)
        assert delivery.event.sender_service == "referral"
        assert delivery.payload.person_id == person  # type: ignore[attr-defined]

    async def test_no_event_no_access(self, db: Database, person: str) -> None:
        async with db.transaction() as session:
            await session.execute(text("ALTER TABLE outbox_event RENAME TO outbox_event_x"))
        try:
            with pytest.raises(AuditUnavailable):
                async with db.transaction() as session:
                    await referral_auditor().record_access(
                        session, NURSE, action="referral.read", person_id=person
                    )
        finally:
            async with db.transaction() as session:
                await session.execute(text("ALTER TABLE outbox_event_x RENAME TO outbox_event"))
        async with db.transaction() as session:
            rows = await session.execute(
                select(SPEC.infra.audit).where(SPEC.infra.audit.c.person_id == person)
            )
            assert rows.first() is None

    async def test_the_consent_service_sends_none_of_its_own(
        self, client: httpx.AsyncClient, db: Database, person: str
    ) -> None:
        await client.post("/v1/decisions", json=question(person), headers=auth())
        assert await internal_events(db) == []


class TestExtract:
    async def test_every_access_of_every_service_oldest_first_as_json_and_html(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        async with db.transaction() as session:
            await referral_auditor().record_access(
                session,
                NURSE,
                action="referral.read",
                person_id=person,
                purpose="vardkedjeremiss",
                resource_type="referral",
                resource_id="r-9",
            )
        await client.post(
            "/v1/decisions", json=question(person), headers=auth(sub="hl-3", unit="vuxen")
        )
        events = await internal_events(db)
        await deliver(app, events)
        await deliver(app, events)  # a redelivery is kept once

        response = await client.post(
            "/v1/persons/audit-extract", json={"personnummer": person}, headers=auth()
        )
        assert response.status_code == 200, response.text
        extract = response.json()
        assert extract["person"] == f"{person[:8]}-****"
        assert extract["member_orgnr"] == ORG_VAXJO
        assert [
            (e["service"], e["action"], e["actor_sub"], e["actor_unit"]) for e in extract["entries"]
        ] == [
            ("referral", "referral.read", "ssk-12", "hemtjanst-norr"),
            ("consent", "consent.decision", "hl-3", "vuxen"),
        ]
        async with db.transaction() as session:
            assert len((await session.execute(select(AuditCopy))).all()) == 1

        page = await client.post(
            "/v1/persons/audit-extract",
            json={"personnummer": person, "format": "html"},
            headers=auth(),
        )
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "Loggutdrag" in html
        assert f"{person[:8]}-****" in html
        assert person not in html
        assert "Remisser" in html
        assert "ssk-12" in html
        assert "hemtjanst-norr" in html

        # The extracts themselves were accesses, and show in a later extract.
        again = (
            await client.post(
                "/v1/persons/audit-extract", json={"personnummer": person}, headers=auth()
            )
        ).json()
        assert [e["action"] for e in again["entries"]][-2:] == [
            "person.audit_extract",
            "person.audit_extract",
        ]

    async def test_a_period(self, client: httpx.AsyncClient, person: str) -> None:
        await client.post("/v1/decisions", json=question(person), headers=auth())
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        body = {"personnummer": person, "since": future}
        response = await client.post("/v1/persons/audit-extract", json=body, headers=auth())
        assert response.json()["entries"] == []
        bad = {**body, "until": dt.datetime.now(dt.UTC).isoformat()}
        response = await client.post("/v1/persons/audit-extract", json=bad, headers=auth())
        assert response.status_code == 422
        assert response.json()["errors"][0]["rule"] == "end_before_start"

    @pytest.mark.parametrize("field", ["since", "until"])
    @pytest.mark.parametrize("value", [12345, 0, 1.5, "12345"])
    async def test_a_number_is_no_date_time(
        self, client: httpx.AsyncClient, person: str, field: str, value: object
    ) -> None:
        # Pydantic's lax mode took a number as seconds since 1970 (since=0 was 1970-01-01).
        body = {"personnummer": person, field: value}
        response = await client.post("/v1/persons/audit-extract", json=body, headers=auth())
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        errors = response.json()["errors"]
        assert [(e["field"], e["rule"]) for e in errors] == [(field, "datetime_type")]

    async def test_a_run_of_records_is_kept_once_each(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        # As the worker consumes them: several records in one run, one of them twice.
        async with db.transaction() as session:
            for n in range(3):
                await referral_auditor().record_access(
                    session,
                    NURSE,
                    action="referral.read",
                    person_id=person,
                    resource_type="referral",
                    resource_id=f"r-{n}",
                )
        events = await internal_events(db)
        assert len(events) == 3
        [_inbound, audit] = consumers(app.state.ctx)
        on_run = audit.batch_handlers[AUDIT_RECORDED_V1]
        async with app.state.ctx.db.transaction() as session:
            await on_run(session, [*events, events[0]])
        async with app.state.ctx.db.transaction() as session:
            await on_run(session, events[1:])  # redelivered: nothing new
        async with db.transaction() as session:
            kept = (
                (
                    await session.execute(
                        select(AuditCopy.resource_id).where(
                            AuditCopy.resource_id.in_(["r-0", "r-1", "r-2"])
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert sorted(kept) == ["r-0", "r-1", "r-2"]
        extract = (
            await client.post(
                "/v1/persons/audit-extract", json={"personnummer": person}, headers=auth()
            )
        ).json()
        assert [e["resource_id"] for e in extract["entries"] if e["service"] == "referral"] == [
            "r-0",
            "r-1",
            "r-2",
        ]

    async def test_records_from_another_member_are_refused(
        self, app: FastAPI, db: Database, person: str
    ) -> None:
        async with db.transaction() as session:
            await referral_auditor(ORG_REGION).record_access(
                session, NURSE, action="referral.read", person_id=person
            )
        [foreign] = await internal_events(db)
        with pytest.raises(Reject) as info:
            await deliver(app, [foreign])
        assert info.value.rule == "sender_not_member"

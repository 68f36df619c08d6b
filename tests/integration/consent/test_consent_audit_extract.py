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

from services.consent import known_units
from services.consent.handlers import consumers
from services.consent.models import AuditCopy
from shared.data.db import Database
from shared.data.work import Work
from shared.domain.swedish import time_sv
from shared.identity.audit import Auditor, AuditUnavailable
from shared.identity.audit_actions import AuditAction
from shared.identity.auth import Caller
from shared.messaging.events import CATALOGUE, CloudEvent, topics
from shared.messaging.events.payloads import (
    AUDIT_RECORDED_V1,
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import Delivery, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.outbox import Outbox
from tests.conftest import ORG_REGION, ORG_VAXJO, make_settings
from tests.helpers.directory import member_record
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
    [_inbound, audit, _directory] = consumers(ctx)
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
        [_inbound, audit, _directory] = consumers(app.state.ctx)
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


# --- the extract in words: names, actions and local time ------------------------------------

NORR = "6f1c2a4e-8b0d-4f51-9a57-0c3f1e2d7a01"  # Växjö's Hemtjänst Norr
VUXEN = "0b7e5d9c-3a26-4c8e-b1f4-5d2a9e8c6b02"  # Växjö's Mottagning vuxna
TELEBORG = "c4a8e1f2-7d3b-4e69-8f05-1b6d3c9a2e03"  # the region's Vårdcentral Teleborg
UNKNOWN = "9e2d7c1b-5a4f-4b38-a6e0-3c8f1d7b4a04"  # a unit the directory never named
AT = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def unit_changed(
    unit_id: str, owner: str, name: str, version: int = 1, hsa_id: str | None = None
) -> UnitChangedV1:
    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=owner,
        name=name,
        kind="hemtjanst",
        status="active",
        version=version,
        changed_at=AT,
        hsa_id=hsa_id,
    )


def member_changed(orgnr: str, name: str) -> MemberChangedV1:
    return member_record(orgnr, "kommun", ("0780",), at=AT).model_copy(update={"name": name})


async def published(app: FastAPI, payload: UnitChangedV1 | MemberChangedV1, sender: str) -> None:
    """As the consent worker takes an event of ``sender``'s directory off the topic."""
    kind = UNIT_CHANGED_V1 if isinstance(payload, UnitChangedV1) else MEMBER_CHANGED_V1
    event = CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:directory",
        type=kind,
        data=payload.model_dump(mode="json"),
    )
    ctx = app.state.ctx
    [*_, directory] = consumers(ctx)
    async with ctx.db.transaction() as session:
        await directory.handlers[kind](
            session,
            Delivery(event, payload, ReceivedRecord(topics.DIRECTORY, 0, 0, None, b"", [])),
        )


async def directory_names(app: FastAPI) -> None:
    for payload, sender in [
        (member_changed(ORG_VAXJO, "Växjö kommun"), ORG_VAXJO),
        (member_changed(ORG_REGION, "Region Kronoberg"), ORG_REGION),
        (unit_changed(NORR, ORG_VAXJO, "Hemtjänst Norr"), ORG_VAXJO),
        (unit_changed(VUXEN, ORG_VAXJO, "Mottagning vuxna"), ORG_VAXJO),
        (unit_changed(TELEBORG, ORG_REGION, "Vårdcentral Teleborg"), ORG_REGION),
    ]:
        await published(app, payload, sender)


class TestExtractInWords:
    async def test_names_actions_in_words_and_local_time(
        self, client: httpx.AsyncClient, app: FastAPI, db: Database, person: str
    ) -> None:
        await directory_names(app)
        async with db.transaction() as session:
            await referral_auditor().record_access(
                session,
                Caller(sub="ssk-12", org=ORG_VAXJO, unit=NORR),
                action="referral.read",
                person_id=person,
                purpose="vardkedjeremiss",
            )
            # Another member's unit as the actor, and a unit the directory does not know.
            for caller in [
                Caller(sub="dr-4", org=ORG_REGION, unit=TELEBORG),
                Caller(sub="x-1", org=ORG_VAXJO, unit=UNKNOWN),
            ]:
                await app.state.ctx.auditor.record_access(
                    session, caller, action="consent.read", person_id=person
                )
        await deliver(app, await internal_events(db))
        await client.post("/v1/decisions", json=question(person), headers=auth(unit=VUXEN))

        extract = (
            await client.post(
                "/v1/persons/audit-extract", json={"personnummer": person}, headers=auth()
            )
        ).json()
        entries = sorted(extract["entries"], key=lambda e: (e["action"], e["actor_sub"]))
        assert [
            (e["action_text"], e["unit_name"], e["org_name"], e["outcome_text"]) for e in entries
        ] == [
            (
                "kontrollerade om samtycke eller stöd i lag finns för att dela uppgifter",
                "Mottagning vuxna",
                "Växjö kommun",
                "nekad",  # no consent recorded
            ),
            ("läste ett samtycke", "Vårdcentral Teleborg", "Region Kronoberg", "tillåten"),
            ("läste ett samtycke", None, "Växjö kommun", "tillåten"),
            ("läste en skickad remiss", "Hemtjänst Norr", "Växjö kommun", "tillåten"),
        ]
        for e in entries:
            at = dt.datetime.fromisoformat(e["occurred_at"])
            assert e["occurred_at_local"] == time_sv(at)
        [read] = [e for e in entries if e["action"] == "referral.read"]
        assert (read["service_text"], read["purpose_text"]) == ("Remisser", "vårdkedjeremiss")
        generated = dt.datetime.fromisoformat(extract["generated_at"])
        assert extract["generated_at_local"] == time_sv(generated)

        html = (
            await client.post(
                "/v1/persons/audit-extract",
                json={"personnummer": person, "format": "html"},
                headers=auth(),
            )
        ).text
        for words in [
            "Hemtjänst Norr",
            "Mottagning vuxna",
            "Vårdcentral Teleborg",
            "Region Kronoberg",
            "Växjö kommun",
            "läste en skickad remiss",
            "läste ett samtycke",
            "kontrollerade om samtycke",
            "nekad",
            "vårdkedjeremiss",
            *(e["occurred_at_local"] for e in entries),
        ]:
            assert words in html, words
        assert " kl. " in html
        for unit in (NORR, VUXEN, TELEBORG):
            assert unit not in html
        assert UNKNOWN in html  # no name to show: its id
        for code in AuditAction:
            assert code.value not in html, code
        assert "UTC" not in html

    async def test_a_unit_keeps_its_latest_name_and_its_owner(self, app: FastAPI) -> None:
        await published(app, unit_changed(NORR, ORG_VAXJO, "Hemtjänst Norr", version=2), ORG_VAXJO)
        await published(app, unit_changed(NORR, ORG_VAXJO, "Gammalt namn", version=1), ORG_VAXJO)
        with pytest.raises(Reject) as info:  # the region cannot publish Växjö's unit
            await published(app, unit_changed(NORR, ORG_VAXJO, "Falskt namn", 3), ORG_REGION)
        assert info.value.rule == "sender_not_owner"
        with pytest.raises(Reject) as info:  # nor take the id over as its own
            await published(app, unit_changed(NORR, ORG_REGION, "Falskt namn", 3), ORG_REGION)
        assert info.value.rule == "not_owner"
        with pytest.raises(Reject) as info:  # a member describes only itself
            await published(app, member_changed(ORG_VAXJO, "Falskt namn"), ORG_REGION)
        assert info.value.rule == "sender_not_owner"
        async with app.state.ctx.db.transaction() as session:
            work = Work(session, None, app.state.ctx.settings)
            names = await known_units.names_of(work, [NORR, UNKNOWN], [ORG_VAXJO, ORG_REGION])
        assert names.unit(NORR) == "Hemtjänst Norr"
        assert names.unit(UNKNOWN) is None
        # This member's own name from its settings until its directory describes it.
        assert names.member(ORG_VAXJO) == app.state.ctx.settings.member.name
        assert names.member(ORG_REGION) is None


class TestATokenNamingItsUnitByHsaId:
    """The consent service resolves an HSA-id unit claim through the units the directory
    topic announced, as the other services do (ADR 0006, 0028)."""

    async def test_is_the_unit_it_names_and_only_this_members(
        self, client: httpx.AsyncClient, app: FastAPI, person: str
    ) -> None:
        own, region = "SE2120000647-E000000000301", "SE2321000065-E000000000101"
        await published(app, unit_changed(NORR, ORG_VAXJO, "Hemtjänst Norr", hsa_id=own), ORG_VAXJO)
        await published(
            app,
            unit_changed(TELEBORG, ORG_REGION, "Vårdcentral Teleborg", hsa_id=region),
            ORG_REGION,
        )
        body = question(person)
        by_id = await client.post("/v1/decisions", json=body, headers=auth(ORG_VAXJO, unit=NORR))
        by_hsa = await client.post("/v1/decisions", json=body, headers=auth(ORG_VAXJO, unit=own))
        assert by_id.status_code == by_hsa.status_code == 200, by_hsa.text
        assert by_hsa.json()["verdict"] == by_id.json()["verdict"]
        for claim in (region, "SE2120000647-E999"):  # another member's unit, and none
            refused = await client.post(
                "/v1/decisions", json=body, headers=auth(ORG_VAXJO, unit=claim)
            )
            assert refused.status_code == 403
            assert refused.json()["type"].endswith("/unknown-hsa-id")

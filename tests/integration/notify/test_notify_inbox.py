"""The inbox channel: rules turn events into one notification per unit (or role), listed,
marked read and acknowledged through the API, streamed live, each once per event, and only
to their own unit and member."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.notify.models import Delivery, Notification
from shared.config import NotifyRule, Settings
from shared.data.db import Database, new_id, utcnow
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    REFERRAL_DEADLINE_V1,
    UNIT_REVIEW_DUE_V1,
    ConsentEndedV1,
    ConsentPartyRef,
    ReferralDeadlineV1,
    UnitReviewDueV1,
)
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.integration.notify.conftest import (
    ADMIN,
    INTAKE,
    OTHER_UNIT,
    auth,
    handle,
    notify_settings,
    received,
)
from tests.integration.notify.servers import Served


async def count(db: Database, model: type[Notification] | type[Delivery]) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


class TestRulesTurnEventsIntoNotifications:
    async def test_a_received_referral_lands_in_the_receiving_units_inbox(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        event = received()
        await handle(db, settings, event)

        r = await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["unread"] == 1
        [item] = page["items"]
        assert item["kind"] == "referral.received"
        assert item["subject_id"] == event[1].referral_id  # type: ignore[attr-defined]
        assert item["referral_kind"] == "kontaktbegaran"
        assert item["urgency"] == "urgent"
        assert item["counterpart_orgnr"] == ORG_REGION
        assert item["title"] == "Ny Kontaktbegäran i inkorgen"
        assert item["link"] == f"https://notify.vaxjo.example/v1/notifications/{item['id']}"
        assert item["due_at"] is not None

    async def test_a_redelivered_event_gives_no_second_notification_or_delivery(
        self, db: Database, settings: Settings
    ) -> None:
        event, event_id = received(), new_id()
        first = await handle(db, settings, event, event_id=event_id)
        again = await handle(db, settings, event, event_id=event_id)
        assert len(first) == 1
        assert again == []
        assert await count(db, Notification) == 1
        # inbox + e-mail (skipped: no SMTP configured); webhooks: none subscribed.
        assert await count(db, Delivery) == 2

    async def test_the_rules_table_is_configurable_per_member(
        self, db_url: str, db: Database, client: httpx.AsyncClient
    ) -> None:
        rules = [
            NotifyRule(
                id="kb-to-boendestod",
                event="se.vardkedja.referral.received.v1",
                recipients=["unit", f"unit:{OTHER_UNIT}", "role:socialchef"],
                channels=["inbox"],
            )
        ]
        settings = notify_settings(db_url, rules=rules)
        await handle(db, settings, received())
        for unit in (INTAKE, OTHER_UNIT):
            r = await client.get(f"/v1/units/{unit}/notifications", headers=auth(**ADMIN))
            assert len(r.json()["items"]) == 1, unit
        r = await client.get(
            "/v1/roles/socialchef/notifications", headers=auth(unit=None, roles=("socialchef",))
        )
        assert r.status_code == 200
        assert [i["recipient"] for i in r.json()["items"]] == ["socialchef"]

    async def test_an_event_type_without_a_rule_notifies_nobody(
        self, db_url: str, db: Database
    ) -> None:
        settings = notify_settings(db_url, rules=[])
        assert await handle(db, settings, received()) == []

    async def test_consent_ended_tells_the_named_units_of_this_member_only(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        payload = ConsentEndedV1(
            consent_id=new_id(),
            owner_orgnr=ORG_REGION,
            reason="withdrawn",
            ended_at=utcnow(),
            parties=[
                ConsentPartyRef(orgnr=ORG_REGION, unit_id="region-beroende"),
                ConsentPartyRef(orgnr=ORG_VAXJO, unit_id=INTAKE),
                ConsentPartyRef(orgnr=ORG_ALVESTA, unit_id="alvesta-soc"),
            ],
            purposes=["kontaktbegaran"],
            version=2,
        )
        created = await handle(db, settings, (CONSENT_ENDED_V1, payload))
        assert len(created) == 1
        r = await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())
        [item] = r.json()["items"]
        assert (item["kind"], item["status"]) == ("consent.ended", "withdrawn")

    async def test_review_due_reaches_the_unit_and_without_a_coordinator_the_admins(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        payload = UnitReviewDueV1(
            unit_id=INTAKE,
            unit_name="Socialtjänstens mottagning",
            due_since=dt.date(2026, 5, 1),
        )
        await handle(db, settings, (UNIT_REVIEW_DUE_V1, payload))
        unit = (await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())).json()
        admins = (
            await client.get("/v1/roles/member_admin/notifications", headers=auth(**ADMIN))
        ).json()
        assert [i["kind"] for i in unit["items"]] == ["unit.review_due"]
        assert [i["kind"] for i in admins["items"]] == ["unit.review_due"]

    async def test_a_deadline_met_notifies_nobody(self, db: Database, settings: Settings) -> None:
        payload = ReferralDeadlineV1(
            referral_id=new_id(),
            kind="vardkedjeremiss",
            unit_id=INTAKE,
            deadline="first_meeting",
            due_at=utcnow(),
            state="met",
        )
        assert await handle(db, settings, (REFERRAL_DEADLINE_V1, payload)) == []


class TestInboxOperations:
    async def test_unread_filter_read_and_acknowledge(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        [first] = await handle(db, settings, received())
        await handle(db, settings, received())

        r = await client.post(f"/v1/notifications/{first}/read", headers=auth())
        assert r.status_code == 200
        assert r.json()["read_at"] is not None
        page = (
            await client.get(f"/v1/units/{INTAKE}/notifications?unread=true", headers=auth())
        ).json()
        assert page["unread"] == 1
        assert first not in [i["id"] for i in page["items"]]

        r = await client.post(f"/v1/notifications/{first}/acknowledge", headers=auth())
        assert r.status_code == 200
        acked = r.json()
        assert acked["acknowledged_at"] is not None
        again = await client.post(f"/v1/notifications/{first}/acknowledge", headers=auth())
        assert again.json()["acknowledged_at"] == acked["acknowledged_at"]

    async def test_cursor_pagination_walks_the_inbox_newest_first(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        ids = [(await handle(db, settings, received()))[0] for _ in range(5)]
        seen: list[str] = []
        url = f"/v1/units/{INTAKE}/notifications?limit=2"
        cursor = None
        while True:
            page = (
                await client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=auth())
            ).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        bad = await client.get(url + "&cursor=%%%", headers=auth())
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "cursor"

    async def test_the_delivery_log_lists_each_channel(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        [nid] = await handle(db, settings, received())
        r = await client.get(f"/v1/notifications/{nid}/deliveries", headers=auth())
        assert r.status_code == 200
        by_channel = {d["channel"]: d for d in r.json()}
        assert by_channel["inbox"]["status"] == "delivered"
        assert by_channel["email"]["status"] == "skipped"
        assert by_channel["email"]["last_outcome"] == "email_off"


class TestTenantIsolation:
    async def test_another_members_token_is_refused_everywhere(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        [nid] = await handle(db, settings, received())
        foreign = auth(org=ORG_ALVESTA, **ADMIN)  # type: ignore[arg-type]
        for method, url in [
            ("GET", f"/v1/units/{INTAKE}/notifications"),
            ("GET", f"/v1/units/{INTAKE}/notifications/stream"),
            ("GET", f"/v1/notifications/{nid}"),
            ("POST", f"/v1/notifications/{nid}/read"),
            ("POST", f"/v1/notifications/{nid}/acknowledge"),
            ("GET", f"/v1/notifications/{nid}/deliveries"),
            ("GET", "/v1/roles/member_admin/notifications"),
            ("GET", "/v1/webhook-subscriptions"),
            ("GET", "/v1/deliveries"),
            ("GET", f"/v1/units/{INTAKE}/channels"),
            ("GET", "/v1/rules"),
        ]:
            r = await client.request(method, url, headers=foreign)
            assert r.status_code == 403, (method, url)
            assert r.headers["content-type"] == "application/problem+json"

    async def test_another_unit_neither_lists_nor_reads_nor_acknowledges(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        [nid] = await handle(db, settings, received())
        other = auth(unit=OTHER_UNIT)
        r = await client.get(f"/v1/units/{INTAKE}/notifications", headers=other)
        assert r.status_code == 403
        for method, url in [
            ("GET", f"/v1/notifications/{nid}"),
            ("POST", f"/v1/notifications/{nid}/read"),
            ("POST", f"/v1/notifications/{nid}/acknowledge"),
            ("GET", f"/v1/notifications/{nid}/deliveries"),
        ]:
            r = await client.request(method, url, headers=other)
            assert r.status_code == 404, (method, url)
        r = await client.get("/v1/roles/member_admin/notifications", headers=other)
        assert r.status_code == 403
        unread = (await client.get(f"/v1/notifications/{nid}", headers=auth())).json()
        assert unread["read_at"] is None

    async def test_missing_scopes_and_tokens_are_refused(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        [nid] = await handle(db, settings, received())
        r = await client.get(f"/v1/units/{INTAKE}/notifications")
        assert r.status_code == 401
        r = await client.post(f"/v1/notifications/{nid}/read", headers=auth(scopes=["notify:read"]))
        assert r.status_code == 403
        r = await client.get(
            f"/v1/units/{INTAKE}/notifications", headers=auth(scopes=["directory:read"])
        )
        assert r.status_code == 403


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app under uvicorn on a loopback port (server-sent events need a real server)."""
    server = await Served(app).start()
    yield server.url
    await server.stop()


class TestLiveStream:
    async def test_new_notifications_stream_to_a_live_screen_and_resume_by_last_event_id(
        self, db: Database, settings: Settings, served: str
    ) -> None:
        [before] = await handle(db, settings, received())
        events: list[dict[str, str]] = []
        connected = asyncio.Event()

        async def listen(headers: dict[str, str], want: int) -> None:
            async with (
                httpx.AsyncClient(base_url=served, timeout=30) as client,
                client.stream(
                    "GET", f"/v1/units/{INTAKE}/notifications/stream", headers=headers
                ) as r,
            ):
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                connected.set()  # the stream's starting point is taken before the headers
                current: dict[str, str] = {}
                async for line in r.aiter_lines():
                    if not line:
                        if "data" in current:
                            events.append(current)
                            if len(events) >= want:
                                return
                        current = {}
                        continue
                    name, _, value = line.partition(": ")
                    current[name] = value

        listener = asyncio.create_task(listen(auth(), 1))
        # The stream starts with what arrives next, not the backlog.
        await asyncio.wait_for(connected.wait(), timeout=30)
        [live] = await handle(db, settings, received())
        await asyncio.wait_for(listener, timeout=30)
        assert [json.loads(e["data"])["id"] for e in events] == [live]
        assert events[0]["event"] == "notification"

        # Resuming from before the first one replays both, in order.
        events.clear()
        async with db.sessionmaker() as session:
            first_seq = await session.scalar(
                select(Notification.seq).where(Notification.id == before)
            )
        await asyncio.wait_for(
            listen({**auth(), "Last-Event-ID": str(int(first_seq or 0) - 1)}, 2), timeout=30
        )
        assert [json.loads(e["data"])["id"] for e in events] == [before, live]

    @pytest.mark.parametrize("last", ["9" * 19, "75304190013097369706"])
    async def test_a_last_event_id_beyond_64_bits_is_refused_before_the_stream(
        self, served: str, last: str
    ) -> None:
        # It was taken, and the stream's first read failed in the database (out of range).
        async with httpx.AsyncClient(base_url=served, timeout=10) as client:
            r = await client.get(
                f"/v1/units/{INTAKE}/notifications/stream",
                headers={**auth(), "Last-Event-ID": last},
            )
        assert r.status_code == 422
        assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [
            ("Last-Event-ID", "string_too_long")
        ]

    async def test_another_unit_cannot_open_the_stream(self, served: str) -> None:
        async with httpx.AsyncClient(base_url=served, timeout=10) as client:
            r = await client.get(
                f"/v1/units/{INTAKE}/notifications/stream", headers=auth(unit=OTHER_UNIT)
            )
        assert r.status_code == 403


class TestRetention:
    async def test_notifications_past_retention_go_with_their_log_and_newer_ones_stay(
        self, db: Database, settings: Settings
    ) -> None:
        from sqlalchemy import update

        from services.notify.models import DeliveryAttempt
        from services.notify.retention import purge_expired

        [old] = await handle(db, settings, received())
        [new] = await handle(db, settings, received())
        async with db.transaction() as session:
            await session.execute(
                update(Notification)
                .where(Notification.id == old)
                .values(created_at=utcnow() - dt.timedelta(days=401))
            )
            session.add(
                DeliveryAttempt(
                    delivery_id=(
                        await session.scalar(
                            select(Delivery.id).where(Delivery.notification_id == old)
                        )
                    ),
                    attempt=1,
                    started_at=utcnow(),
                    duration_ms=1,
                    outcome="ok",
                )
            )
        async with db.transaction() as session:
            assert await purge_expired(session=session, settings=settings.notify) == 1
        async with db.sessionmaker() as session:
            left = set((await session.execute(select(Notification.id))).scalars())
            deliveries = set((await session.execute(select(Delivery.notification_id))).scalars())
            attempts = await session.scalar(select(func.count()).select_from(DeliveryAttempt))
        assert left == deliveries == {new}
        assert attempts == 0

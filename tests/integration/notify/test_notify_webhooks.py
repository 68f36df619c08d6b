"""Webhooks to case systems and EHRs: subscriptions (scopes, bad input refused, tenant
isolation, secret rotation), Standard Webhooks signatures verified by a real receiver,
retries with backoff on 4xx, 5xx and timeouts, dead letters and manual redelivery, and no
second webhook for a redelivered event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.notify.consume import notify_events
from services.notify.dispatch import Dispatcher
from services.notify.models import Delivery, WebhookSubscription
from services.notify.subscriptions import create_subscription
from shared.config import Settings
from shared.data.db import Database, new_id
from shared.identity.auth import Caller
from shared.messaging.processes import free_port
from shared.web.app import create_app
from shared.web.errors import InvalidInput
from tests.conftest import ORG_ALVESTA, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    ADMIN,
    INTAKE,
    OTHER_UNIT,
    SPEC,
    auth,
    handle,
    notify_settings,
    received,
    subscribe,
    work_of,
)
from tests.integration.notify.servers import WebhookReceiver


async def webhook_deliveries(db: Database) -> list[Delivery]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Delivery).where(Delivery.channel == "webhook"))
        return list(rows.scalars())


async def subscription_count(db: Database) -> int:
    async with db.sessionmaker() as session:
        q = select(func.count()).select_from(WebhookSubscription)
        return int(await session.scalar(q) or 0)


async def until_settled(dispatcher: Dispatcher, db: Database, status: str) -> Delivery:
    """Dispatch until the (single) webhook delivery reaches ``status``."""
    found: list[Delivery] = []

    async def check() -> bool:
        await dispatcher.dispatch_batch()
        rows = await webhook_deliveries(db)
        found[:] = rows
        return len(rows) == 1 and rows[0].status == status

    await eventually(check, within=30, what=f"the webhook delivery {status}")
    return found[0]


@pytest.fixture
async def strict_client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app that refuses private webhook addresses (the default)."""
    app: FastAPI = create_app(SPEC, notify_settings(db_url, webhook_allow_private=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await app.state.ctx.db.dispose()


def _rule(r: httpx.Response) -> tuple[str, str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    return error["field"], error["rule"]


class TestSubscriptionsRefuseBadInput:
    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1/hook",
            "https://10.20.30.40/hook",
            "https://192.168.1.10:8443/hook",
            "https://169.254.169.254/latest",
            "https://[::1]/hook",
            "https://localhost/hook",
        ],
    )
    async def test_a_private_address_is_refused_unless_allowed(
        self, strict_client: httpx.AsyncClient, db: Database, url: str
    ) -> None:
        r = await strict_client.post(
            "/v1/webhook-subscriptions",
            json={"unit_id": INTAKE, "url": url, "event_types": ["referral.received"]},
            headers=auth(),
        )
        assert _rule(r) == ("url", "private_address")
        assert await subscription_count(db) == 0

    async def test_http_is_refused_in_production(self, db: Database, settings: Settings) -> None:
        production = settings.model_copy(update={"env": "production"})
        caller = Caller(sub="x", org=ORG_VAXJO, unit=INTAKE, scopes=frozenset({"notify:write"}))
        async with db.transaction() as session:
            with pytest.raises(InvalidInput) as err:
                await create_subscription(
                    work_of(session, production, caller),
                    unit_id=INTAKE,
                    url="http://treserva.vaxjo.example/hook",
                    event_types=["referral.received"],
                    secret=None,
                )
        assert err.value.errors is not None
        assert (err.value.errors[0].field, err.value.errors[0].rule) == ("url", "https_required")
        assert await subscription_count(db) == 0

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (
                {"event_types": ["referral.received", "referral.exploded"]},
                ("event_types.1", "unknown_event_type"),
            ),
            ({"secret": "whsec_c2hvcnQ="}, ("secret", "secret_too_short")),
            ({"secret": "not-a-standard-secret-at-all-0123456789"}, ("secret", "secret_format")),
            ({"secret": "whsec_!!!not base64!!!"}, ("secret", "secret_format")),
            ({"url": "ftp://files.vaxjo.example/x"}, ("url", "url_format")),
            ({"url": "https://user:pw@hooks.vaxjo.example/x"}, ("url", "url_credentials")),
            ({"event_types": []}, ("event_types", "too_short")),
        ],
    )
    async def test_bad_fields_are_named_with_their_rule_and_nothing_is_stored(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        db: Database,
        body: dict[str, Any],
        expected: tuple[str, str],
    ) -> None:
        payload = {"unit_id": INTAKE, "url": receiver.url, "event_types": ["referral.received"]}
        r = await client.post("/v1/webhook-subscriptions", json={**payload, **body}, headers=auth())
        assert _rule(r) == expected
        assert "!!!" not in r.text  # the submitted value is never echoed
        assert await subscription_count(db) == 0

    async def test_an_update_is_checked_the_same_way(
        self, client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        sub = await subscribe(client, receiver.url)
        r = await client.patch(
            f"/v1/webhook-subscriptions/{sub['id']}",
            json={"event_types": ["nope"]},
            headers=auth(),
        )
        assert _rule(r) == ("event_types.0", "unknown_event_type")
        r = await client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=auth())
        assert r.json()["event_types"] == ["referral.received"]


class TestSubscriptionScopes:
    async def test_a_unit_manages_its_own_and_admins_the_members(
        self, client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        own = await subscribe(client, receiver.url)
        assert own["secret"].startswith("whsec_")
        # A unit may not subscribe member-wide or for another unit.
        r = await client.post(
            "/v1/webhook-subscriptions",
            json={"url": receiver.url, "event_types": ["referral.received"]},
            headers=auth(),
        )
        assert r.status_code == 403
        r = await client.post(
            "/v1/webhook-subscriptions",
            json={
                "unit_id": OTHER_UNIT,
                "url": receiver.url,
                "event_types": ["deadline.unanswered"],
            },
            headers=auth(),
        )
        assert r.status_code == 403
        wide = await subscribe(client, receiver.url, unit_id=None, headers=auth(**ADMIN))

        mine = (await client.get("/v1/webhook-subscriptions", headers=auth())).json()
        assert [s["id"] for s in mine["items"]] == [own["id"]]
        assert "secret" not in mine["items"][0]
        everything = (await client.get("/v1/webhook-subscriptions", headers=auth(**ADMIN))).json()
        assert {s["id"] for s in everything["items"]} == {own["id"], wide["id"]}

        other = auth(unit=OTHER_UNIT)
        for method, url in [
            ("GET", f"/v1/webhook-subscriptions/{own['id']}"),
            ("PATCH", f"/v1/webhook-subscriptions/{own['id']}"),
            ("POST", f"/v1/webhook-subscriptions/{own['id']}/rotate-secret"),
            ("DELETE", f"/v1/webhook-subscriptions/{own['id']}"),
            ("GET", f"/v1/webhook-subscriptions/{wide['id']}"),
        ]:
            kwargs: dict[str, Any] = {"json": {}} if method in ("PATCH", "POST") else {}
            r = await client.request(method, url, headers=other, **kwargs)
            assert r.status_code == 404, (method, url)
        r = await client.get(f"/v1/webhook-subscriptions?unit_id={INTAKE}", headers=other)
        assert r.status_code == 403

    async def test_another_member_and_missing_scopes_are_refused(
        self, client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        sub = await subscribe(client, receiver.url)
        foreign = auth(org=ORG_ALVESTA, **ADMIN)  # type: ignore[arg-type]
        for method, url in [
            ("POST", "/v1/webhook-subscriptions"),
            ("GET", f"/v1/webhook-subscriptions/{sub['id']}"),
            ("DELETE", f"/v1/webhook-subscriptions/{sub['id']}"),
            ("POST", f"/v1/deliveries/{new_id()}/redeliver"),
            ("PUT", f"/v1/units/{INTAKE}/channels"),
        ]:
            r = await client.request(method, url, headers=foreign, json={})
            assert r.status_code == 403, (method, url)
        r = await client.post(
            "/v1/webhook-subscriptions",
            json={"unit_id": INTAKE, "url": receiver.url, "event_types": ["referral.received"]},
            headers=auth(scopes=["notify:read"]),
        )
        assert r.status_code == 403

    async def test_idempotency_key_replays_the_creation(
        self, client: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
    ) -> None:
        body = {"unit_id": INTAKE, "url": receiver.url, "event_types": ["referral.received"]}
        headers = {**auth(), "Idempotency-Key": "create-hook-0001"}
        first = await client.post("/v1/webhook-subscriptions", json=body, headers=headers)
        again = await client.post("/v1/webhook-subscriptions", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert first.json() == again.json()
        assert await subscription_count(db) == 1


class TestSignedDelivery:
    async def test_the_case_system_receives_one_signed_webhook_per_event(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        sub = await subscribe(client, receiver.url)
        receiver.secrets = [sub["secret"]]
        event, event_id = received(), new_id()
        [nid] = await handle(db, settings, event, event_id=event_id)
        await handle(db, settings, event, event_id=event_id)  # redelivered: no new effect
        delivery = await until_settled(dispatcher, db, "delivered")
        await dispatcher.dispatch_batch()

        [got] = receiver.received
        assert got.verified_with == [sub["secret"]]
        assert got.webhook_id == delivery.id
        body = json.loads(got.body)
        assert body["type"] == "referral.received"
        assert body["data"]["notification_id"] == nid
        assert body["data"]["subject_id"] == event[1].referral_id  # type: ignore[attr-defined]
        assert body["data"]["link"].endswith(f"/v1/notifications/{nid}")

        log = (await client.get(f"/v1/notifications/{nid}/deliveries", headers=auth())).json()
        [webhook] = [d for d in log if d["channel"] == "webhook"]
        assert webhook["status"] == "delivered"
        assert webhook["target"] == sub["id"]
        [attempt] = webhook["log"]
        assert (attempt["outcome"], attempt["status_code"]) == ("ok", 204)
        assert attempt["duration_ms"] >= 0

    async def test_only_subscribed_kinds_and_units_are_sent(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        await subscribe(client, receiver.url, event_types=["deadline.unanswered"])
        await subscribe(client, receiver.url, unit_id=OTHER_UNIT, headers=auth(unit=OTHER_UNIT))
        await handle(db, settings, received())
        assert await webhook_deliveries(db) == []

    async def test_a_rotated_secret_signs_alongside_the_old_one_during_the_grace(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        sub = await subscribe(client, receiver.url)
        r = await client.post(
            f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", json={}, headers=auth()
        )
        assert r.status_code == 200
        rotated = r.json()
        assert rotated["secret"] != sub["secret"]
        assert rotated["previous_secret_until"] is not None
        receiver.secrets = [sub["secret"], rotated["secret"]]
        await handle(db, settings, received())
        await until_settled(dispatcher, db, "delivered")
        [got] = receiver.received
        assert set(got.verified_with) == {sub["secret"], rotated["secret"]}
        assert len(got.headers["webhook-signature"].split(" ")) == 2

    async def test_after_the_grace_only_the_new_secret_signs(
        self, db_url: str, db: Database, receiver: WebhookReceiver, client: httpx.AsyncClient
    ) -> None:
        settings = notify_settings(db_url, secret_rotation_grace_s=0)
        app = create_app(SPEC, settings)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as c:
            sub = await subscribe(c, receiver.url)
            given = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
            r = await c.post(
                f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret",
                json={"secret": given},
                headers=auth(),
            )
            assert r.json()["secret"] == given
        await app.state.ctx.db.dispose()
        receiver.secrets = [sub["secret"], given]
        dispatcher = Dispatcher(settings, db)
        try:
            await handle(db, settings, received())
            await until_settled(dispatcher, db, "delivered")
        finally:
            await dispatcher.close()
        [got] = receiver.received
        assert got.verified_with == [given]


class TestRetriesAndDeadLetters:
    async def test_4xx_5xx_and_timeouts_are_retried_with_backoff_then_dead_lettered(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        sub = await subscribe(client, receiver.url)
        receiver.secrets = [sub["secret"]]
        receiver.script = [500, 404, "timeout"]  # webhook_max_attempts = 3
        receiver.hang_s = settings.notify.webhook_timeout_s + 1
        [nid] = await handle(db, settings, received())
        dead = await until_settled(dispatcher, db, "dead")
        assert dead.attempts == 3
        assert dead.dead_at is not None

        log = (await client.get(f"/v1/notifications/{nid}/deliveries", headers=auth())).json()
        [webhook] = [d for d in log if d["channel"] == "webhook"]
        assert [(a["outcome"], a["status_code"]) for a in webhook["log"]] == [
            ("http_error", 500),
            ("http_error", 404),
            ("timeout", None),
        ]
        starts = [a["started_at"] for a in webhook["log"]]
        assert starts == sorted(starts)

        # The admin's dead-letter list, then a manual redelivery under the same id.
        dead_list = (await client.get("/v1/deliveries?status=dead", headers=auth(**ADMIN))).json()
        assert [d["id"] for d in dead_list["items"]] == [dead.id]
        r = await client.get("/v1/deliveries", headers=auth())
        assert r.status_code == 403  # not an admin
        r = await client.post(f"/v1/deliveries/{dead.id}/redeliver", headers=auth(**ADMIN))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        delivered = await until_settled(dispatcher, db, "delivered")
        assert delivered.redeliveries == 1
        assert [r.webhook_id for r in receiver.received] == [dead.id] * 4
        assert len(receiver.verified()) == 4
        again = await client.post(f"/v1/deliveries/{new_id()}/redeliver", headers=auth(**ADMIN))
        assert again.status_code == 404

    async def test_a_receiver_that_recovers_gets_the_event_once(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        await subscribe(client, receiver.url)
        receiver.script = [503]
        await handle(db, settings, received())
        delivered = await until_settled(dispatcher, db, "delivered")
        assert delivered.attempts == 2
        assert len(receiver.received) == 2
        assert [r.webhook_id for r in receiver.received] == [delivered.id] * 2

    async def test_an_unreachable_receiver_never_stops_the_dispatcher(
        self,
        client: httpx.AsyncClient,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        await subscribe(client, f"http://127.0.0.1:{free_port()}/closed")
        await handle(db, settings, received())
        dead = await until_settled(dispatcher, db, "dead")
        assert dead.last_outcome == "connect_error"

    async def test_a_deleted_subscription_ends_its_pending_deliveries(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        sub = await subscribe(client, receiver.url)
        await handle(db, settings, received())
        r = await client.delete(f"/v1/webhook-subscriptions/{sub['id']}", headers=auth())
        assert r.status_code == 204
        dead = await until_settled(dispatcher, db, "dead")
        assert dead.last_outcome == "gone"
        assert receiver.received == []

    async def test_a_pending_delivery_cannot_be_redelivered(
        self, client: httpx.AsyncClient, receiver: WebhookReceiver, db: Database, settings: Settings
    ) -> None:
        await subscribe(client, receiver.url)
        await handle(db, settings, received())
        [pending] = await webhook_deliveries(db)
        r = await client.post(f"/v1/deliveries/{pending.id}/redeliver", headers=auth(**ADMIN))
        assert r.status_code == 409
        assert r.json()["allowed"] == ["dead", "delivered"]


class TestHandOverAtCommit:
    async def test_results_arriving_while_earlier_ones_are_recorded_are_all_recorded(
        self,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        """The consumer's hand-over: sends finish at different times while the dispatcher
        records earlier results; every one is recorded once (none lost, none resent)."""
        await subscribe(client, receiver.url)
        receiver.delay_s = 0.02
        async with db.transaction() as session:
            fanout = await notify_events(
                work_of(session, settings),
                events=[(new_id(), *received()) for _ in range(40)],
                lease_token=dispatcher.token,
            )
        jobs = dispatcher.jobs_for(fanout)
        assert len(jobs) == 40
        dispatcher.submit(jobs)

        async def all_recorded() -> bool:
            await dispatcher.record_done()
            rows = await webhook_deliveries(db)
            return all(d.status == "delivered" for d in rows)

        await eventually(all_recorded, within=30, what="every result recorded")
        rows = await webhook_deliveries(db)
        assert {(d.attempts, d.lease_token) for d in rows} == {(1, None)}
        assert await dispatcher.dispatch_batch() == 0  # nothing left for the poll to resend
        assert len(receiver.received) == 40

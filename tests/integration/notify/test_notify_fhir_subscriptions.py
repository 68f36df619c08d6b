"""FHIR Subscriptions R5 Backport over notify's webhooks: a Subscription made through the
member's FHIR facade (real notify in process) gets a signed handshake at a real local
receiver, an id-only event-notification per status change of its unit's tasks (the Task's
full URL, no personal data), a heartbeat when quiet, and ``$status`` counts the events. A
``vardkedja`` subscription beside it keeps its own JSON. Every FHIR body parses with the
R4B models; bad Subscriptions are refused naming the element."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.subscription import Subscription
from standardwebhooks.webhooks import Webhook

from services.fhir import subscriptions as fhir_subscriptions
from services.fhir.app import BASE, create_fhir_app
from services.notify.content import looks_like_personnummer
from services.notify.dispatch import Dispatcher
from services.notify.fhir_backport import TOPIC, queue_heartbeats
from services.notify.models import WebhookSubscription
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.messaging.events.payloads import REFERRAL_STATUS_CHANGED_V1, ReferralStatusChangedV1
from tests.conftest import ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    INTAKE,
    OTHER_UNIT,
    auth,
    handle,
    received,
    subscribe,
    work_of,
)
from tests.integration.notify.servers import Received, WebhookReceiver

FHIR = "application/fhir+json"
FACADE = "http://fhir"
FHIR_BASE = FACADE + BASE
B = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


@pytest.fixture
async def facade(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Växjö's FHIR facade reaching its real notify service in process."""
    fhir_app = create_fhir_app(
        member=ORG_VAXJO, transports={"notify": httpx.ASGITransport(app=app)}
    )
    async with fhir_app.router.lifespan_context(fhir_app):
        transport = httpx.ASGITransport(app=fhir_app)
        async with httpx.AsyncClient(transport=transport, base_url=FACADE) as c:
            yield c


def backport(
    endpoint: str, *, unit: str | None = INTAKE, heartbeat: int | None = 60
) -> dict[str, Any]:
    """A backport Subscription as a case system sends it."""
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": FHIR,
        "_payload": {
            "extension": [{"url": B + "backport-payload-content", "valueCode": "id-only"}]
        },
    }
    if heartbeat is not None:
        channel["extension"] = [
            {"url": B + "backport-heartbeat-period", "valueUnsignedInt": heartbeat}
        ]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [B + "backport-subscription"]},
        "status": "requested",
        "reason": "Treserva",
        "criteria": TOPIC,
        "channel": channel,
    }
    if unit is not None:
        resource["_criteria"] = {
            "extension": [
                {
                    "url": B + "backport-filter-criteria",
                    "valueString": f"Task?owner=Organization/{unit}",
                }
            ]
        }
    return resource


def fhir_body(r: httpx.Response, model: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR)
    body: dict[str, Any] = r.json()
    model.model_validate(body)
    return body


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """The SubscriptionStatus Parameters of a notification or $status Bundle, by name."""
    parameters = bundle["entry"][0]["resource"]
    Parameters.model_validate(parameters)
    assert parameters["meta"]["profile"] == [B + "backport-subscription-status-r4"]
    return {p["name"]: p for p in parameters["parameter"]}


def status_changed(task_id: str, unit_id: str = INTAKE, status: str = "accepted") -> Any:
    return REFERRAL_STATUS_CHANGED_V1, ReferralStatusChangedV1(
        referral_id=task_id,
        kind="kontaktbegaran",
        unit_id=unit_id,
        direction="incoming",
        old_status="acknowledged",
        new_status=status,
        changed_at=utcnow(),
    )


async def arrivals(dispatcher: Dispatcher, receiver: WebhookReceiver, n: int) -> list[Received]:
    """Dispatch until the receiver holds ``n`` requests."""

    async def check() -> bool:
        await dispatcher.dispatch_batch()
        return len(receiver.received) >= n

    await eventually(check, within=30, what=f"{n} webhooks at the receiver")
    return receiver.received


def notification(item: Received, secret: str) -> dict[str, Any]:
    """A received notification: signed (verified as a receiver would), FHIR, a history Bundle."""
    Webhook(secret).verify(item.body, item.headers)
    assert item.headers["content-type"] == FHIR
    bundle: dict[str, Any] = json.loads(item.body)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    assert bundle["id"] == item.webhook_id
    return bundle


async def create(facade: httpx.AsyncClient, endpoint: str, **kw: Any) -> dict[str, Any]:
    r = await facade.post(f"{BASE}/Subscription", json=backport(endpoint, **kw), headers=auth())
    return fhir_body(r, Subscription, 201)


class TestABackportSubscriptionThroughTheFacade:
    async def test_handshake_event_heartbeat_and_status(
        self,
        facade: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        created = await create(facade, receiver.url)
        assert created["status"] == "requested"
        [secret_ext] = created["extension"]
        assert secret_ext["url"] == fhir_subscriptions.SECRET_EXT
        secret = secret_ext["valueString"]
        assert secret.startswith("whsec_")
        sub_id = created["id"]
        sub_url = f"{FHIR_BASE}/Subscription/{sub_id}"

        # The handshake, signed with that secret; the subscription becomes active.
        [shake] = await arrivals(dispatcher, receiver, 1)
        params = status_of(notification(shake, secret))
        assert params["type"]["valueCode"] == "handshake"
        assert params["subscription"]["valueReference"]["reference"] == sub_url
        assert params["topic"]["valueCanonical"] == TOPIC
        assert params["events-since-subscription-start"]["valueString"] == "0"

        async def active() -> bool:
            await dispatcher.dispatch_batch()
            r = await facade.get(f"{BASE}/Subscription/{sub_id}", headers=auth())
            return bool(fhir_body(r, Subscription)["status"] == "active")

        await eventually(active, within=30, what="the subscription active after its handshake")
        read = fhir_body(
            await facade.get(f"{BASE}/Subscription/{sub_id}", headers=auth()), Subscription
        )
        assert "extension" not in read  # the secret is answered once

        # A task of the unit changes status: one id-only event; a new referral is not a topic
        # event, nor is another unit's task.
        task_id = new_id()
        await handle(db, settings, status_changed(task_id))
        await handle(db, settings, received())
        await handle(db, settings, status_changed(new_id(), unit_id=OTHER_UNIT))
        await arrivals(dispatcher, receiver, 2)
        await dispatcher.dispatch_batch()
        assert len(receiver.received) == 2
        event = notification(receiver.received[1], secret)
        params = status_of(event)
        assert params["type"]["valueCode"] == "event-notification"
        assert params["status"]["valueCode"] == "active"
        assert params["events-since-subscription-start"]["valueString"] == "1"
        parts = {p["name"]: p for p in params["notification-event"]["part"]}
        task_url = f"{FHIR_BASE}/Task/{task_id}"
        assert parts["event-number"]["valueString"] == "1"
        assert parts["focus"]["valueReference"]["reference"] == task_url
        # id-only: the Task's full URL and nothing of it.
        [focus] = event["entry"][1:]
        assert focus["fullUrl"] == task_url
        assert "resource" not in focus
        text = receiver.received[1].body.decode()
        assert not looks_like_personnummer(text)
        assert "kontaktbegaran" not in text
        assert "accepted" not in text

        # Quiet for the period: the heartbeat job (driven directly) sends one only then.
        async with db.transaction() as session:
            assert await queue_heartbeats(work_of(session, settings)) == 0
            sub = await session.get(WebhookSubscription, sub_id)
            assert sub is not None
            assert sub.last_sent_at is not None
            sub.last_sent_at -= dt.timedelta(seconds=60)  # the period passed without a word
        async with db.transaction() as session:
            assert await queue_heartbeats(work_of(session, settings)) == 1
        await arrivals(dispatcher, receiver, 3)
        params = status_of(notification(receiver.received[2], secret))
        assert params["type"]["valueCode"] == "heartbeat"
        assert params["events-since-subscription-start"]["valueString"] == "1"
        assert "notification-event" not in params

        # A second event is number 2; $status counts both.
        await handle(db, settings, status_changed(task_id, status="in_progress"))
        await arrivals(dispatcher, receiver, 4)
        params = status_of(notification(receiver.received[3], secret))
        assert {p["name"]: p for p in params["notification-event"]["part"]}["event-number"][
            "valueString"
        ] == "2"
        found = fhir_body(
            await facade.get(f"{BASE}/Subscription/{sub_id}/$status", headers=auth()), Bundle
        )
        assert found["type"] == "searchset"
        params = status_of(found)
        assert params["status"]["valueCode"] == "active"
        assert params["type"]["valueCode"] == "query-status"
        assert params["events-since-subscription-start"]["valueString"] == "2"

        # Deleted: gone, and no more notifications.
        r = await facade.delete(f"{BASE}/Subscription/{sub_id}", headers=auth())
        assert r.status_code == 204
        gone = await facade.get(f"{BASE}/Subscription/{sub_id}", headers=auth())
        fhir_body(gone, OperationOutcome, 404)

    async def test_a_failing_handshake_leaves_the_subscription_in_error(
        self, facade: httpx.AsyncClient, receiver: WebhookReceiver, dispatcher: Dispatcher
    ) -> None:
        receiver.script[:] = [500]
        created = await create(facade, receiver.url, heartbeat=None)
        await arrivals(dispatcher, receiver, 1)

        async def in_error() -> bool:
            await dispatcher.record_done()
            r = await facade.get(f"{BASE}/Subscription/{created['id']}", headers=auth())
            return bool(fhir_body(r, Subscription)["status"] == "error")

        await eventually(in_error, within=30, what="the subscription in error")
        # notify's retry rules apply: the next attempt succeeds and it becomes active.
        await arrivals(dispatcher, receiver, 2)

        async def active() -> bool:
            await dispatcher.dispatch_batch()
            r = await facade.get(f"{BASE}/Subscription/{created['id']}", headers=auth())
            return bool(fhir_body(r, Subscription)["status"] == "active")

        await eventually(active, within=30, what="the subscription active after a retry")


class TestAVardkedjaSubscriptionIsUnchanged:
    async def test_beside_a_fhir_one_it_keeps_notify_json(
        self,
        facade: httpx.AsyncClient,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        dispatcher: Dispatcher,
        db: Database,
        settings: Settings,
    ) -> None:
        plain = await subscribe(client, receiver.url, event_types=["referral.status_changed"])
        assert plain["format"] == "vardkedja"
        assert plain["fhir_status"] is None
        fhir_sub = await create(facade, receiver.url, heartbeat=None)
        await arrivals(dispatcher, receiver, 1)  # the FHIR one's handshake
        task_id = new_id()
        await handle(db, settings, status_changed(task_id))
        received_all = await arrivals(dispatcher, receiver, 3)
        [plain_item] = [r for r in received_all if r.headers["content-type"] == "application/json"]
        Webhook(plain["secret"]).verify(plain_item.body, plain_item.headers)
        body = json.loads(plain_item.body)
        assert body["type"] == "referral.status_changed"
        assert body["data"]["subject_id"] == task_id
        # The facade does not show notify's own subscriptions.
        r = await facade.get(f"{BASE}/Subscription/{plain['id']}", headers=auth())
        fhir_body(r, OperationOutcome, 404)
        assert fhir_sub["id"] != plain["id"]


class TestBadSubscriptionsAreRefused:
    @pytest.mark.parametrize(
        ("change", "status", "element"),
        [
            (
                lambda s: s.update(criteria="https://example.org/Topic/x"),
                422,
                "Subscription.criteria",
            ),
            (lambda s: s["channel"].update(type="email"), 422, "Subscription.channel.type"),
            (
                lambda s: s["channel"].update(payload="application/json"),
                422,
                "Subscription.channel.payload",
            ),
            (
                lambda s: s["channel"]["_payload"]["extension"][0].update(
                    valueCode="full-resource"
                ),
                422,
                f"Subscription.channel.payload.extension('{B}backport-payload-content')",
            ),
            (
                lambda s: s["_criteria"]["extension"][0].update(valueString="Task?status=accepted"),
                422,
                f"Subscription.criteria.extension('{B}backport-filter-criteria')",
            ),
            (
                lambda s: s["channel"]["extension"][0].update(valueUnsignedInt=1),
                422,
                f"Subscription.channel.extension('{B}backport-heartbeat-period')",
            ),
            (
                lambda s: s["channel"].update(endpoint="ftp://files.vaxjo.example/x"),
                422,
                "Subscription.channel.endpoint",
            ),
            (lambda s: s.pop("channel"), 400, "Subscription.channel"),
            (lambda s: s.update(resourceType="Task"), 400, "Subscription"),
        ],
    )
    async def test_the_element_is_named(
        self,
        facade: httpx.AsyncClient,
        receiver: WebhookReceiver,
        change: Any,
        status: int,
        element: str,
    ) -> None:
        resource = backport(receiver.url)
        change(resource)
        r = await facade.post(f"{BASE}/Subscription", json=resource, headers=auth())
        [issue] = fhir_body(r, OperationOutcome, status)["issue"]
        assert issue["expression"] == [element]

    async def test_another_units_filter_is_forbidden(
        self, facade: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        r = await facade.post(
            f"{BASE}/Subscription", json=backport(receiver.url, unit=OTHER_UNIT), headers=auth()
        )
        fhir_body(r, OperationOutcome, 403)

    async def test_without_a_filter_the_owner_is_the_tokens_unit(
        self, facade: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        created = await create(facade, receiver.url, unit=None)
        [owner] = created["_criteria"]["extension"]
        assert owner["valueString"] == f"Task?owner=Organization/{INTAKE}"


def test_the_capability_entry_is_valid() -> None:
    entry = fhir_subscriptions.subscription_capabilities()
    CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-07",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [{"mode": "server", "resource": [entry]}],
        }
    )

"""Issue 23's FHIR tests across processes: Region Kronoberg and Växjö kommun each run their
four services and their FHIR facade (every API and worker a process of its own) over the
broker, and an independent FHIR client (fhirpy, on aiohttp) drives a whole closed loop only
through the two facades: the region creates a Task, the kommun finds it by owner and
status, accepts and completes it with an outcome, the region sees it; a subscription at
the kommun receives and verifies its handshake and notifications; paging over 250 tasks
with ``_count=20`` loses and repeats nothing. Every answer parses as FHIR (fhir.resources)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task
from fhirpy import AsyncFHIRClient

from shared.config import SERVICES
from shared.messaging.broker import Broker
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.e2e.test_referral_federation import (
    Site,
    auth,
    consent_copy_arrives,
    demo_units,
    synthetic_person,
    two_member_federation,
    unit_id,
    written_consent,
)
from tests.helpers.harness import eventually
from tests.integration.notify.servers import WebhookReceiver
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e

BEROENDE = "Beroendemottagningen Växjö"
SOC = "Socialtjänstens mottagning vuxna Växjö"
CS = "https://vardkedja.se/fhir/CodeSystem/"
EXT = "https://vardkedja.se/fhir/StructureDefinition/"
B = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TOPIC = "https://vardkedja.se/fhir/SubscriptionTopic/task-status-changed"
PAGED = 250


@pytest.fixture
async def federation(
    private_broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    urls = {
        (orgnr, s): await databases.new(f"{s}-{orgnr}")
        for orgnr in (ORG_REGION, ORG_VAXJO)
        for s in SERVICES
    }
    fed = two_member_federation(
        urls,
        tmp_path / "var",
        private_broker.bootstrap,
        VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE="true",  # the case system's receiver is on loopback
    )
    fed.facade = True
    try:
        await asyncio.to_thread(fed.start)
        await fed.wait_ready(timeout=240)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


def fhir_client(
    fed: Federation, orgnr: str, headers: dict[str, str], **extra: str
) -> AsyncFHIRClient:
    [member] = [m for m in fed.members if m.orgnr == orgnr]
    return AsyncFHIRClient(
        f"http://127.0.0.1:{member.port('fhir')}/fhir/R4",
        authorization=headers["Authorization"],
        extra_headers=extra or None,
    )


def new_task(person: str, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "focus": {"reference": "#sr"},
        "contained": [
            {
                "resourceType": "ServiceRequest",
                "id": "sr",
                "status": "active",
                "intent": "order",
                "priority": "urgent",
                "code": {"coding": [{"system": CS + "referral-kind", "code": "kontaktbegaran"}]},
                "subject": {
                    "identifier": {
                        "system": "http://electronichealth.se/identifier/personnummer",
                        "value": person,
                    }
                },
                "reasonCode": [{"coding": [{"system": CS + "need", "code": "boendestod"}]}],
                "note": [{"text": "Skrivs ut inom två veckor och saknar bostad."}],
                "performer": [
                    {
                        "reference": f"Organization/{unit}",
                        "identifier": {"system": "urn:oid:2.5.4.97", "value": ORG_VAXJO},
                    }
                ],
                "extension": [
                    {"url": EXT + "children-in-household", "valueCode": "no"},
                    {"url": EXT + "details", "valueString": '{"kommunkod": "0780"}'},
                ],
            }
        ],
    }


def business(task: dict[str, Any]) -> str:
    return str(task["businessStatus"]["coding"][0]["code"])


async def step(
    fed: Federation, token: dict[str, str], task: dict[str, Any], to: str, **extra: Any
) -> dict[str, Any]:
    """The receiving unit's step: the Task as read, with the new businessStatus, PUT back
    with If-Match (fhirpy's update, the client sending the version it read)."""
    changed = {
        **task,
        "businessStatus": {"coding": [{"system": CS + "task-business-status", "code": to}]},
        **extra,
    }
    client = fhir_client(fed, ORG_VAXJO, token, **{"If-Match": f'W/"{task["meta"]["versionId"]}"'})
    saved = await client.resource("Task", **changed).save()
    out: dict[str, Any] = saved.serialize()
    Task.model_validate(out)
    return out


async def test_a_closed_loop_through_two_facades_with_fhirpy(federation: Federation) -> None:
    region_m, vaxjo_m = federation.members
    receiver = await WebhookReceiver().start()
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            replica = await demo_units(federation, http)
            beroende = unit_id(replica, ORG_REGION, BEROENDE)
            soc = unit_id(replica, ORG_VAXJO, SOC)
            region = Site(http, region_m)
            person = synthetic_person(623_001)
            consent_rw = auth(ORG_REGION, beroende, ["consent:read", "consent:write"])
            r = await region.post("consent", "/v1/consents", written_consent(person), consent_rw)
            assert r.status_code == 201, r.text
            await consent_copy_arrives(Site(http, vaxjo_m), ORG_VAXJO, soc, r.json()["id"])

        sender = auth(ORG_REGION, beroende, ["referral:read", "referral:write"])
        intake = auth(
            ORG_VAXJO, soc, ["referral:read", "referral:write", "notify:read", "notify:write"]
        )

        # The kommun's case system subscribes to its unit's tasks (the R5 backport).
        kommun = fhir_client(federation, ORG_VAXJO, intake)
        subscription = await kommun.resource(
            "Subscription",
            meta={"profile": [B + "backport-subscription"]},
            status="requested",
            reason="Ärendesystemet",
            criteria=TOPIC,
            _criteria={
                "extension": [
                    {
                        "url": B + "backport-filter-criteria",
                        "valueString": f"Task?owner=Organization/{soc}",
                    }
                ]
            },
            channel={
                "type": "rest-hook",
                "endpoint": receiver.url,
                "payload": "application/fhir+json",
                "_payload": {
                    "extension": [{"url": B + "backport-payload-content", "valueCode": "id-only"}]
                },
            },
        ).save()
        created = subscription.serialize()
        Subscription.model_validate(created)
        [secret] = [
            e["valueString"] for e in created["extension"] if e["url"].endswith("webhook-secret")
        ]
        receiver.secrets.append(secret)

        async def handshake() -> bool:
            return any(b'"handshake"' in r.body for r in receiver.verified())

        await eventually(handshake, within=60, what="the subscription's handshake, signed")

        # The region sends: a Task with its ServiceRequest contained.
        region_fhir = fhir_client(federation, ORG_REGION, sender)
        sent = (await region_fhir.resource("Task", **new_task(person, soc)).save()).serialize()
        Task.model_validate(sent)
        assert (sent["status"], business(sent)) == ("requested", "sent")

        # The kommun finds it by owner and status.
        found: list[dict[str, Any]] = []

        async def in_the_inbox() -> bool:
            tasks = (
                await kommun.resources("Task")
                .search(owner=f"Organization/{soc}", status="received")
                .fetch_all()
            )
            found[:] = [t.serialize() for t in tasks if t["id"] == sent["id"]]
            return bool(found)

        await eventually(in_the_inbox, within=60, what="the Task in the kommun's inbox")
        task = found[0]
        Task.model_validate(task)
        acknowledged = await step(federation, intake, task, "acknowledged")
        accepted = await step(federation, intake, acknowledged, "accepted")
        assert accepted["status"] == "accepted"
        completed = await step(
            federation,
            intake,
            accepted,
            "completed",
            output=[
                {"type": {"text": "outcome"}, "valueString": "Boendestöd beviljat."},
                {"type": {"text": "decision"}, "valueCode": "granted"},
                {"type": {"text": "intervention"}, "valueCode": "boendestod"},
                {"type": {"text": "started_on"}, "valueDate": "2026-12-14"},
            ],
        )
        assert completed["status"] == "completed"

        # The region sees it completed, with the outcome.
        async def completed_at_region() -> bool:
            seen = (await region_fhir.reference("Task", sent["id"]).to_resource()).serialize()
            Task.model_validate(seen)
            return seen["status"] == "completed" and any(
                o.get("valueString") == "Boendestöd beviljat." for o in seen.get("output", [])
            )

        await eventually(completed_at_region, within=60, what="completed at the region")

        # Every step reached the case system: id-only, signed, the Task's full URL.
        async def notified() -> bool:
            events = [
                json.loads(r.body) for r in receiver.verified() if b"event-notification" in r.body
            ]
            focus = {
                p.get("valueReference", {}).get("reference")
                for b in events
                for part in b["entry"][0]["resource"]["parameter"]
                if part["name"] == "notification-event"
                for p in part["part"]
                if p["name"] == "focus"
            }
            return len(events) >= 3 and all(f.endswith(f"/Task/{sent['id']}") for f in focus)

        await eventually(notified, within=60, what="the steps notified to the case system")
        for r in receiver.verified():
            Bundle.model_validate(json.loads(r.body))
            assert person.encode() not in r.body
    finally:
        await receiver.stop()


async def test_paging_over_250_tasks_loses_and_repeats_nothing(federation: Federation) -> None:
    region_m, vaxjo_m = federation.members
    async with httpx.AsyncClient(timeout=30) as http:
        replica = await demo_units(federation, http)
        beroende = unit_id(replica, ORG_REGION, BEROENDE)
        soc = unit_id(replica, ORG_VAXJO, SOC)
        region = Site(http, region_m)
        person = synthetic_person(623_101)
        consent_rw = auth(ORG_REGION, beroende, ["consent:read", "consent:write"])
        r = await region.post("consent", "/v1/consents", written_consent(person), consent_rw)
        assert r.status_code == 201, r.text
        await consent_copy_arrives(Site(http, vaxjo_m), ORG_VAXJO, soc, r.json()["id"])
        sender = auth(ORG_REGION, beroende, ["referral:read", "referral:write"])
        url = f"http://127.0.0.1:{region_m.port('fhir')}/fhir/R4/Task"
        gate = asyncio.Semaphore(8)

        async def send(i: int) -> str:
            async with gate:
                answer = await http.post(
                    url,
                    json=new_task(person, soc),
                    headers={**sender, "Idempotency-Key": f"paging-{i:04d}"},
                )
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])

        sent = set(await asyncio.gather(*(send(i) for i in range(PAGED))))
        assert len(sent) == PAGED

    intake = auth(ORG_VAXJO, soc, ["referral:read"])
    kommun = fhir_client(federation, ORG_VAXJO, intake)

    async def all_delivered() -> bool:
        tasks = (
            await kommun.resources("Task").search(owner=f"Organization/{soc}").limit(20).fetch_all()
        )
        return {t["id"] for t in tasks} >= sent

    await eventually(all_delivered, within=180, what=f"{PAGED} tasks in the kommun's inbox")
    # Page by page, following next links, as any client does.
    seen: list[str] = []
    pages = 0
    async with httpx.AsyncClient(timeout=30, headers=intake) as http:
        next_url: str | None = (
            f"http://127.0.0.1:{vaxjo_m.port('fhir')}/fhir/R4/Task?owner=Organization/{soc}&_count=20"
        )
        while next_url:
            page = (await http.get(next_url)).json()
            Bundle.model_validate(page)
            pages += 1
            assert len(page.get("entry", [])) <= 20
            seen += [e["resource"]["id"] for e in page.get("entry", [])]
            next_url = next(
                (link["url"] for link in page["link"] if link["relation"] == "next"), None
            )
    assert len(seen) == len(set(seen)), "a task repeated across pages"
    assert set(seen) == sent, "a task lost across pages"
    assert pages >= PAGED // 20

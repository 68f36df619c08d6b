"""Issue 6's done-when, with every process separate: when Region Kronoberg sends a
kontaktbegäran, Växjö's social-services intake sees it in its own inbox, its case system
receives a signed webhook and its functional mailbox an e-mail without personal data —
exactly once — and an acknowledgement that becomes overdue escalates to the coordinating
function.

Växjö kommun runs its directory and notify services (API and worker each) as processes over
the real broker; the intake's functional mailbox and the coordinating function come from
Växjö's own directory entries. The referral service does not exist yet, so the test puts
the ``referral.received`` event on Växjö's internal topic as that service will. The case
system (an HTTP receiver verifying Standard Webhooks signatures) and the mailbox (aiosmtpd)
are real local servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.notify.content import looks_like_personnummer
from shared.config import KafkaSettings
from shared.data.db import new_id
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.events.payloads import REFERRAL_RECEIVED_V1, ReferralReceivedV1
from shared.messaging.processes import free_port_block
from tests.conftest import (
    ORG_REGION,
    ORG_VAXJO,
    DatabaseFactory,
    broker_client_env,
)
from tests.helpers.harness import eventually
from tests.integration.notify.publish import event_of, publish
from tests.integration.notify.servers import SmtpServer, WebhookReceiver
from vardkedja.federation import Federation, Member

pytestmark = pytest.mark.e2e

MAILBOX = "socialtjanst.mottagning@vaxjo.example"
COORDINATOR_MAILBOX = "vardkedjekoordinator@vaxjo.example"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def federation(
    broker: Broker, databases: DatabaseFactory, tmp_path: Path, smtp: SmtpServer
) -> AsyncIterator[Federation]:
    vaxjo = Member(ORG_VAXJO, "Växjö kommun", "kommun", free_port_block(4))
    urls = {}
    if databases.backend == "postgres":
        for service in ("directory", "notify"):
            urls[(vaxjo.orgnr, service)] = await databases.new()
    fed = Federation(
        members=[vaxjo],
        services=["directory", "notify"],
        data_dir=tmp_path / "var",
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=20,
        broker_env=broker_client_env(broker.bootstrap),
        database_url_for=urls,
        extra_env={
            "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000",
            "VK_NOTIFY__SMTP__HOST": "127.0.0.1",
            "VK_NOTIFY__SMTP__PORT": str(smtp.port),
            "VK_NOTIFY__SMTP__TLS": "none",
            "VK_NOTIFY__SMTP__SENDER": "vardkedja@vaxjo.example",
            "VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE": "true",  # the case system is on loopback
            "VK_NOTIFY__LINK_BASE_URL": "https://vardkedja.vaxjo.example",
            "VK_NOTIFY__REMIND_BEFORE_S": "2",
            "VK_NOTIFY__ESCALATE_AFTER_S": "1",
            "VK_NOTIFY__TIMER_POLL_INTERVAL_S": "0.2",
            "VK_NOTIFY__DISPATCH_POLL_INTERVAL_S": "0.2",
        },
    )
    try:
        await asyncio.to_thread(fed.start)
        await fed.wait_ready(timeout=120)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


def _auth(*scopes: str, unit: str | None = None, roles: tuple[str, ...] = ()) -> dict[str, str]:
    token = mint_token(sub="e2e", org=ORG_VAXJO, scopes=scopes, unit=unit, roles=roles)
    return {"Authorization": f"Bearer {token}"}


ADMIN = _auth("directory:write", "notify:read", "notify:write", roles=("member_admin",))


async def _until(check: Callable[[], Any], what: str, within: float = 60) -> float:
    async def wrapped() -> bool:
        result = check()
        return bool(await result) if asyncio.iscoroutine(result) else bool(result)

    return await eventually(wrapped, within=within, what=what)


async def test_a_kontaktbegaran_reaches_vaxjos_intake_on_every_channel_once_and_escalates(
    federation: Federation, smtp: SmtpServer, record_property: Callable[[str, object], None]
) -> None:
    [vaxjo] = federation.members
    directory = f"http://127.0.0.1:{vaxjo.port('directory')}"
    notify = f"http://127.0.0.1:{vaxjo.port('notify')}"
    assert len({p.process.pid for p in federation.procs}) == 4
    receiver = await WebhookReceiver().start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            # Växjö's directory: the intake with its functional mailbox, and the coordinator.
            units = {}
            for name, kind, email in [
                ("Socialtjänstens mottagning vuxna", "socialtjanstens_mottagning", MAILBOX),
                ("Vårdkedjekoordinator Växjö", "vardkedjekoordinator", COORDINATOR_MAILBOX),
            ]:
                r = await client.post(
                    f"{directory}/v1/units",
                    json={
                        "name": name,
                        "kind": kind,
                        "kommunkoder": ["0780"],
                        "contact_paths": [
                            {"reason": "Ansökan", "channel": "inbox"},
                            {"reason": "Frågor", "channel": "functional_email", "email": email},
                        ],
                    },
                    headers=ADMIN,
                )
                assert r.status_code == 201, r.text
                units[kind] = r.json()["id"]
            intake, coordinator = units["socialtjanstens_mottagning"], units["vardkedjekoordinator"]
            intake_auth = _auth("notify:read", "notify:write", unit=intake)

            async def notify_knows_the_units() -> bool:
                r1 = await client.get(f"{notify}/v1/units/{intake}/channels", headers=ADMIN)
                r2 = await client.get(f"{notify}/v1/units/{coordinator}/channels", headers=ADMIN)
                return bool(
                    r1.json()["mailbox"] == MAILBOX and r2.json()["kind"] == "vardkedjekoordinator"
                )

            await _until(notify_knows_the_units, "notify learns the units from the directory")

            # The intake's case system subscribes (the unit itself, with its own token).
            r = await client.post(
                f"{notify}/v1/webhook-subscriptions",
                json={
                    "unit_id": intake,
                    "url": receiver.url,
                    "event_types": ["referral.received", "deadline.overdue"],
                },
                headers={**intake_auth, "Idempotency-Key": "treserva-subscription-1"},
            )
            assert r.status_code == 201, r.text
            receiver.secrets = [r.json()["secret"]]

            # Region Kronoberg's kontaktbegäran, as Växjö's referral service will announce it.
            referral_id = new_id()
            payload = ReferralReceivedV1(
                referral_id=referral_id,
                kind="kontaktbegaran",
                unit_id=intake,
                sender_orgnr=ORG_REGION,
                sender_unit_id="region-kronoberg-beroendemottagning",
                urgency="normal",
                acknowledge_by=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4),
                received_at=dt.datetime.now(dt.UTC),
            )
            event = event_of(ORG_VAXJO, "referral", REFERRAL_RECEIVED_V1, payload, key=referral_id)
            kafka = KafkaSettings(bootstrap_servers=federation.bootstrap_servers)
            sent = time.monotonic()
            await publish(kafka, topics.internal(ORG_VAXJO), event, times=2)  # and redelivered

            inbox_url = f"{notify}/v1/units/{intake}/notifications"

            async def arrived_everywhere() -> bool:
                inbox = (await client.get(inbox_url, headers=intake_auth)).json()
                received = [i for i in inbox["items"] if i["kind"] == "referral.received"]
                return bool(received and receiver.verified() and smtp.to(MAILBOX))

            await _until(arrived_everywhere, "inbox, case system and mailbox")
            record_property(
                "seconds_event_to_all_three_channels", round(time.monotonic() - sent, 3)
            )

            # The overdue acknowledgement: told to the unit, then escalated to the coordinator.
            coordinator_inbox = f"{notify}/v1/units/{coordinator}/notifications"
            coordinator_auth = _auth("notify:read", unit=coordinator)

            async def escalated() -> bool:
                page = (await client.get(coordinator_inbox, headers=coordinator_auth)).json()
                return any(i["kind"] == "deadline.escalated" for i in page["items"])

            await _until(escalated, "the escalation to the coordinating function")
            await _until(lambda: len(smtp.to(COORDINATOR_MAILBOX)) >= 1, "the coordinator's e-mail")
            await _until(lambda: len(receiver.received) >= 2, "the overdue webhook")

            # Exactly once per channel, though the event was delivered twice.
            inbox = (await client.get(inbox_url, headers=intake_auth)).json()
            kinds = [i["kind"] for i in inbox["items"]]
            # (The reminder is skipped if a loaded machine consumed the event inside its window.)
            assert len(kinds) == len(set(kinds))
            assert (
                {"referral.received", "deadline.overdue"}
                <= set(kinds)
                <= {
                    "referral.received",
                    "deadline.reminder",
                    "deadline.overdue",
                }
            )
            [item] = [i for i in inbox["items"] if i["kind"] == "referral.received"]
            assert item["subject_id"] == referral_id
            assert item["counterpart_orgnr"] == ORG_REGION
            hooks = [json.loads(r.body) for r in receiver.verified()]
            assert sorted(h["type"] for h in hooks) == ["deadline.overdue", "referral.received"]
            assert len(receiver.received) == len(receiver.verified()) == 2
            assert len({r.webhook_id for r in receiver.received}) == 2
            intake_mail = smtp.to(MAILBOX)
            subjects = sorted(str(m["Subject"]) for m in intake_mail)
            assert subjects.count("vårdkedja: Ny Kontaktbegäran i inkorgen") == 1

            # No personal data, no ids beyond the link: what arrived, where, by when, a link.
            for message in intake_mail + smtp.to(COORDINATOR_MAILBOX):
                text = message.get_content()
                assert not looks_like_personnummer(str(message["Subject"]) + text)
                assert referral_id not in text
                assert "https://vardkedja.vaxjo.example/v1/notifications/" in text
            [escalation] = [
                i
                for i in (await client.get(coordinator_inbox, headers=coordinator_auth)).json()[
                    "items"
                ]
                if i["kind"] == "deadline.escalated"
            ]
            assert escalation["subject_id"] == referral_id
            assert escalation["unit_id"] == intake

            # Another unit of Växjö sees none of it; another member's token is refused.
            other = await client.get(inbox_url, headers=_auth("notify:read", unit=coordinator))
            assert other.status_code == 403
            foreign = mint_token(
                sub="e2e", org=ORG_REGION, scopes=["notify:read"], roles=["member_admin"]
            )
            r = await client.get(inbox_url, headers={"Authorization": f"Bearer {foreign}"})
            assert r.status_code == 403

            # The delivery log shows each channel delivered on its first attempt.
            log = (
                await client.get(
                    f"{notify}/v1/notifications/{item['id']}/deliveries", headers=intake_auth
                )
            ).json()
            assert {(d["channel"], d["status"], d["attempts"]) for d in log} == {
                ("inbox", "delivered", 1),
                ("webhook", "delivered", 1),
                ("email", "delivered", 1),
            }
    finally:
        await receiver.stop()

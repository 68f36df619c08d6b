"""The notify worker as it runs, over the real broker: a referral.received event on the
member's internal topic reaches the unit's inbox, its case system (signed webhook) and its
functional mailbox (taken from the member's directory entry), each exactly once even when the
record is delivered again; reminders and escalation are persistent timers that fire after a
restart of the worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from services.notify.models import Delivery, Notification, Timer
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_RECEIVED_V1,
    UNIT_CHANGED_V1,
    ReferralReceivedV1,
    UnitChangedV1,
)
from shared.messaging.worker import Worker
from tests.conftest import ORG_REGION
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    COORDINATOR,
    INTAKE,
    MAILBOX,
    SPEC,
    auth,
    notify_settings,
    random_orgnr,
    subscribe,
)
from tests.integration.notify.publish import event_of, publish
from tests.integration.notify.servers import SmtpServer, WebhookReceiver


class RunningWorker:
    """A notify worker of one member, in this process, that can be stopped and started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: Worker | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> RunningWorker:
        self.worker = Worker(SPEC, self.settings)
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def stop(self) -> None:
        if self.worker is not None and self.task is not None:
            self.worker.stop()
            await asyncio.wait_for(self.task, timeout=30)
        self.worker = self.task = None


@pytest.fixture
async def member(
    broker: Broker, db_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[Settings, RunningWorker]]:
    """A member of its own (own topics and consumer group) with SMTP configured."""
    orgnr = random_orgnr()
    settings = notify_settings(
        db_url,
        orgnr=orgnr,
        bootstrap=broker.bootstrap,
        smtp={"host": "127.0.0.1", "port": smtp.port, "tls": "none"},
        coordinator_unit_ids=[COORDINATOR],
        # The reminder must still lie ahead when a slow machine consumes the event.
        remind_before_s=4,
        escalate_after_s=1,
    )
    running = RunningWorker(settings)
    yield settings, running
    await running.stop()


def referral(orgnr: str, *, acknowledge_by: dt.datetime) -> tuple[str, ReferralReceivedV1]:
    referral_id = new_id()
    return referral_id, ReferralReceivedV1(
        referral_id=referral_id,
        kind="kontaktbegaran",
        unit_id=INTAKE,
        sender_orgnr=ORG_REGION,
        urgency="normal",
        acknowledge_by=acknowledge_by,
        received_at=utcnow(),
    )


async def notifications(db: Database) -> list[Notification]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Notification).order_by(Notification.seq))
        return list(rows.scalars())


class TestWorker:
    async def test_an_event_reaches_inbox_case_system_and_mailbox_exactly_once(
        self,
        member: tuple[Settings, RunningWorker],
        db: Database,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        smtp: SmtpServer,
    ) -> None:
        settings, running = member
        orgnr = settings.member.orgnr
        sub = await subscribe(client, receiver.url)
        receiver.secrets = [sub["secret"]]
        running.start()

        # The mailbox comes from the member's own directory entry on vardkedja.directory.
        unit = UnitChangedV1(
            unit_id=INTAKE,
            owner_orgnr=orgnr,
            name="Socialtjänstens mottagning vuxna",
            kind="socialtjanstens_mottagning",
            contact_paths=[{"reason": "Frågor", "channel": "functional_email", "email": MAILBOX}],
            status="active",
            version=1,
            changed_at=utcnow(),
        )
        await publish(
            settings.kafka,
            topics.DIRECTORY,
            event_of(orgnr, "directory", UNIT_CHANGED_V1, unit, key=INTAKE),
        )

        async def mailbox_known() -> bool:
            r = await client.get(f"/v1/units/{INTAKE}/channels", headers=auth())
            return bool(r.json()["mailbox"] == MAILBOX)

        await eventually(mailbox_known, within=60, what="the mailbox from the directory")

        referral_id, payload = referral(orgnr, acknowledge_by=utcnow() + dt.timedelta(days=2))
        event = event_of(orgnr, "referral", REFERRAL_RECEIVED_V1, payload, key=referral_id)
        # Delivered twice, as Kafka may (a restarted producer resends).
        await publish(settings.kafka, topics.internal(orgnr), event, times=2)

        async def everywhere() -> bool:
            inbox = await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())
            return (
                len(inbox.json()["items"]) >= 1
                and len(receiver.verified()) >= 1
                and len(smtp.to(MAILBOX)) >= 1
            )

        await eventually(everywhere, within=60, what="inbox, webhook and e-mail")

        # An event whose id is a personnummer is refused (dead-lettered), never repeated.
        _, bad = referral(orgnr, acknowledge_by=utcnow() + dt.timedelta(days=2))
        bad = bad.model_copy(update={"referral_id": "191212121212"})
        await publish(
            settings.kafka,
            topics.internal(orgnr),
            event_of(orgnr, "referral", REFERRAL_RECEIVED_V1, bad, key=referral_id),
        )
        # A later event on the same partition key shows the earlier ones were consumed.
        _, later = referral(orgnr, acknowledge_by=utcnow() + dt.timedelta(days=2))
        later = later.model_copy(update={"referral_id": referral_id + "-2"})
        await publish(
            settings.kafka,
            topics.internal(orgnr),
            event_of(orgnr, "referral", REFERRAL_RECEIVED_V1, later, key=referral_id),
        )

        async def later_done() -> bool:
            return len(receiver.received) >= 2 and len(smtp.to(MAILBOX)) >= 2

        await eventually(later_done, within=60, what="the later event everywhere")
        await running.stop()
        # A clean stop records what was sent: nothing is left to be sent again.
        async with db.sessionmaker() as session:
            rows = (await session.execute(select(Delivery))).scalars().all()
        assert {(d.channel, d.status) for d in rows} == {
            ("inbox", "delivered"),
            ("webhook", "delivered"),
            ("email", "delivered"),
        }

        inbox = (await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())).json()
        subjects = [i["subject_id"] for i in inbox["items"]]
        assert sorted(subjects) == sorted([referral_id, referral_id + "-2"])
        hooks = [json.loads(r.body)["data"]["subject_id"] for r in receiver.verified()]
        assert sorted(hooks) == sorted(subjects)
        assert len(receiver.received) == 2
        assert len(smtp.messages) == 2
        for _env, message in smtp.messages:
            assert referral_id not in message.get_content()
        async with db.sessionmaker() as session:
            dead = (await session.execute(select(SPEC.infra.dead_letter))).mappings().all()
        assert [d["reason"] for d in dead if d["event_type"] == REFERRAL_RECEIVED_V1] == [
            "not_notifiable"
        ]

    async def test_reminder_overdue_and_escalation_fire_after_a_restart(
        self,
        member: tuple[Settings, RunningWorker],
        db: Database,
        client: httpx.AsyncClient,
    ) -> None:
        settings, running = member
        orgnr = settings.member.orgnr
        running.start()
        due = utcnow() + dt.timedelta(seconds=8)
        referral_id, payload = referral(orgnr, acknowledge_by=due)
        await publish(
            settings.kafka,
            topics.internal(orgnr),
            event_of(orgnr, "referral", REFERRAL_RECEIVED_V1, payload, key=referral_id),
        )

        async def scheduled() -> bool:
            async with db.sessionmaker() as session:
                rows = await session.execute(select(Timer).where(Timer.subject_id == referral_id))
                return len(list(rows.scalars())) == 3

        await eventually(scheduled, within=120, what="three timers scheduled")
        await running.stop()  # nothing of the schedule lives in the process

        running.start()
        kinds: list[tuple[str, str]] = []

        async def all_fired() -> bool:
            kinds[:] = [(n.kind, n.recipient) for n in await notifications(db)]
            return len(kinds) == 4

        await eventually(all_fired, within=120, what="reminder, overdue and escalation")
        assert kinds == [
            ("referral.received", INTAKE),
            ("deadline.reminder", INTAKE),
            ("deadline.overdue", INTAKE),
            ("deadline.escalated", COORDINATOR),
        ]
        escalation = await client.get(
            f"/v1/units/{COORDINATOR}/notifications", headers=auth(unit=COORDINATOR)
        )
        [item] = escalation.json()["items"]
        assert item["subject_id"] == referral_id
        assert item["unit_id"] == INTAKE  # whose deadline it was
        assert item["title"].startswith("Eskalering: Kontaktbegäran är försenad sedan ")

"""Scenario 12 (reliability.md): no personal data where it does not belong, with real traffic.

Region Kronoberg and Växjö kommun each run all four services in this process — every API
and every worker (relay, consumers, the notify dispatcher) — over a broker of their own, with
Växjö's functional mailbox on a real SMTP server (aiosmtpd) and its case system a real
webhook receiver. A realistic flow plants personal data everywhere a user can type: the
person's personnummer, another person's personnummer and a canary word in every free-text
field (the consent's note and giver, the referrals' summary and wish, the receiver's case
reference, the withdrawals' reasons). Region records a consent naming Växjö's intake, sends
two kontaktbegäran, Växjö acknowledges one, Region withdraws the other and then the consent.

Then everything that leaves a member's protected store is scanned:

- every record on every broadcast topic (topics no single member owns: ``vardkedja.directory``),
  read back from the broker from offset 0 as raw bytes, key and headers included; its type
  must be one the catalogue marks free of personal data and its fields must be the
  organisational schema's;
- every e-mail the SMTP server received and every webhook body the receiver got, checked
  against the notify templates' allow-list (``tests/integration/notify``'s payload scan);
- every notification in both members' inboxes, through the API;
- every log line of the run, at DEBUG (the libraries ``configure_logging`` pins at WARNING
  stay there, as in every process), formatted by the services' own JSON formatter;
- the Prometheus exposition;
- every record of both members' own topics (inbound, internal, dead-letter), raw.

The planted values must be found 0 times (and are found on the receiver's own inbound
topic once the receiver opens what was sealed for it: the scan is not blind). Counts go to
``var/security/payload-scan.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from sqlalchemy import func, select

from services.directory.demo import load_demo_members, load_demo_units
from services.directory.schemas import Capacity, ContactPath, TargetGroup
from services.notify.content import KINDS, looks_like_personnummer
from services.referral import siblings as referral_siblings
from services.referral.models import KnownUnit
from shared.config import KafkaSettings, Settings
from shared.data import migrations
from shared.domain.hours import OpeningHours
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.events import CATALOGUE, topics
from shared.messaging.events.payloads import (
    MEMBER_CHANGED_V1,
    UNIT_CHANGED_V1,
    MemberChangedV1,
    UnitChangedV1,
)
from shared.messaging.kafka import Consumer, OffsetProbe, ReceivedRecord, TopicPartition
from shared.messaging.worker import Worker
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.clients import ServiceClient
from shared.web.observability import SAFE_EXTRA, JsonFormatter
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory, make_settings
from tests.helpers.harness import eventually
from tests.helpers.signed import opened
from tests.integration.notify.conftest import notify_settings
from tests.integration.notify.servers import SmtpServer, WebhookReceiver
from tests.integration.notify.test_notify_payload_scan import scan_email, scan_json
from tests.security._support import personnummer, write_figures
from vardkedja.federation import ALL_SCOPES

SERVICES = ("directory", "consent", "referral", "notify")
FEDERATION = [ORG_REGION, ORG_VAXJO]
PERSON = personnummer("19790315", "482")
CHILD = personnummer("20140605", "229")  # named in free text only
CANARY = f"KANARIE{secrets.token_hex(5).upper()}"
MAILBOX = "mottagning.vuxna@vaxjo.example"
SENDER_UNIT = "Beroendemottagningen Växjö"
INTAKE_DEMO = "Socialtjänstens mottagning vuxna Växjö"
# As the notify payload scan's e-mail allow-list names the intake.
INTAKE = "Socialtjänstens mottagning vuxna"
LINK_BASE = {ORG_REGION: "https://notify.region.example", ORG_VAXJO: "https://notify.vaxjo.example"}
# configure_logging pins these at WARNING in every process (aiosqlite would print statement
# parameters at DEBUG); everything else is captured at DEBUG.
PINNED_LOGGERS = ("aiokafka", "uvicorn.access", "sqlalchemy.engine", "aiosqlite")
LOG_KEYS = {"time", "level", "logger", "message", "service", "member", "error_type"}
LOG_KEYS |= {"request_id", "trace_id", "span_id"} | SAFE_EXTRA
BROADCAST_FIELDS = {
    UNIT_CHANGED_V1: set(UnitChangedV1.model_fields),
    MEMBER_CHANGED_V1: set(MemberChangedV1.model_fields),
}
NESTED_FIELDS = {
    "contact_paths": set(ContactPath.model_fields),
    "target_groups": set(TargetGroup.model_fields),
    "opening_hours": set(OpeningHours.model_fields),
    "capacity": set(Capacity.model_fields),
}


def written_forms(pnr: str) -> set[str]:
    """Every way a personnummer ``YYYYMMDD-NNNN`` may be written."""
    twelve = pnr.replace("-", "")
    return {pnr, twelve, twelve[2:], f"{twelve[2:8]}-{twelve[8:]}"}


PLANTED = written_forms(PERSON) | written_forms(CHILD)


def free_text(what: str) -> str:
    """Free text as staff write it: a name, a number and the canary."""
    return f"{what}: Anna {CANARY} Andersson, barnet {CHILD}, ring {PERSON}."


def findings_in(text: str, where: str) -> list[str]:
    """Each planted value, canary or personnummer found in ``text``."""
    found = []
    if "KANARIE" in text.upper():
        found.append(f"{where}: canary")
    if any(form in text for form in PLANTED):
        found.append(f"{where}: planted personnummer")
    elif looks_like_personnummer(text):
        found.append(f"{where}: a personnummer")
    return found


def auth(
    org: str, unit: str | None, scopes: list[str], roles: tuple[str, ...] = ()
) -> dict[str, str]:
    token = mint_token(sub=f"staff-{unit}", org=org, unit=unit, scopes=scopes, roles=roles)
    return {"Authorization": f"Bearer {token}"}


def admin(org: str) -> dict[str, str]:
    return auth(org, None, ALL_SCOPES.split(), ("member_admin",))


# --- the federation in this process ------------------------------------------------------


@dataclass
class Member:
    """One member's four services: their apps and workers."""

    orgnr: str
    apps: dict[str, FastAPI] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def client(self, service: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.apps[service])
        return httpx.AsyncClient(transport=transport, base_url=f"http://{service}")

    async def call(
        self, service: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        async with self.client(service) as c:
            return await c.request(method, path, json=body, headers=headers)

    async def unsent(self) -> int:
        """Events still in this member's outboxes."""
        total = 0
        for service, app in self.apps.items():
            ob = load_spec(service).infra.outbox
            async with app.state.ctx.db.sessionmaker() as s:
                q = select(func.count()).select_from(ob).where(ob.c.sent_at.is_(None))
                total += int(await s.scalar(q) or 0)
        return total


def settings_of(
    service: str, orgnr: str, url: str, bootstrap: str, smtp: SmtpServer | None
) -> Settings:
    if service == "notify":
        notify: dict[str, Any] = {"link_base_url": LINK_BASE[orgnr]}
        if smtp is not None:
            notify["smtp"] = {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}
        settings = notify_settings(url, orgnr=orgnr, bootstrap=bootstrap, **notify)
    else:
        settings = make_settings(service=service, orgnr=orgnr, db_url=url, bootstrap=bootstrap)
    return settings.model_copy(update={"federation_members": list(FEDERATION)})


async def start_member(
    orgnr: str, databases: DatabaseFactory, bootstrap: str, smtp: SmtpServer | None
) -> Member:
    member = Member(orgnr)
    settings: dict[str, Settings] = {}
    for service in SERVICES:
        spec = load_spec(service)
        url = await databases.new(f"{service}-{orgnr}")
        await migrations.upgrade(spec.migrations_dir, url)
        settings[service] = settings_of(service, orgnr, url, bootstrap, smtp)
        member.apps[service] = create_app(spec, settings[service])
    # The referral service asks its own member's consent and directory services.
    clients = referral_siblings.Clients(
        consent=ServiceClient(
            base_url="http://consent",
            service="referral",
            org=orgnr,
            scopes=["consent:read"],
            transport=httpx.ASGITransport(app=member.apps["consent"]),
        ),
        directory=ServiceClient(
            base_url="http://directory",
            service="referral",
            org=orgnr,
            scopes=["directory:read"],
            transport=httpx.ASGITransport(app=member.apps["directory"]),
        ),
    )
    member.apps["referral"].state.ctx.extras["clients"] = clients
    for service in SERVICES:
        # Migrated above: alembic's global context is not safe to run in two threads at once.
        migrated = settings[service].model_copy(update={"auto_migrate": False})
        worker = Worker(load_spec(service), migrated)
        worker.ctx.extras["clients"] = clients
        member.workers.append(worker)
        member.tasks.append(asyncio.create_task(worker.run(), name=f"{orgnr}-{service}"))
    return member


async def stop_member(member: Member) -> None:
    for worker in member.workers:
        worker.stop()
    await asyncio.gather(*member.tasks, return_exceptions=True)
    for app in member.apps.values():
        await app.state.ctx.db.dispose()


# --- reading the broker back -------------------------------------------------------------


async def read_topic(kafka: KafkaSettings, topic: str) -> list[ReceivedRecord]:
    """Every record of ``topic``, from offset 0 to the log end of each partition."""
    probe = OffsetProbe(kafka, "payload-scan-probe")
    try:
        ends = await probe.end_offsets([TopicPartition(topic, p) for p in range(kafka.partitions)])
    finally:
        await probe.stop()
    consumer = Consumer(
        kafka, topics=[topic], group_id=f"payload-scan-{uuid.uuid4().hex}", client_id="scan"
    )
    await consumer.start()
    records: list[ReceivedRecord] = []
    reached: dict[TopicPartition, int] = {}
    try:

        async def all_read() -> bool:
            for tp, batch in (await consumer.poll(timeout_ms=200)).items():
                records.extend(batch)
                reached[tp] = batch[-1].offset + 1
            return all(reached.get(tp, 0) >= end for tp, end in ends.items())

        await eventually(all_read, within=60, what=f"every record of {topic}")
    finally:
        await consumer.stop()
    return records


def scan_broadcast(record: ReceivedRecord) -> list[str]:
    """A broadcast record: an organisational type, its schema's fields, nothing planted."""
    where = f"{record.topic}@{record.partition}:{record.offset}"
    problems: list[str] = []
    headers = dict(record.headers)
    raw = b"\n".join([record.key or b"", record.value or b"", *headers.values()])
    problems += findings_in(raw.decode("utf-8", "replace"), where)
    problems += [
        f"{where}: header {n}" for n in headers if not n.startswith("ce_") and n != "content-type"
    ]
    type_ = headers.get("ce_type", b"").decode("utf-8", "replace")
    kind = CATALOGUE.kinds.get(type_)
    if type_ not in BROADCAST_FIELDS or kind is None or kind.personal_data:
        return [*problems, f"{where}: type {type_!r} may not be broadcast"]
    payload = json.loads(record.value or b"{}")
    problems += [f"{where}: field {k}" for k in payload if k not in BROADCAST_FIELDS[type_]]
    for name, allowed in NESTED_FIELDS.items():
        value = payload.get(name)
        for item in value if isinstance(value, list) else [value] if value else []:
            problems += [f"{where}: field {name}.{k}" for k in item if k not in allowed]
    return problems


# --- the flow ----------------------------------------------------------------------------


@dataclass
class Scanned:
    counts: Counter[str] = field(default_factory=Counter)
    findings: dict[str, list[str]] = field(default_factory=dict)

    def add(self, channel: str, problems: list[str], n: int = 1) -> None:
        self.counts[channel] += n
        self.findings.setdefault(channel, []).extend(problems)


@pytest.fixture
async def federation(
    private_broker: Broker, databases: DatabaseFactory
) -> AsyncIterator[tuple[Member, Member, SmtpServer, WebhookReceiver]]:
    smtp = SmtpServer().start()
    receiver = await WebhookReceiver().start()
    members: list[Member] = []
    try:
        members.append(await start_member(ORG_REGION, databases, private_broker.bootstrap, None))
        members.append(await start_member(ORG_VAXJO, databases, private_broker.bootstrap, smtp))
        yield members[0], members[1], smtp, receiver
    finally:
        for member in members:
            with contextlib.suppress(Exception):
                await stop_member(member)
        await receiver.stop()
        smtp.stop()


async def create_unit(member: Member, unit: dict[str, Any], key: str) -> str:
    r = await member.call(
        "directory",
        "POST",
        "/v1/units",
        {**auth(member.orgnr, None, ["directory:write"]), "Idempotency-Key": key},
        unit,
    )
    assert r.status_code == 201, r.text
    unit_id: str = r.json()["id"]
    return unit_id


async def seed_directory(region: Member, vaxjo: Member) -> tuple[str, str]:
    """The demo's sending unit at Region and intake at Växjö, and both member records."""
    units = load_demo_units()
    [sender] = [u for u in units[ORG_REGION] if u["name"] == SENDER_UNIT]
    [intake] = [u for u in units[ORG_VAXJO] if u["name"] == INTAKE_DEMO]
    sender_id = await create_unit(region, sender, "scan-sender-unit")
    intake_id = await create_unit(vaxjo, {**intake, "name": INTAKE}, "scan-intake-unit")
    records = load_demo_members()
    for member, kind in ((region, "region"), (vaxjo, "kommun")):
        r = await member.call(
            "directory",
            "PUT",
            "/v1/member",
            auth(member.orgnr, None, ["directory:write"]),
            {**records[member.orgnr], "kind": kind},
        )
        assert r.status_code == 200, r.text
    return sender_id, intake_id


async def run_the_flow(
    region: Member, vaxjo: Member, receiver: WebhookReceiver
) -> tuple[str, str, list[str]]:
    """The realistic flow; returns the two units and the task ids."""
    sender_unit, intake = await seed_directory(region, vaxjo)

    async def region_knows_the_intake() -> bool:
        async with region.apps["referral"].state.ctx.db.sessionmaker() as s:
            return intake in set(await s.scalars(select(KnownUnit.unit_id)))

    async def vaxjo_notify_has_the_mailbox() -> bool:
        r = await vaxjo.call("notify", "GET", f"/v1/units/{intake}/channels", admin(ORG_VAXJO))
        return r.status_code == 200 and r.json().get("mailbox") == MAILBOX

    await eventually(region_knows_the_intake, within=90, what="Växjö's intake at Region")
    await eventually(vaxjo_notify_has_the_mailbox, within=90, what="the intake's mailbox")

    # Växjö's case system subscribes to every kind of notification of the member.
    r = await vaxjo.call(
        "notify",
        "POST",
        "/v1/webhook-subscriptions",
        {**admin(ORG_VAXJO), "Idempotency-Key": "scan-case-system"},
        {"url": receiver.url, "event_types": list(KINDS)},
    )
    assert r.status_code == 201, r.text
    receiver.secrets = [r.json()["secret"]]

    # A consent given orally by the person's guardian, recorded at Region.
    today = dt.datetime.now(dt.UTC).date()
    sender = auth(ORG_REGION, sender_unit, ["consent:read", "consent:write"])
    r = await region.call(
        "consent",
        "POST",
        "/v1/consents",
        {**sender, "Idempotency-Key": "scan-consent"},
        {
            "person": {"personnummer": PERSON},
            "given_by": {
                "kind": "guardian",
                "name": f"Anna {CANARY} Andersson",
                "reference": free_text("Beslut"),
            },
            "form": "oral",
            "form_note": free_text("Muntligt samtycke"),
            "purposes": ["kontaktbegaran"],
            "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO, "unit_id": intake}],
            "categories": ["contact_details", "needs_summary", "social_situation"],
            "valid_from": today.isoformat(),
            "valid_to": (today + dt.timedelta(days=90)).isoformat(),
            "person_informed": True,
        },
    )
    assert r.status_code == 201, r.text
    consent_id = r.json()["id"]
    consent_etag = r.headers.get("ETag")

    async def copy_at_vaxjo() -> bool:
        r = await vaxjo.call("consent", "GET", f"/v1/consent-copies/{consent_id}", admin(ORG_VAXJO))
        return r.status_code == 200

    await eventually(copy_at_vaxjo, within=60, what="the consent copy at Växjö")

    # Two kontaktbegäran with personal data in every free-text field.
    referral_rw = auth(ORG_REGION, sender_unit, ["referral:read", "referral:write"])
    tasks: list[dict[str, Any]] = []
    for n in (1, 2):
        r = await region.call(
            "referral",
            "POST",
            "/v1/referrals",
            {**referral_rw, "Idempotency-Key": f"scan-referral-{n}"},
            {
                "kind": "kontaktbegaran",
                "person": {"personnummer": PERSON},
                "needs": ["boendestod"],
                "summary": free_text("Sammanfattning"),
                "urgency": "urgent",
                "children_in_household": "yes",
                "persons_wish": free_text("Önskemål"),
                "recipients": [{"orgnr": ORG_VAXJO, "unit_id": intake}],
                "kontaktbegaran": {"kommunkod": "0780"},
            },
        )
        assert r.status_code == 201, r.text
        [task] = r.json()["recipients"]
        tasks.append({**task, "referral_id": r.json()["id"]})

    async def status_of(task: dict[str, Any]) -> dict[str, Any]:
        r = await region.call(
            "referral", "GET", f"/v1/referrals/{task['referral_id']}", referral_rw
        )
        assert r.status_code == 200, r.text
        [out] = r.json()["recipients"]
        return dict(out)

    async def all_delivered() -> bool:
        statuses = [(await status_of(t))["status"] for t in tasks]
        return statuses == ["delivered", "delivered"]

    await eventually(all_delivered, within=60, what="both referrals delivered")

    # Växjö acknowledges the first with its case reference.
    receiver_rw = auth(ORG_VAXJO, intake, ["referral:read", "referral:write"])
    first, second = tasks
    current = await vaxjo.call("referral", "GET", f"/v1/incoming/{first['task_id']}", receiver_rw)
    assert current.status_code == 200, current.text
    r = await vaxjo.call(
        "referral",
        "POST",
        f"/v1/incoming/{first['task_id']}/transitions",
        {**receiver_rw, "If-Match": current.headers["ETag"]},
        {"to": "acknowledged", "case_reference": f"SOC-{CANARY}"},
    )
    assert r.status_code == 200, r.text

    # Region withdraws the second (the person declined), then the consent itself.
    version = (await status_of(second))["version"]
    r = await region.call(
        "referral",
        "POST",
        f"/v1/referrals/{second['task_id']}/withdraw",
        {**referral_rw, "If-Match": f'"{version}"'},
        {"reason": free_text("Återtagen"), "by_person": True},
    )
    assert r.status_code == 200, r.text
    r = await region.call(
        "consent",
        "POST",
        f"/v1/consents/{consent_id}/withdraw",
        {**sender, **({"If-Match": consent_etag} if consent_etag else {})},
        {
            "reason": free_text("Återkallat"),
            "withdrawn_by": {"kind": "guardian", "reference": free_text("Beslut")},
        },
    )
    assert r.status_code == 200, r.text

    async def settled() -> bool:
        # The withdrawn consent also cancels the acknowledged referral it carried.
        statuses = [(await status_of(t))["status"] for t in tasks]
        kinds = {json.loads(h.body)["type"] for h in receiver.received}
        done = {"referral.received", "referral.status_changed", "consent.ended"} <= kinds
        return statuses == ["cancelled", "withdrawn"] and done

    async def drained() -> bool:
        return await region.unsent() == 0 and await vaxjo.unsent() == 0

    await eventually(settled, within=90, what="every effect of the flow")
    # Reading the referrals is audited (an event each): wait for those to be published too.
    await eventually(drained, within=60, what="every outbox published")
    return sender_unit, intake, [t["task_id"] for t in tasks]


async def inbox_items(member: Member, units: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    paths = [f"/v1/units/{u}/notifications?limit=500" for u in units]
    paths.append("/v1/roles/member_admin/notifications?limit=500")
    for path in paths:
        r = await member.call("notify", "GET", path, admin(member.orgnr))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
    return items


def scan_notification(item: dict[str, Any], link_base: str) -> list[str]:
    where = f"notification {item.get('id')}"
    problems = scan_json({k: v for k, v in item.items() if k != "link"}, where)
    link = item.get("link")
    if link is not None and not re.fullmatch(
        re.escape(link_base) + r"/v1/notifications/[0-9a-f-]{36}", str(link)
    ):
        problems.append(f"{where}.link: value not allowed")
    return problems + findings_in(json.dumps(item, ensure_ascii=False), where)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
class TestNothingPersonalLeavesTheProtectedStore:
    async def test_broadcast_mail_webhooks_notifications_logs_and_metrics_are_clean(
        self,
        federation: tuple[Member, Member, SmtpServer, WebhookReceiver],
        private_broker: Broker,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # set_level also sets the capturing handler's level: the pinned loggers first.
        for name in PINNED_LOGGERS:
            caplog.set_level(logging.WARNING, logger=name)
        caplog.set_level(logging.DEBUG)
        region, vaxjo, smtp, receiver = federation
        sender_unit, intake, task_ids = await run_the_flow(region, vaxjo, receiver)
        kafka = region.workers[0].settings.kafka
        scanned = Scanned()

        # 1. Every broadcast topic, as raw records from offset 0.
        every_topic = {t for m in (region, vaxjo) for w in m.workers for t in w.topics()}
        broadcast = sorted(t for t in every_topic if topics.member_of_topic(t) is None)
        assert broadcast == [topics.DIRECTORY]
        for topic in broadcast:
            records = await read_topic(kafka, topic)
            for record in records:
                scanned.add("broadcast_records", scan_broadcast(record))
        types = Counter(
            dict(r.headers).get("ce_type", b"").decode()
            for r in await read_topic(kafka, topics.DIRECTORY)
        )
        assert types[UNIT_CHANGED_V1] >= 2, types
        assert types[MEMBER_CHANGED_V1] >= 2, types

        # The planted values did travel where they may, to Växjö's own inbound topic, but
        # sealed for Växjö (ADR 0020): nobody else reads them there. Every record of both
        # members' own topics, read raw (key, headers, body), shows none of them.
        for orgnr in (ORG_REGION, ORG_VAXJO):
            for topic in topics.member_topics(orgnr):
                for record in await read_topic(kafka, topic):
                    raw = b"\n".join(
                        [record.key or b"", record.value or b""]
                        + [k.encode() + b"=" + v for k, v in record.headers]
                    ).decode("utf-8", "replace")
                    scanned.add("member_topic_records", findings_in(raw, f"{topic} raw"))
        inbound = await read_topic(kafka, topics.inbound(ORG_VAXJO))
        opened_text = "\n".join(
            json.dumps(opened(r.topic, r.key, r.value, list(r.headers)).data, ensure_ascii=False)
            for r in inbound
        )
        assert CANARY in opened_text
        assert PERSON.replace("-", "") in opened_text

        # 2. Every e-mail that reached the functional mailbox.
        assert smtp.to(MAILBOX)
        for envelope, message in smtp.messages:
            content = envelope.original_content or envelope.content or b""
            raw = content if isinstance(content, str) else content.decode("utf-8", "replace")
            problems = scan_email(str(message["Subject"]), message.get_content())
            scanned.add("emails", problems + findings_in(raw, f"e-mail {message['Message-ID']}"))

        # 3. Every webhook the case system received (each one signed).
        assert receiver.received
        for hook in receiver.received:
            where = f"webhook {hook.webhook_id}"
            problems = scan_json(json.loads(hook.body))
            problems += findings_in(hook.body.decode() + json.dumps(hook.headers), where)
            problems += [] if hook.verified_with else [f"{where}: signature does not verify"]
            scanned.add("webhooks", problems)

        # 4. Every notification in both members' inboxes.
        for member, units in ((region, [sender_unit]), (vaxjo, [intake])):
            for item in await inbox_items(member, units):
                scanned.add("notifications", scan_notification(item, LINK_BASE[member.orgnr]))
        assert scanned.counts["notifications"] >= 3

        # 5. Every log line of the run, as the services write it.
        formatter = JsonFormatter()
        for entry in caplog.records:
            line = formatter.format(entry)
            where = f"log {entry.name}:{entry.levelname}"
            problems = findings_in(line, where)
            problems += [f"{where}: key {k}" for k in json.loads(line) if k not in LOG_KEYS]
            scanned.add("log_lines", problems)
        assert {r.name.split(".")[0] for r in caplog.records} >= {"vardkedja"}

        # 6. The metrics every service exposes (one registry in this process).
        exposition = generate_latest().decode()
        scanned.add("metric_lines", findings_in(exposition, "metrics"), exposition.count("\n"))

        findings = {k: v for k, v in scanned.findings.items() if v}
        write_figures(
            "payload-scan",
            "federation",
            {
                "scanned": dict(scanned.counts),
                "findings": sum(len(v) for v in findings.values()),
                "findings_by_channel": {k: len(v) for k, v in scanned.findings.items()},
                "finding_samples": {k: sorted(set(v))[:20] for k, v in findings.items()},
                "broadcast_topics": broadcast,
                "broadcast_types": dict(types),
                "tasks": len(task_ids),
                "log_levels": dict(Counter(r.levelname for r in caplog.records)),
            },
        )
        assert scanned.counts["broadcast_records"] >= 4
        assert scanned.counts["member_topic_records"] >= 10
        assert scanned.counts["emails"] >= 1
        assert scanned.counts["webhooks"] >= 3
        assert scanned.counts["log_lines"] >= 100
        assert findings == {}


def test_the_scanners_find_what_they_look_for() -> None:
    """Not vacuous: a planted value, a personnummer, a foreign field or type are found."""
    assert findings_in(free_text("x"), "t")
    assert findings_in("191212121212", "t")
    assert not findings_in("232100-0065 2026-11-23T10:00:00Z", "t")
    value = json.dumps({"unit_id": "u", "note": "x"}).encode()
    foreign = ReceivedRecord(
        topics.DIRECTORY, 0, 0, b"u", value, [("ce_type", UNIT_CHANGED_V1.encode())]
    )
    assert any("field note" in p for p in scan_broadcast(foreign))
    referral = ReceivedRecord(
        topics.DIRECTORY, 0, 1, None, b"{}", [("ce_type", b"se.vardkedja.referral.sent.v1")]
    )
    assert any("may not be broadcast" in p for p in scan_broadcast(referral))

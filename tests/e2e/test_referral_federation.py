"""Issues 5's and 6's done-when across processes: Region Kronoberg and Växjö kommun each run
directory, consent, referral and notify (API and worker each its own process, 16 in all)
over the embedded broker, with the demo directory. Region's Beroendemottagningen Växjö
records a written consent covering both members; once Växjö holds its copy, the unit sends a
kontaktbegäran about housing support routed by the directory to Växjö's social-services
intake. It is delivered, appears in that unit's worklist and nowhere else, Växjö's notify
tells that unit without personal data, Växjö acknowledges with its case reference and the
region sees it; a second referral is withdrawn by the sender and the receiver confirms.
Runs on SQLite and, when reachable, on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from stdnum import luhn

from services.notify.content import looks_like_personnummer
from services.referral.models import KnownUnit, Recipient
from shared.data.db import Database
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.processes import free_port_block
from tests.conftest import (
    ORG_REGION,
    ORG_VAXJO,
    DatabaseFactory,
    broker_client_env,
)
from tests.helpers.harness import eventually
from tests.integration.notify.servers import SmtpServer, WebhookReceiver
from vardkedja.federation import (
    DEMO_MEMBERS,
    DEMO_UNITS,
    PORTS_PER_MEMBER,
    Federation,
    Member,
    seed_demo_units,
)

pytestmark = pytest.mark.e2e

SERVICES = ("directory", "consent", "referral", "notify")
SENDER_UNIT = "Beroendemottagningen Växjö"
INTAKE = "Socialtjänstens mottagning vuxna Växjö"
MAILBOX = "mottagning.vuxna@vaxjo.example"  # the intake's functional mailbox (demo directory)
REFERRAL_RW = ["referral:read", "referral:write"]


def port_base(taken: set[int]) -> int:
    """A base port whose four service ports are free (and not another member's)."""
    return free_port_block(PORTS_PER_MEMBER, taken=taken)


def member_federation(
    orgnrs: tuple[str, ...],
    urls: dict[tuple[str, str], str],
    data_dir: Path,
    bootstrap: str,
    *,
    fetch_max_wait_ms: int = 20,
    **env: str,
) -> Federation:
    """The demo members of ``orgnrs`` with the four services, on free ports."""
    taken: set[int] = set()
    members = [
        Member(m.orgnr, m.name, m.kind, port_base(taken))
        for orgnr in orgnrs
        for m in DEMO_MEMBERS
        if m.orgnr == orgnr
    ]
    assert [m.orgnr for m in members] == list(orgnrs), "a demo member of each orgnr"
    return Federation(
        members=members,
        services=SERVICES,
        data_dir=data_dir,
        bootstrap=bootstrap,
        fetch_max_wait_ms=fetch_max_wait_ms,
        broker_env=broker_client_env(bootstrap),
        database_url_for=urls,
        extra_env={
            "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000",
            "VK_CONSENT__EXPIRY_CHECK_INTERVAL_S": "3600",
            "VK_NOTIFY__DISPATCH_POLL_INTERVAL_S": "0.2",
            **env,
        },
    )


def two_member_federation(
    urls: dict[tuple[str, str], str],
    data_dir: Path,
    bootstrap: str,
    *,
    fetch_max_wait_ms: int = 20,
    **env: str,
) -> Federation:
    """Region Kronoberg and Växjö kommun with the four services, on free ports."""
    return member_federation(
        (ORG_REGION, ORG_VAXJO),
        urls,
        data_dir,
        bootstrap,
        fetch_max_wait_ms=fetch_max_wait_ms,
        **env,
    )


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def federation(
    private_broker: Broker, databases: DatabaseFactory, tmp_path: Path, smtp: SmtpServer
) -> AsyncIterator[Federation]:
    # A broker of its own: the member topics and consumer groups are named by orgnr, and
    # another test's events to the same members must not reach these processes.
    urls = {
        (orgnr, s): await databases.new(f"{s}-{orgnr}")
        for orgnr in (ORG_REGION, ORG_VAXJO)
        for s in SERVICES
    }
    fed = two_member_federation(
        urls,
        tmp_path / "var",
        private_broker.bootstrap,
        # The intake's functional mailbox is a real SMTP server on loopback; so is the
        # case system that subscribes to webhooks.
        VK_NOTIFY__SMTP__HOST="127.0.0.1",
        VK_NOTIFY__SMTP__PORT=str(smtp.port),
        VK_NOTIFY__SMTP__TLS="none",
        VK_NOTIFY__SMTP__SENDER="vardkedja@vaxjo.example",
        VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE="true",
        VK_NOTIFY__LINK_BASE_URL="https://vardkedja.vaxjo.example",
    )
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=240)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


async def demo_units(fed: Federation, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Seeds the demo units and member records, waits until Region's directory replica and
    both referral services hold them; returns the replica's units."""
    await seed_demo_units(fed)
    region = fed.members[0]
    reader = auth(ORG_REGION, None, ["directory:read"])
    want = sum(len(DEMO_UNITS[m.orgnr]) for m in fed.members)
    replica: list[dict[str, Any]] = []
    url = f"http://127.0.0.1:{region.port('directory')}/v1/replica/units?limit=100"

    async def replicated() -> bool:
        r = await client.get(url, headers=reader)
        assert r.status_code == 200, r.text
        replica[:] = r.json()["items"]
        return len(replica) >= want

    await eventually(replicated, within=120, what="every member's units at Region")
    # The referral services check recipients against their own copy of the directory.
    every = {u["unit_id"] for u in replica}
    for member in fed.members:
        db_url = fed.database_url_for[(member.orgnr, "referral")]

        async def known(db_url: str = db_url) -> bool:
            return every <= await known_units(db_url)

        await eventually(known, within=120, what=f"the units at {member.name}'s referral")
    return replica


def unit_id(replica: list[dict[str, Any]], orgnr: str, name: str) -> str:
    """The id the directory gave the demo unit ``name`` of ``orgnr``."""
    [found] = [u["unit_id"] for u in replica if (u["owner_orgnr"], u["name"]) == (orgnr, name)]
    return str(found)


def auth(org: str, unit: str | None, scopes: list[str]) -> dict[str, str]:
    """A user token of ``org``, at ``unit``, with ``scopes``."""
    token = mint_token(sub=f"e2e-{unit}", org=org, unit=unit, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


class Site:
    """One member's four APIs as its staff reach them."""

    def __init__(self, client: httpx.AsyncClient, member: Member) -> None:
        self.client = client
        self.member = member

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.member.port(service)}{path}"

    async def get(self, service: str, path: str, headers: dict[str, str]) -> httpx.Response:
        return await self.client.get(self.url(service, path), headers=headers)

    async def post(
        self, service: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        return await self.client.post(self.url(service, path), json=body, headers=headers)


async def known_units(db_url: str) -> set[str]:
    """The unit ids a referral service has taken from ``vardkedja.directory``."""
    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            return set(await s.scalars(select(KnownUnit.unit_id)))
    finally:
        await db.dispose()


async def _recipient(db_url: str, task_id: str) -> Recipient:
    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            row = await s.get(Recipient, task_id)
            assert row is not None
            return row
    finally:
        await db.dispose()


async def consent_copy_arrives(site: Site, orgnr: str, unit: str, consent_id: str) -> None:
    """Waits until the member of ``site`` holds its copy of the consent (read as ``unit``)."""

    async def arrived() -> bool:
        r = await site.get(
            "consent", f"/v1/consent-copies/{consent_id}", auth(orgnr, unit, ["consent:read"])
        )
        return r.status_code == 200

    await eventually(arrived, within=60, what=f"the consent copy at {orgnr}")


def synthetic_person(i: int) -> str:
    """A valid personnummer (YYYYMMDDNNNN) for number ``i`` (born from 1950, 1000 a day)."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=i // 1000)
    nine = born.strftime("%y%m%d") + f"{i % 1000:03d}"
    return born.strftime("%Y") + nine[2:] + str(luhn.calc_check_digit(nine))


def written_consent(person: str) -> dict[str, Any]:
    """A written consent to kontaktbegäran between Region Kronoberg and Växjö kommun."""
    today = dt.datetime.now(dt.UTC).date()
    return {
        "person": {"personnummer": person},
        "form": "written",
        "signed_form_reference": "Journal dok 2026-4711",
        "purposes": ["kontaktbegaran"],
        "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
        "categories": ["contact_details", "needs_summary"],
        "valid_from": today.isoformat(),
        "valid_to": (today + dt.timedelta(days=90)).isoformat(),
        "person_informed": True,
    }


def kontaktbegaran(person: str, **over: Any) -> dict[str, Any]:
    """A kontaktbegäran about housing support, routed by the directory unless ``over``
    names the recipients (with ``resolve=None``)."""
    body: dict[str, Any] = {
        "kind": "kontaktbegaran",
        "person": {"personnummer": person},
        "needs": ["boendestod"],
        "summary": "Skrivs ut från beroendeavdelningen inom två veckor och saknar bostad.",
        "urgency": "urgent",
        "children_in_household": "no",
        "persons_wish": "Jag vill ha hjälp med boende i Växjö.",
        "resolve": {"kommunkod": "0780"},
        "kontaktbegaran": {"kommunkod": "0780"},
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


class TestAKontaktbegaranBetweenTwoMembers:
    async def test_is_routed_delivered_notified_acknowledged_and_a_second_withdrawn(
        self,
        federation: Federation,
        smtp: SmtpServer,
        record_property: Callable[[str, object], None],
    ) -> None:
        region_m, vaxjo_m = federation.members
        # Every service role of every member is a process of its own.
        assert len({p.process.pid for p in federation.procs}) == len(federation.procs) == 16
        person = synthetic_person(4711)
        async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=15) as client:
            region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
            # The demo units, found by name in Region's replica of the directory.
            replica = await demo_units(federation, client)
            sender_unit = unit_id(replica, ORG_REGION, SENDER_UNIT)
            intake = unit_id(replica, ORG_VAXJO, INTAKE)
            vaxjo_units = [u["unit_id"] for u in replica if u["owner_orgnr"] == ORG_VAXJO]
            region_units = [u["unit_id"] for u in replica if u["owner_orgnr"] == ORG_REGION]

            sender = auth(ORG_REGION, sender_unit, REFERRAL_RW)
            receiver = auth(ORG_VAXJO, intake, REFERRAL_RW)

            # A written consent, recorded by the sending unit at Region's consent service.
            r = await region.post(
                "consent",
                "/v1/consents",
                written_consent(person),
                auth(ORG_REGION, sender_unit, ["consent:read", "consent:write"]),
            )
            assert r.status_code == 201, r.text
            consent_id = r.json()["id"]

            async def copy_at_vaxjo() -> bool:
                r = await vaxjo.get(
                    "consent",
                    f"/v1/consent-copies/{consent_id}",
                    auth(ORG_VAXJO, intake, ["consent:read"]),
                )
                assert r.status_code in (200, 404), r.text
                return r.status_code == 200

            await eventually(copy_at_vaxjo, within=60, what="the consent copy at Växjö")

            # The intake's case system subscribes to its unit's webhooks (the unit's token).
            hooks = await WebhookReceiver().start()
            stack.push_async_callback(hooks.stop)
            r = await vaxjo.post(
                "notify",
                "/v1/webhook-subscriptions",
                {"unit_id": intake, "url": hooks.url, "event_types": ["referral.received"]},
                {
                    **auth(ORG_VAXJO, intake, ["notify:read", "notify:write"]),
                    "Idempotency-Key": f"e2e-case-system-{consent_id}",
                },
            )
            assert r.status_code == 201, r.text
            hooks.secrets = [r.json()["secret"]]

            async def send(key: str) -> dict[str, Any]:
                """A kontaktbegäran, routed by Region's directory; its one recipient."""
                r = await region.post(
                    "referral",
                    "/v1/referrals",
                    kontaktbegaran(person),
                    {**sender, "Idempotency-Key": f"e2e-{consent_id}-{key}"},
                )
                assert r.status_code == 201, r.text
                [task] = r.json()["recipients"]
                return {**task, "referral_id": r.json()["id"]}

            async def sender_sees(task: dict[str, Any]) -> dict[str, Any]:
                r = await region.get("referral", f"/v1/referrals/{task['referral_id']}", sender)
                assert r.status_code == 200, r.text
                [out] = r.json()["recipients"]
                return dict(out)

            async def status_is(task: dict[str, Any], status: str) -> bool:
                return bool((await sender_sees(task))["status"] == status)

            # The kontaktbegäran goes to Växjö's intake.
            posted = time.monotonic()
            task = await send("1")
            assert (task["orgnr"], task["unit_id"], task["routed"]) == (ORG_VAXJO, intake, True)
            assert task["basis"]["consent_id"] == consent_id
            assert task["status"] == "sent"
            task_id = task["task_id"]
            await eventually(lambda: status_is(task, "delivered"), within=60, what="delivered")

            # In the intake's own worklist, and in no other unit's of either member.
            r = await vaxjo.get("referral", "/v1/incoming", receiver)
            assert r.status_code == 200, r.text
            [item] = r.json()["items"]
            assert item["task_id"] == task_id
            assert item["person"]["personnummer"] == person.replace("-", "")
            assert item["needs"] == ["boendestod"]
            assert item["sender_orgnr"] == ORG_REGION
            assert item["sender_unit_id"] == sender_unit
            assert item["allowed_transitions"] == ["acknowledged", "returned"]
            everyone = [(vaxjo, ORG_VAXJO, u) for u in vaxjo_units]
            everyone += [(region, ORG_REGION, u) for u in region_units]
            for site, org, unit in everyone:
                if unit == intake:
                    continue
                r = await site.get("referral", "/v1/incoming", auth(org, unit, REFERRAL_RW))
                assert r.status_code == 200, r.text
                assert r.json()["items"] == [], (org, unit)

            # Växjö's notify tells the intake, without personal data.
            notify_reader = auth(ORG_VAXJO, intake, ["notify:read"])
            notified: list[dict[str, Any]] = []
            inbox_text: list[str] = []

            async def notification_in_inbox() -> bool:
                r = await vaxjo.get("notify", f"/v1/units/{intake}/notifications", notify_reader)
                assert r.status_code == 200, r.text
                inbox_text[:] = [r.text]
                notified[:] = [
                    n
                    for n in r.json()["items"]
                    if n["kind"] == "referral.received" and n["subject_id"] == task_id
                ]
                return bool(notified)

            await eventually(notification_in_inbox, within=60, what="the intake's notification")
            [note] = notified
            assert note["unit_id"] == intake
            assert note["referral_kind"] == "kontaktbegaran"
            assert note["counterpart_orgnr"] == ORG_REGION
            for personal in (
                person,
                person.replace("-", ""),
                person[2:],
                "Skrivs ut",
                "boende i Växjö",
            ):
                assert personal not in inbox_text[0]
            # No other unit of Växjö was told.
            for unit in vaxjo_units:
                if unit == intake:
                    continue
                r = await vaxjo.get(
                    "notify",
                    f"/v1/units/{unit}/notifications",
                    auth(ORG_VAXJO, unit, ["notify:read"]),
                )
                assert r.status_code == 200, r.text
                assert r.json()["items"] == [], unit

            # Its case system got one signed webhook, its functional mailbox one e-mail, and
            # neither carries personal data.
            async def on_every_channel() -> bool:
                return bool(hooks.verified() and smtp.to(MAILBOX))

            await eventually(on_every_channel, within=60, what="the webhook and the e-mail")
            record_property(
                "seconds_post_to_inbox_webhook_and_email", round(time.monotonic() - posted, 3)
            )
            [hook] = [json.loads(h.body) for h in hooks.verified()]
            assert len(hooks.received) == 1
            assert hook["type"] == "referral.received"
            assert hook["data"]["subject_id"] == task_id
            [mail] = smtp.to(MAILBOX)
            assert str(mail["Subject"]) == "vårdkedja: Ny Kontaktbegäran i inkorgen"
            for text in (json.dumps(hook), str(mail["Subject"]) + mail.get_content()):
                assert not looks_like_personnummer(text)
                for personal in ("Skrivs ut", "boende i Växjö"):
                    assert personal not in text

            # Växjö acknowledges with its case reference; the region sees both.
            current = await vaxjo.get("referral", f"/v1/incoming/{task_id}", receiver)
            assert current.status_code == 200, current.text
            r = await vaxjo.post(
                "referral",
                f"/v1/incoming/{task_id}/transitions",
                {"to": "acknowledged", "case_reference": "SOC-2026-0042"},
                {**receiver, "If-Match": current.headers["ETag"]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "acknowledged"
            await eventually(
                lambda: status_is(task, "acknowledged"), within=60, what="acknowledged"
            )
            assert (await sender_sees(task))["case_reference"] == "SOC-2026-0042"
            r = await region.get("referral", f"/v1/tasks/{task_id}/history", sender)
            assert [h["to_status"] for h in r.json()] == ["sent", "delivered", "acknowledged"]

            # Region's notify tells the sending unit of the acknowledgement (closed loop).
            async def sender_told() -> bool:
                r = await region.get(
                    "notify",
                    f"/v1/units/{sender_unit}/notifications",
                    auth(ORG_REGION, sender_unit, ["notify:read"]),
                )
                assert r.status_code == 200, r.text
                assert person not in r.text
                return any(
                    n["kind"] == "referral.status_changed"
                    and n["subject_id"] == task_id
                    and n["status"] == "acknowledged"
                    for n in r.json()["items"]
                )

            await eventually(sender_told, within=60, what="the sending unit told")

            # A second referral: the sender withdraws it and the receiver confirms.
            second = await send("2")
            task2 = second["task_id"]
            assert task2 != task_id
            await eventually(
                lambda: status_is(second, "delivered"), within=60, what="the second delivered"
            )
            version = (await sender_sees(second))["version"]
            r = await region.post(
                "referral",
                f"/v1/referrals/{task2}/withdraw",
                {"reason": "Personen vill inte längre.", "by_person": True},
                {**sender, "If-Match": f'"{version}"'},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "withdrawn"

            held: dict[str, Any] = {}

            async def withdrawn_at_vaxjo() -> bool:
                r = await vaxjo.get("referral", f"/v1/incoming/{task2}", receiver)
                assert r.status_code == 200, r.text
                held.update(r.json(), etag=r.headers["ETag"])
                return bool(held["status"] == "withdrawn")

            await eventually(withdrawn_at_vaxjo, within=60, what="the withdrawal at Växjö")
            assert held["allowed_transitions"] == []
            r = await vaxjo.post(
                "referral",
                f"/v1/incoming/{task2}/transitions",
                {"to": "acknowledged"},
                {**receiver, "If-Match": held["etag"]},
            )
            assert r.status_code == 409, r.text
            r = await vaxjo.get("referral", f"/v1/tasks/{task2}/history", receiver)
            assert [h["to_status"] for h in r.json()] == ["delivered", "withdrawn"]

            # The receiver's confirmation reaches the sender: its mirror holds the version the
            # receiver reported with the withdrawal.
            region_referral_db = federation.database_url_for[(ORG_REGION, "referral")]

            async def confirmed() -> bool:
                row = await _recipient(region_referral_db, task2)
                return bool(row.remote_version == held["version"])

            await eventually(confirmed, within=60, what="the receiver's confirmation")
            assert (await sender_sees(second))["status"] == "withdrawn"
            # The first referral is unaffected and is still the only open one in the worklist.
            r = await vaxjo.get("referral", "/v1/incoming?status=acknowledged", receiver)
            assert [i["task_id"] for i in r.json()["items"]] == [task_id]
